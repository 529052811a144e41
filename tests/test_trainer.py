"""run_fn end to end on a small synthetic split: training, compression, export, warmup.

FnArgs are built the way the TFX Trainer builds them (fn_args_utils over
Examples and TransformGraph artifacts); the Transform graph comes from
running preprocessing_fn's analysis with tf.Transform on Beam.
"""
import dataclasses
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tfx.components.trainer import fn_args_utils
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import json_utils, proto_utils

from common import serving_contract as contract
from common.errors import DataError, UsageError
from components import (calibration, compression, features, synthetic_minority, trainer,
                        transformed_arrays)
from pipeline.configs import CREDIT_TRAINER, PipelineConfig, TrainerConfig, credit_defaults
from serving.options import SESSION
from serving.servable import load_servable
# The session-scoped synthetic data and Transform graph, shared with test_preprocessing.
from test_preprocessing import raw_data  # noqa: F401
from test_synthetic_minority import parents

FAST = dict(hidden_units=(32, 16), batch_size=64, epochs=3, warmup_examples=5)


def make_fn_args(raw_data, out_dir, **config_overrides):
    examples = standard_artifacts.Examples()
    examples.uri = str(raw_data["root"] / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    transform_graph = standard_artifacts.TransformGraph()
    transform_graph.uri = str(raw_data["root"] / "transform_graph")
    config = dataclasses.replace(TrainerConfig(), **{**FAST, **config_overrides})
    fn_args = fn_args_utils.get_common_fn_args(
        {"examples": [examples], "transform_graph": [transform_graph]},
        {"train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs()),
         "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs()),
         "custom_config": json_utils.dumps(dataclasses.asdict(config))},
        working_dir=str(out_dir / "work"))
    fn_args.serving_model_dir = str(out_dir / "model" / "Format-Serving")
    fn_args.model_run_dir = str(out_dir / "model_run")
    return fn_args


@pytest.fixture(scope="module")
def trained(raw_data, tmp_path_factory):
    """run_fn with the default compression: pruning, class weights."""
    fn_args = make_fn_args(raw_data, tmp_path_factory.mktemp("trained"))
    trainer.run_fn(fn_args)
    return fn_args


@pytest.fixture(scope="module")
def loaded(trained):
    return tf.saved_model.load(trained.serving_model_dir)


@pytest.fixture(scope="module")
def trained_qat(raw_data, tmp_path_factory):
    """run_fn with quantization-aware fine-tuning and balanced resampling."""
    fn_args = make_fn_args(raw_data, tmp_path_factory.mktemp("trained_qat"), epochs=1,
                           quantization_aware=True, balanced_resampling=True)
    trainer.run_fn(fn_args)
    return fn_args


@pytest.fixture(scope="module")
def trained_synthetic(raw_data, tmp_path_factory):
    """run_fn with two synthetic frauds per real one beside sqrt class weights; records the
    split the frauds were drawn from and what was drawn."""
    drawn = {}
    real = synthetic_minority.synthetic_frauds

    def recording(train, *args, **kwargs):
        drawn["from"], drawn["synthetic"] = train, real(train, *args, **kwargs)
        return drawn["synthetic"]

    fn_args = make_fn_args(raw_data, tmp_path_factory.mktemp("trained_synthetic"), epochs=1,
                           seed=5, synthetic_fraud_ratio=2.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(synthetic_minority, "synthetic_frauds", recording)
        trainer.run_fn(fn_args)
    return fn_args, drawn


@pytest.fixture(scope="module")
def trained_distilled(raw_data, tmp_path_factory):
    """run_fn with a teacher twice as wide, pruning the student, and the int8 TFLite form."""
    fn_args = make_fn_args(raw_data, tmp_path_factory.mktemp("trained_distilled"), epochs=1,
                           seed=3, teacher_width_multiplier=2, tflite_int8=True)
    trainer.run_fn(fn_args)
    return fn_args


def _read_json(directory, name):
    with open(os.path.join(directory, name)) as f:
        return json.load(f)


def _dense_kernels(loaded_model):
    """Dense kernels of an exported model, by variable name (embeddings excluded)."""
    return {v.name: v.numpy() for v in loaded_model.model_variables
            if v.name.endswith("/kernel:0") and "embedding" not in v.name}


def _raw_batch(rows):
    """serving_raw inputs for rows: NaN marks an absent optional feature."""
    batch = {}
    for name, kind in features.MODEL_FEATURES.items():
        if kind == "string":
            batch[name] = tf.constant([row[name].encode() for row in rows])
        elif kind == "int":
            batch[name] = tf.constant([row[name] for row in rows], dtype=tf.int64)
        else:
            batch[name] = tf.constant([row.get(name, np.nan) for row in rows], dtype=tf.float32)
    return batch


def _serialized(rows):
    return tf.constant([features.to_example(row).SerializeToString() for row in rows])


def _assert_signatures_agree(loaded_model, rows):
    default = loaded_model.signatures["serving_default"](
        examples=_serialized(rows))[contract.OUTPUT_KEY].numpy()
    raw = loaded_model.signatures["serving_raw"](**_raw_batch(rows))[contract.OUTPUT_KEY].numpy()
    assert default.shape == (len(rows),)
    assert np.all((default > 0) & (default < 1))
    np.testing.assert_allclose(default, raw, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------
# The exported model.

def test_export_is_complete_with_all_signatures(trained):
    model_dir = trained.serving_model_dir
    assert os.path.exists(os.path.join(model_dir, "saved_model.pb"))
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(model_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    signatures = saved_model.meta_graphs[0].signature_def
    assert signatures["serving_default"].method_name == "tensorflow/serving/predict"
    assert list(signatures["serving_default"].inputs) == ["examples"]
    assert set(signatures["serving_default"].outputs) == {"fraud_probability", "raw_score"}
    assert set(signatures["serving_raw"].inputs) == set(features.MODEL_FEATURES)
    assert set(signatures["serving_raw"].outputs) == {"fraud_probability", "raw_score"}
    assert signatures["classification"].method_name == "tensorflow/serving/classify"
    assert list(signatures["classification"].inputs) == ["inputs"]
    assert signatures["classification"].outputs["classes"].dtype == tf.string.as_datatype_enum
    assert signatures["regression"].method_name == "tensorflow/serving/regress"
    assert set(signatures["regression"].outputs) == {"outputs"}


def test_both_signatures_give_the_same_scores(loaded, raw_data):
    rows = raw_data["eval_rows"][:64]
    for name in features.OPTIONAL_FEATURES:
        assert any(name not in row for row in rows), name
    _assert_signatures_agree(loaded, rows)


def test_scores_do_not_depend_on_passthrough_features_or_label(loaded, raw_data):
    rows = raw_data["eval_rows"][:8]
    bare = [{k: v for k, v in row.items() if k in features.MODEL_FEATURES} for row in rows]
    serve = loaded.signatures["serving_default"]
    np.testing.assert_array_equal(serve(examples=_serialized(rows))["fraud_probability"],
                                  serve(examples=_serialized(bare))["fraud_probability"])


def test_classify_and_regress_signatures_match_the_probability(loaded, raw_data):
    rows = raw_data["eval_rows"][:16]
    p = loaded.signatures["serving_default"](examples=_serialized(rows))["fraud_probability"]
    classified = loaded.signatures["classification"](inputs=_serialized(rows))
    regressed = loaded.signatures["regression"](inputs=_serialized(rows))
    scores = classified["scores"].numpy()
    np.testing.assert_allclose(scores[:, 1], p.numpy(), rtol=1e-6)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    assert classified["classes"].numpy().tolist() == [[b"0", b"1"]] * len(rows)
    np.testing.assert_allclose(regressed["outputs"].numpy(), p.numpy(), rtol=1e-6)


def test_serving_raw_rejects_nan_in_a_required_feature(loaded, raw_data):
    batch = _raw_batch(raw_data["eval_rows"][:2])
    batch["amount"] = tf.constant([12.5, np.nan])
    with pytest.raises(tf.errors.InvalidArgumentError, match="amount is NaN"):
        loaded.signatures["serving_raw"](**batch)


def test_warmup_records_parse_as_prediction_logs(trained, raw_data):
    path = os.path.join(trained.serving_model_dir, "assets.extra", "tf_serving_warmup_requests")
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
               for r in tf.data.TFRecordDataset(path)]
    assert len(records) == FAST["warmup_examples"]
    sizes = []
    for record in records:
        request = record.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        batch = tf.make_ndarray(request.inputs["examples"])
        sizes.append(len(batch))
        ids = [features.from_example(tf.train.Example.FromString(b))["transaction_id"]
               for b in batch]
        assert set(ids) <= {row["transaction_id"] for row in raw_data["eval_rows"]}
    assert sizes == [1, 8, 32, 1, 8]


def test_dense_kernels_reach_the_target_sparsity(trained, loaded):
    report = _read_json(trained.model_run_dir, trainer.COMPRESSION_FILE)
    assert set(report["dense_kernel_sparsity"]) == {"hidden_0", "hidden_1", "fraud_probability"}
    assert report["min_dense_kernel_sparsity"] >= 0.5
    kernels = _dense_kernels(loaded)
    assert len(kernels) == 3
    for name, kernel in kernels.items():
        assert np.mean(kernel == 0.0) >= 0.5, name


def test_training_logs_for_tensorboard(trained):
    events = [name for _, _, files in os.walk(trained.model_run_dir) for name in files
              if name.startswith("events.out.tfevents")]
    assert events


def _logit(p):
    p = np.asarray(p, np.float64)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _served(loaded_model, rows):
    outputs = loaded_model.signatures["serving_default"](examples=_serialized(rows))
    return outputs["fraud_probability"].numpy(), outputs["raw_score"].numpy()


def test_fraud_probability_is_the_raw_score_prior_corrected_for_the_class_weights(
        trained, loaded, raw_data):
    weights = _read_json(trained.model_run_dir, trainer.CLASS_BALANCE_FILE)["class_weight"]
    shift = np.log(weights["1"] / weights["0"])
    assert shift > 0  # frauds were weighted up
    rows = raw_data["eval_rows"][:64]
    probability, raw = _served(loaded, rows)
    np.testing.assert_allclose(probability, _sigmoid(_logit(raw) - shift), rtol=1e-5, atol=1e-7)
    assert np.all(probability < raw)
    by_features = loaded.signatures["serving_raw"](**_raw_batch(rows))
    np.testing.assert_allclose(by_features["raw_score"].numpy(), raw, rtol=1e-6, atol=1e-7)


def test_calibrated_brier_is_lower_than_the_raw_one_on_the_eval_split(trained, loaded, raw_data):
    rows = raw_data["eval_rows"]
    labels = [row["is_fraud"] for row in rows]
    probability, raw = _served(loaded, rows)
    calibrated_brier = calibration.brier_score(labels, probability)
    raw_brier = calibration.brier_score(labels, raw)
    assert calibrated_brier < raw_brier
    # The Trainer's report measured the same scores on the same split.
    report = _read_json(trained.model_run_dir, calibration.CALIBRATION_FILE)
    assert report["eval_examples"] == len(rows)
    assert report["fraud_probability"]["brier"] == pytest.approx(calibrated_brier, rel=1e-4)
    assert report["raw_score"]["brier"] == pytest.approx(raw_brier, rel=1e-4)
    assert report["fraud_probability"]["ece"] == pytest.approx(
        calibration.expected_calibration_error(labels, probability), rel=1e-4, abs=1e-6)


def test_class_weights_derive_from_training_label_counts(trained, raw_data):
    labels = np.array([row["is_fraud"] for row in raw_data["train_rows"]])
    n, frauds = len(labels), int(labels.sum())
    report = _read_json(trained.model_run_dir, trainer.CLASS_BALANCE_FILE)
    assert report["label_counts"] == {"0": n - frauds, "1": frauds}
    # The default scheme, sqrt: the square root of n / (2 * count of the class).
    assert TrainerConfig().class_weight_scheme == "sqrt"
    assert report["class_weight"]["1"] == pytest.approx((n / (2 * frauds)) ** 0.5)
    assert report["class_weight"]["0"] == pytest.approx((n / (2 * (n - frauds))) ** 0.5)


# ---------------------------------------------------------------------------
# Quantization-aware training, with balanced resampling instead of class weights.

def test_quantization_aware_model_exports_sparse_and_consistent(trained_qat, raw_data):
    report = _read_json(trained_qat.model_run_dir, trainer.COMPRESSION_FILE)
    assert report["quantization_aware"] is True
    assert report["min_dense_kernel_sparsity"] >= 0.5
    loaded_qat = tf.saved_model.load(trained_qat.serving_model_dir)
    _assert_signatures_agree(loaded_qat, raw_data["eval_rows"][:32])
    assert any("kernel_min" in v.name for v in loaded_qat.model_variables)
    kernels = _dense_kernels(loaded_qat)
    assert len(kernels) == 3
    for name, kernel in kernels.items():
        assert np.mean(kernel == 0.0) >= 0.5, name


# ---------------------------------------------------------------------------
# A distilled student, and the int8 TFLite form.

def test_the_distilled_student_is_exported_pruned_and_its_teacher_recorded(
        trained_distilled, raw_data):
    report = _read_json(trained_distilled.model_run_dir, trainer.COMPRESSION_FILE)
    distilled = report["distillation"]
    assert distilled["teacher_hidden_units"] == [64, 32]
    assert (distilled["alpha"], distilled["temperature"]) == (0.5, 2.0)
    assert 0.0 <= distilled["teacher_validation"]["val_pr_auc"] <= 1.0
    assert report["nonzero_parameters"] < report["trainable_parameters"]
    assert os.path.isdir(os.path.join(trained_distilled.model_run_dir, trainer.TEACHER_LOG_DIR))
    loaded_student = tf.saved_model.load(trained_distilled.serving_model_dir)
    kernels = _dense_kernels(loaded_student)
    assert sorted(kernel.shape[1] for kernel in kernels.values()) == [1, 16, 32]
    for name, kernel in kernels.items():
        assert np.mean(kernel == 0.0) >= 0.5, name
    _assert_signatures_agree(loaded_student, raw_data["eval_rows"][:32])


def test_the_tflite_form_scores_like_the_served_model(trained_distilled, raw_data):
    rows = raw_data["eval_rows"][:50]
    evaluation = transformed_arrays.read_split(
        trained_distilled.eval_files, trained_distilled.data_accessor,
        raw_data["transform_output"])
    inputs = {name: value[:len(rows)] for name, value in evaluation.model_inputs().items()}
    served = tf.saved_model.load(trained_distilled.serving_model_dir).signatures[
        "serving_default"](examples=_serialized(rows))[contract.RAW_SCORE_KEY].numpy()
    # int8 weights only stay close to the float model; int8 activations too lose more,
    # most where all inputs share one scale in the concatenation.
    for name, tolerance in ((compression.TFLITE_WEIGHTS_FILE, 0.01),
                            (compression.TFLITE_FILE, 0.15)):
        with open(os.path.join(trained_distilled.model_run_dir, name), "rb") as f:
            content = f.read()
        for batch_size in (1, 7):
            scores = compression.TfliteScorer(content, batch_size).probabilities(inputs)
            assert scores.shape == served.shape
            np.testing.assert_allclose(scores, served, atol=tolerance, err_msg=name)
            assert np.corrcoef(scores, served)[0, 1] > 0.9, name


def test_every_variant_serves_on_the_servers_session_call_path(
        trained, trained_qat, trained_distilled, raw_data):
    examples = _serialized(raw_data["eval_rows"][:16])
    for fn_args in (trained, trained_qat, trained_distilled):
        servable = load_servable("fraud", 1, fn_args.serving_model_dir, model_call_path=SESSION)
        assert servable.call_path == SESSION, servable.fallback_reason
        served = servable.run(contract.SERVING_DEFAULT,
                              {contract.EXAMPLES_INPUT: examples.numpy().astype(object)},
                              [contract.OUTPUT_KEY])[contract.OUTPUT_KEY]
        expected = tf.saved_model.load(fn_args.serving_model_dir).signatures[
            contract.SERVING_DEFAULT](examples=examples)[contract.OUTPUT_KEY].numpy()
        np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-7)


def test_tflite_int8_of_a_quantization_aware_model_is_refused():
    config = dataclasses.replace(TrainerConfig(), tflite_int8=True, quantization_aware=True)
    with pytest.raises(UsageError, match="trainer.tflite_int8"):
        trainer.validate_trainer_config(config)


def test_balanced_resampling_replaces_class_weights(trained_qat):
    report = _read_json(trained_qat.model_run_dir, trainer.CLASS_BALANCE_FILE)
    assert report["balanced_resampling"] is True
    assert report["class_weight"] is None


def test_resampled_model_is_corrected_for_the_resampled_fraud_share(trained_qat, raw_data):
    counts = _read_json(trained_qat.model_run_dir, trainer.CLASS_BALANCE_FILE)["label_counts"]
    fraud_share = counts["1"] / (counts["0"] + counts["1"])
    # Batches half frauds: ln(0.5 / 0.5) - ln(pi / (1 - pi)).
    shift = -np.log(fraud_share / (1 - fraud_share))
    report = _read_json(trained_qat.model_run_dir, calibration.CALIBRATION_FILE)
    assert report["logit_shift"] == pytest.approx(shift)
    probability, raw = _served(tf.saved_model.load(trained_qat.serving_model_dir),
                               raw_data["eval_rows"][:32])
    np.testing.assert_allclose(probability, _sigmoid(_logit(raw) - shift), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------
# Synthetic frauds, with class weights.

def test_synthetic_frauds_are_drawn_from_the_training_split_only(trained_synthetic, raw_data):
    fn_args, drawn = trained_synthetic
    train_labels = [row["is_fraud"] for row in raw_data["train_rows"]]
    np.testing.assert_array_equal(drawn["from"].labels, train_labels)
    assert len(drawn["synthetic"].labels) == round(2.0 * sum(train_labels))
    parents(drawn["synthetic"], drawn["from"])
    # The eval split is scored as it is: real transactions only.
    report = _read_json(fn_args.model_run_dir, calibration.CALIBRATION_FILE)
    assert report["eval_examples"] == len(raw_data["eval_rows"])


def test_the_prior_correction_counts_synthetic_frauds_as_extra_fraud_weight(
        trained_synthetic, raw_data):
    fn_args, drawn = trained_synthetic
    balance = _read_json(fn_args.model_run_dir, trainer.CLASS_BALANCE_FILE)
    counts = balance["label_counts"]
    assert counts["1"] == sum(row["is_fraud"] for row in raw_data["train_rows"])
    assert balance["synthetic_frauds"] == len(drawn["synthetic"].labels) == 2 * counts["1"]
    weights = balance["class_weight"]
    shift = np.log(weights["1"] / weights["0"]) + np.log(3.0)
    report = _read_json(fn_args.model_run_dir, calibration.CALIBRATION_FILE)
    assert report["logit_shift"] == pytest.approx(shift)
    probability, raw = _served(tf.saved_model.load(fn_args.serving_model_dir),
                               raw_data["eval_rows"][:32])
    np.testing.assert_allclose(probability, _sigmoid(_logit(raw) - shift), rtol=1e-5, atol=1e-7)


def test_the_fraud_task_defaults_to_synthetic_frauds_and_credit_keeps_its_weights():
    fraud = PipelineConfig().trainer
    assert (fraud.synthetic_fraud_ratio, fraud.class_weight_scheme) == (1.0, "none")
    credit = credit_defaults(PipelineConfig()).trainer
    assert credit == CREDIT_TRAINER
    assert (credit.synthetic_fraud_ratio, credit.class_weight_scheme) == (0.0, "sqrt")


def test_synthetic_frauds_shift_the_weighted_prior_back_to_the_real_fraud_rate():
    counts = {0: 900, 1: 100}
    for scheme, synthetic in (("sqrt", 100), ("none", 300), ("balanced", 50)):
        weight = trainer.class_weights(counts, scheme)
        shift = trainer.logit_shift(counts, weight, synthetic)
        fraud_mass = weight[1] * (counts[1] + synthetic)
        trained_rate = fraud_mass / (fraud_mass + weight[0] * counts[0])
        # A model that learned only the weighted training rate serves the real one.
        assert _sigmoid(_logit(trained_rate) - shift) == pytest.approx(0.1)
    sqrt = trainer.class_weights(counts, "sqrt")
    assert trainer.logit_shift(counts, sqrt, 100) == pytest.approx(math.log(3) + math.log(2))
    # Resampling draws half frauds whatever their origin.
    assert trainer.logit_shift(counts, None, 400) == pytest.approx(math.log(9))


# ---------------------------------------------------------------------------
# Pieces.

def test_class_weight_schemes():
    counts = {0: 900, 1: 100}
    assert trainer.class_weights(counts, "balanced") == pytest.approx({0: 1000 / 1800, 1: 5.0})
    assert trainer.class_weights(counts, "sqrt") == pytest.approx(
        {0: (1000 / 1800) ** 0.5, 1: 5.0 ** 0.5})
    assert trainer.class_weights(counts, "none") == {0: 1.0, 1: 1.0}
    with pytest.raises(DataError, match="is_fraud=1"):
        trainer.class_weights({0: 10}, "balanced")


def test_prior_correction_of_each_scheme():
    counts = {0: 900, 1: 100}

    def shift(scheme):
        return trainer.logit_shift(counts, trainer.class_weights(counts, scheme))

    # balanced: w1 / w0 = n0 / n1 = 9, the same as resampling to half frauds.
    assert shift("balanced") == pytest.approx(math.log(9))
    assert trainer.logit_shift(counts, None) == pytest.approx(math.log(9))
    assert shift("sqrt") == pytest.approx(math.log(3))
    assert shift("none") == 0.0


@pytest.fixture(scope="module")
def splits(trained, raw_data):
    """The train and eval splits as the Trainer reads them (the lean serving transform)."""
    return trainer.read_splits(trained, raw_data["transform_output"])


@pytest.fixture(scope="module")
def train_split(splits):
    return splits[0]


def test_the_trainer_reads_what_the_transform_layer_computes(trained, splits, raw_data):
    for split, files in zip(splits, (trained.train_files, trained.eval_files)):
        reference = transformed_arrays.read_split(files, trained.data_accessor,
                                                  raw_data["transform_output"])
        np.testing.assert_array_equal(split.labels, reference.labels)
        assert split.features.keys() == reference.features.keys()
        for name, values in reference.features.items():
            assert split.features[name].dtype == values.dtype, name
            np.testing.assert_allclose(split.features[name], values, rtol=1e-5, atol=1e-5,
                                       err_msg=name)


def test_a_split_is_read_through_the_transform_once_in_file_order(train_split, raw_data):
    rows = raw_data["train_rows"]
    np.testing.assert_array_equal(train_split.labels, [row["is_fraud"] for row in rows])
    np.testing.assert_allclose(train_split.features["is_night_xf"],
                               [row["is_night"] for row in rows])
    assert "is_fraud" not in train_split.features


def test_balanced_resampling_draws_both_classes_equally(train_split):
    dataset = trainer.training_batches(train_split, batch_size=64, seed=0, balanced=True)
    labels = np.concatenate([label.numpy() for _, label in dataset.take(30)])
    assert labels.shape == (30 * 64, 1)
    assert 0.45 < labels.mean() < 0.55


def test_training_batches_are_shuffled_passes_over_the_split(train_split):
    n = len(train_split.labels)
    passes = 2 * n // 100 + 1

    def amounts(seed):
        batches = trainer.training_batches(train_split, batch_size=100, seed=seed).take(passes)
        return np.concatenate([inputs["amount_xf"].numpy()[:, 0] for inputs, _ in batches])

    stream, file_order = amounts(0), train_split.features["amount_xf"]
    # Each pass holds every row once, in another order than the file's and the last pass's.
    for one_pass in (stream[:n], stream[n:2 * n]):
        np.testing.assert_array_equal(np.sort(one_pass), np.sort(file_order))
        assert not np.array_equal(one_pass, file_order)
    assert not np.array_equal(stream[:n], stream[n:2 * n])
    np.testing.assert_array_equal(amounts(0), stream)


def test_negative_sampling_keeps_every_fraud_and_a_fresh_share_of_the_rest():
    labels = np.zeros(20_000, dtype=np.int64)
    labels[::50] = 1
    fraud = tf.constant(labels == 1)

    def one_pass(epoch, seed=0):
        return trainer.pass_rows(fraud, seed, 0.25, tf.constant(epoch, tf.int64)).numpy()

    first, second = one_pass(0), one_pass(1)
    for rows in (first, second):
        assert len(set(rows)) == len(rows)  # no row twice in a pass
        assert set(np.flatnonzero(labels == 1)) <= set(rows)
        legit = len(rows) - int(labels.sum())
        assert 0.23 < legit / int((labels == 0).sum()) < 0.27
    assert set(first) != set(second)
    np.testing.assert_array_equal(one_pass(0), first)
    every = trainer.pass_rows(fraud, 0, 1.0, tf.constant(0, tf.int64)).numpy()
    np.testing.assert_array_equal(np.sort(every), np.arange(len(labels)))


def test_negative_sampling_shortens_the_epoch_and_shifts_the_prior_as_a_weight():
    labels = np.array([1] * 100 + [0] * 900)
    config = TrainerConfig(batch_size=50, negative_sampling_rate=0.2)
    assert trainer.steps_per_epoch(None, labels, config) == (100 + 180) // 50 + 1
    counts = {0: 900, 1: 100}
    none = trainer.class_weights(counts, "none")
    # Training on 180 of 900 legitimate rows is a legitimate weight of 0.2: odds x 5.
    assert trainer.logit_shift(counts, none, 0, 0.2) == pytest.approx(math.log(5))
    trained_rate = 100 / (100 + 0.2 * 900)
    assert _sigmoid(_logit(trained_rate) - math.log(5)) == pytest.approx(0.1)
    for bad, match in ((dict(negative_sampling_rate=0.0), "must be in \\(0, 1\\]"),
                       (dict(negative_sampling_rate=1.5), "must be in \\(0, 1\\]"),
                       (dict(negative_sampling_rate=0.5, balanced_resampling=True),
                        "is below 1 with balanced_resampling")):
        with pytest.raises(UsageError, match="trainer.negative_sampling_rate " + match):
            trainer.validate_trainer_config(TrainerConfig(**bad))


def test_pruning_plan_ends_on_an_update_step():
    plan = compression.pruning_plan(total_steps=57, target_sparsity=0.5, begin_fraction=0.2,
                                    end_fraction=0.8)
    assert 1 <= plan.begin_step < plan.end_step <= 56
    assert (plan.end_step - plan.begin_step) % plan.frequency == 0
    with pytest.raises(ValueError, match="at least 3 training steps"):
        compression.pruning_plan(2, 0.5, 0.2, 0.8)


def test_trainer_config_errors_name_the_field():
    with pytest.raises(UsageError, match="class_weight_scheme"):
        trainer.trainer_config({"class_weight_scheme": "inverse"})
    with pytest.raises(UsageError, match="unknown keys"):
        trainer.trainer_config({"drop_out": 0.1})
    with pytest.raises(UsageError, match="trainer.dropout"):
        trainer.trainer_config({"dropout": 1.0})
    with pytest.raises(UsageError, match="trainer.seed"):
        trainer.trainer_config({"seed": -1})
    with pytest.raises(UsageError, match="trainer.early_stopping_patience"):
        trainer.trainer_config({"early_stopping_patience": -2})
    with pytest.raises(UsageError, match="warmup_examples"):
        trainer.trainer_config({"warmup_examples": 1001})
    with pytest.raises(UsageError, match="trainer.steps_per_execution must be at least 1"):
        trainer.trainer_config({"steps_per_execution": 0})
    for ratio in (-0.5, float("nan"), float("inf")):
        with pytest.raises(UsageError, match="trainer.synthetic_fraud_ratio .*per real fraud"):
            trainer.trainer_config({"synthetic_fraud_ratio": ratio})
    with pytest.raises(UsageError, match="trainer.synthetic_neighbours must be at least 1"):
        trainer.trainer_config({"synthetic_neighbours": 0})
    assert trainer.trainer_config({"synthetic_fraud_ratio": 4}).synthetic_fraud_ratio == 4
    assert trainer.trainer_config({"hidden_units": [8]}).hidden_units == (8,)


def test_transformed_examples_are_rejected_with_a_clear_error(tmp_path):
    path = tmp_path / "Split-train" / "data.gz"
    os.makedirs(path.parent)
    example = tf.train.Example()
    example.features.feature["amount_xf"].float_list.value.append(0.3)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        writer.write(example.SerializeToString())
    with pytest.raises(DataError, match="lacks raw features"):
        trainer.check_raw_examples([str(path.parent / "*")])


def test_the_same_seed_trains_the_same_model(raw_data, tmp_path):
    examples = _serialized(raw_data["eval_rows"][:64])
    scores, reports = {}, {}
    # Run d takes one batch per call of the train step instead of the default
    # steps_per_execution: the same steps, so the same model.
    for run, seed, steps_per_execution in (("a", 11, None), ("b", 11, None), ("c", 12, None),
                                           ("d", 11, 1)):
        options = {} if steps_per_execution is None else {
            "steps_per_execution": steps_per_execution}
        fn_args = make_fn_args(raw_data, tmp_path / run, epochs=1, seed=seed, **options)
        trainer.run_fn(fn_args)
        model = tf.saved_model.load(fn_args.serving_model_dir)
        scores[run] = model.signatures["serving_default"](
            examples=examples)[contract.OUTPUT_KEY].numpy()
        reports[run] = _read_json(fn_args.model_run_dir, calibration.CALIBRATION_FILE)
    np.testing.assert_array_equal(scores["a"], scores["b"])
    assert reports["a"] == reports["b"]
    assert not np.array_equal(scores["a"], scores["c"])
    np.testing.assert_allclose(scores["d"], scores["a"], rtol=1e-5, atol=1e-7)

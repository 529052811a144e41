"""The lean serving graph (components/lean_transform.py, export.LEAN) against the Transform layer's.

A small model is trained on the shared synthetic split (test_preprocessing's
`raw_data`) and exported twice from the same weights: with the lean graph, as
the pipeline exports it, and with the Transform layer (export.TRANSFORM_LAYER),
the reference whose scores the lean graph must give.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from common import serving_contract as contract
from components import export, features, lean_transform, preprocessing
from components import model as model_lib
from serving import servable
from serving.options import SESSION
from test_preprocessing import analyze, parse_raw, pipeline_schema, raw_data  # noqa: F401
from test_trainer import _raw_batch, _serialized

# serving_default and serving_raw: at most this far from the reference's scores.
PARITY = 1e-6
SCORES = (contract.OUTPUT_KEY, contract.RAW_SCORE_KEY)
# An optional feature, a whole categorical and a z-scored count.
EXCLUDED = ("distance_from_prev_km", "channel", "card_txn_count_7d")


def _train(tf_transform_output, rows):
    """A small model fitted briefly on rows, then half its first kernel zeroed, as if pruned."""
    tf.keras.utils.set_random_seed(3)
    model = model_lib.build_model(tf_transform_output, (32, 16), embedding_dim=4)
    model_lib.compile_model(model, learning_rate=0.003, steps_per_execution=1)
    spec = export.serving_feature_spec(tf_transform_output)
    transformed = tf_transform_output.transform_features_layer()(
        tf.io.parse_example(_serialized(rows), spec))
    inputs = model_lib.as_model_inputs(transformed, model_lib.input_names(tf_transform_output))
    model.fit(inputs, np.array([row["is_fraud"] for row in rows]), epochs=2, batch_size=64,
              verbose=0)
    kernel = model.get_layer("hidden_0").kernel
    kernel.assign(tf.where(tf.abs(kernel) < np.median(np.abs(kernel.numpy())), 0.0, kernel))
    return model


def _export_both(tf_transform_output, rows, warmup, directory):
    """{graph: loaded SavedModel} of one trained model exported with each graph, and the model."""
    model = _train(tf_transform_output, rows)
    examples = [features.serialize_example(row) for row in warmup]
    paths = {}
    for graph in (export.LEAN, export.TRANSFORM_LAYER):
        paths[graph] = str(directory / graph)
        export.export_serving_model(model, tf_transform_output, paths[graph], examples,
                                    num_warmup_records=3, logit_shift=1.5, serving_graph=graph)
    return paths, model


@pytest.fixture(scope="module")
def exported(raw_data, tmp_path_factory):  # noqa: F811
    paths, model = _export_both(raw_data["transform_output"], raw_data["train_rows"],
                                raw_data["eval_rows"], tmp_path_factory.mktemp("lean"))
    return {graph: tf.saved_model.load(path) for graph, path in paths.items()}, paths, model


@pytest.fixture(scope="module")
def eval_rows(raw_data):  # noqa: F811
    """64 eval rows with absent optional features, and an unseen merchant category in row 0."""
    rows = [dict(row) for row in raw_data["eval_rows"][:64]]
    rows[0]["merchant_category"] = "spaceport"
    for name in features.OPTIONAL_FEATURES:
        assert any(name not in row for row in rows), name
    return rows


def _max_differences(loaded, rows, inputs_of, signature):
    lean, reference = (loaded[graph].signatures[signature](**inputs_of(rows))
                       for graph in (export.LEAN, export.TRANSFORM_LAYER))
    return {key: float(np.max(np.abs(lean[key].numpy() - reference[key].numpy())))
            for key in SCORES}


@pytest.mark.parametrize("batch", [1, 64])
def test_lean_scores_are_the_transform_layers(exported, eval_rows, batch):
    loaded, _, _ = exported
    for start in range(0, len(eval_rows), batch)[:3]:
        rows = eval_rows[start:start + batch]
        default = _max_differences(loaded, rows, lambda r: {"examples": _serialized(r)},
                                   contract.SERVING_DEFAULT)
        raw = _max_differences(loaded, rows, _raw_batch, contract.SERVING_RAW)
        assert max(default.values()) <= PARITY, default
        assert max(raw.values()) <= PARITY, raw


def test_classify_and_regress_follow_the_lean_probability(exported, eval_rows):
    loaded, _, _ = exported
    lean = loaded[export.LEAN].signatures
    probability = lean[contract.SERVING_DEFAULT](
        examples=_serialized(eval_rows))[contract.OUTPUT_KEY].numpy()
    scores = lean[contract.CLASSIFICATION](inputs=_serialized(eval_rows))["scores"].numpy()
    regressed = lean[contract.REGRESSION](inputs=_serialized(eval_rows))["outputs"].numpy()
    np.testing.assert_allclose(scores[:, 1], probability, rtol=1e-6)
    np.testing.assert_allclose(regressed, probability, rtol=1e-6)


def test_the_lean_graph_is_a_fraction_of_the_transform_layers(exported):
    loaded, _, _ = exported

    def nodes(graph):
        graph_def = loaded[graph].signatures[contract.SERVING_DEFAULT].graph.as_graph_def()
        return len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)

    assert nodes(export.LEAN) < 0.3 * nodes(export.TRANSFORM_LAYER)


def test_the_exported_variables_are_the_models_own(exported):
    loaded, _, model = exported
    saved = {v.name: v.numpy() for v in loaded[export.LEAN].model_variables}
    assert set(saved) == {v.name for v in model.variables}
    for variable in model.variables:
        np.testing.assert_array_equal(saved[variable.name], variable.numpy())
    assert np.mean(saved["hidden_0/kernel:0"] == 0.0) >= 0.5


def test_lean_constants_agree_with_the_transform_on_the_training_split(raw_data):  # noqa: F811
    transform_output, rows = raw_data["transform_output"], raw_data["train_rows"]
    spec = export.serving_feature_spec(transform_output)
    lean = lean_transform.LeanTransform.from_transform_output(transform_output, spec)(
        tf.io.parse_example(_serialized(rows), lean_transform.parse_spec(spec)))
    reference = transform_output.transform_features_layer()(parse_raw(transform_output, rows))
    assert set(lean) == set(model_lib.input_names(transform_output))
    for name, value in lean.items():
        assert value.shape == (len(rows), 1), name
        np.testing.assert_allclose(value.numpy()[:, 0], reference[name].numpy(), rtol=0,
                                   atol=5e-7, err_msg=name)


def test_an_unseen_category_gets_the_oov_id(raw_data, eval_rows):  # noqa: F811
    transform_output = raw_data["transform_output"]
    spec = export.serving_feature_spec(transform_output)
    lean = lean_transform.LeanTransform.from_transform_output(transform_output, spec)
    ids = lean(tf.io.parse_example(_serialized(eval_rows[:2]), lean_transform.parse_spec(spec)))
    name = preprocessing.transformed_name("merchant_category")
    vocabulary = transform_output.vocabulary_size_by_name(
        preprocessing.vocabulary_name("merchant_category"))
    assert ids[name].numpy()[0, 0] == vocabulary
    assert 0 <= ids[name].numpy()[1, 0] < vocabulary


def test_an_example_without_a_required_feature_is_an_error_naming_it(exported, eval_rows):
    loaded, _, _ = exported
    rows = [dict(row) for row in eval_rows[:3]]
    del rows[1]["card_txn_count_24h"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="card_txn_count_24h"):
        loaded[export.LEAN].signatures[contract.SERVING_DEFAULT](examples=_serialized(rows))


def test_nan_in_a_required_feature_is_an_error_naming_it(exported, eval_rows):
    loaded, _, _ = exported
    batch = _raw_batch(eval_rows[:3])
    batch["card_amount_sum_24h"] = tf.constant([1.0, np.nan, 2.0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="card_amount_sum_24h is NaN"):
        loaded[export.LEAN].signatures[contract.SERVING_RAW](**batch)


def test_the_session_call_path_serves_the_lean_model(exported, eval_rows):
    loaded, paths, _ = exported
    served = servable.load_servable("fraud", 1, paths[export.LEAN], model_call_path=SESSION)
    assert served.call_path == SESSION, served.fallback_reason
    examples = np.array([features.serialize_example(row) for row in eval_rows], dtype=object)
    session = served.run(contract.SERVING_DEFAULT, {contract.EXAMPLES_INPUT: examples}, SCORES)
    eager = loaded[export.LEAN].signatures[contract.SERVING_DEFAULT](
        examples=tf.constant(examples))
    raw = served.run(contract.SERVING_RAW, {k: v.numpy() for k, v in _raw_batch(eval_rows).items()},
                     SCORES)
    for key in SCORES:
        np.testing.assert_allclose(session[key], eager[key].numpy(), rtol=0, atol=PARITY)
        np.testing.assert_allclose(raw[key], eager[key].numpy(), rtol=0, atol=PARITY)


def test_an_export_whose_rule_differs_from_the_transform_fails_naming_the_features(
        raw_data, monkeypatch):  # noqa: F811
    transform_output = raw_data["transform_output"]
    spec = export.serving_feature_spec(transform_output)
    # A rate rule changed after the Transform was analyzed.
    monkeypatch.setattr(preprocessing, "rate",
                        lambda x: tf.clip_by_value(tf.cast(x, tf.float32), 0.0, 2.0))
    with pytest.raises(ValueError, match="terminal_fraud_rate_7d_xf"):
        lean_transform.LeanTransform.from_transform_output(transform_output, spec)


def test_a_model_feature_without_a_lean_rule_fails_the_export(raw_data, monkeypatch):  # noqa: F811
    rules = {rule: names for rule, names in lean_transform._RULE_FEATURES.items()
             if rule != lean_transform.FLAG}
    monkeypatch.setattr(lean_transform, "_RULE_FEATURES", rules)
    spec = export.serving_feature_spec(raw_data["transform_output"])
    with pytest.raises(ValueError, match="is_weekend.*no lean serving rule"):
        lean_transform.LeanTransform.from_transform_output(raw_data["transform_output"], spec)


def test_excluded_features_are_neither_taken_nor_needed(raw_data, eval_rows, tmp_path):  # noqa: F811
    root = raw_data["root"]
    transform_output = analyze(str(root / "examples" / "Split-train" / "*"), pipeline_schema(),
                               str(tmp_path / "transform_graph"), str(tmp_path / "tmp"), EXCLUDED)
    paths, _ = _export_both(transform_output, raw_data["train_rows"], raw_data["eval_rows"],
                            tmp_path)
    loaded = {graph: tf.saved_model.load(path) for graph, path in paths.items()}
    lean = loaded[export.LEAN].signatures[contract.SERVING_RAW]
    assert set(lean.structured_input_signature[1]) == set(features.selected_features(EXCLUDED))
    stripped = [{k: v for k, v in row.items() if k not in EXCLUDED} for row in eval_rows]
    default = _max_differences(loaded, stripped, lambda r: {"examples": _serialized(r)},
                               contract.SERVING_DEFAULT)
    assert max(default.values()) <= PARITY, default
    selected = features.selected_features(EXCLUDED)
    raw = _max_differences(loaded, eval_rows, lambda r: {
        k: v for k, v in _raw_batch(r).items() if k in selected}, contract.SERVING_RAW)
    assert max(raw.values()) <= PARITY, raw
    assert os.path.exists(os.path.join(paths[export.LEAN], contract.SAVED_MODEL_FILENAME))

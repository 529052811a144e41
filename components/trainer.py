"""The Trainer component's `run_fn`: train, compress and export the fraud model.

Wiring: the Trainer reads the *raw* FeatureGen examples together with the
Transform graph (`Trainer(examples=<FeatureGen examples>,
transform_graph=transform.outputs['transform_graph'], ...)`; Transform may run
with `materialize=False`). Training applies the same Transform layer the
serving signatures apply, so there is one preprocessing path, and the warmup
requests are real raw eval examples.

Hyperparameters come from `fn_args.custom_config`, a
`dataclasses.asdict(components.trainer_config.TrainerConfig)`.

Steps:
1. Class balance from the training split's label counts (recorded by the
   Transform analysis, see components.preprocessing): class weights with the
   configured scheme, or balanced resampling with tf.data instead; and the
   prior correction that undoes either in the served probability
   (components/export.py).
2. Under tf.distribute.MirroredStrategy: build the model, wrap its Dense layers
   for magnitude pruning, train with TensorBoard logs in `model_run_dir`.
3. Strip the pruning wrappers; optionally fine-tune quantization-aware.
4. Record the class balance, the achieved sparsity, and the Brier score and
   ECE of the raw and the calibrated score on the eval split as JSON in
   `model_run_dir` (class_balance.json, compression.json, calibration.json).
5. Export the serving model with its signatures and warmup requests.
"""
import dataclasses
import json
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from common.errors import DataError, UsageError
from common.serving_contract import MAX_WARMUP_RECORDS, OUTPUT_KEY, RAW_SCORE_KEY
from components import calibration, compression, export
from components import model as model_lib
from components.features import LABEL_KEY, MODEL_FEATURES, OPTIONAL_FEATURES
from components.preprocessing import LABEL_COUNTS_VOCAB
from components.trainer_config import TrainerConfig

CLASS_WEIGHT_SCHEMES = ("balanced", "sqrt", "none")
CLASSES = (0, 1)
COMPRESSION_FILE = "compression.json"
CLASS_BALANCE_FILE = "class_balance.json"
# QAT fine-tunes a trained model: a smaller step keeps it near its optimum.
QAT_LEARNING_RATE_SCALE = 0.1
# The fraud share of balanced resampling's batches.
RESAMPLED_FRAUD_SHARE = 0.5


# ---------------------------------------------------------------------------
# Configuration.

def trainer_config(custom_config: Optional[dict]) -> TrainerConfig:
    """The TrainerConfig of a custom_config dict (JSON round trip turns tuples into lists)."""
    values = dict(custom_config or {})
    known = {field.name for field in dataclasses.fields(TrainerConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"trainer custom_config: unknown keys {unknown} (known: {sorted(known)})")
    if "hidden_units" in values:
        values["hidden_units"] = tuple(values["hidden_units"])
    config = TrainerConfig(**values)
    validate_trainer_config(config)
    return config


def validate_trainer_config(config: TrainerConfig) -> None:
    """Raises UsageError naming the first invalid TrainerConfig field."""
    def fail(field, requirement):
        raise UsageError(f"trainer.{field} {requirement}, got {getattr(config, field)!r}")

    if config.class_weight_scheme not in CLASS_WEIGHT_SCHEMES:
        fail("class_weight_scheme", f"must be one of {', '.join(CLASS_WEIGHT_SCHEMES)}")
    if not config.hidden_units or min(config.hidden_units) < 1:
        fail("hidden_units", "must be a non-empty list of positive sizes")
    for field in ("embedding_dim", "batch_size", "epochs", "qat_epochs"):
        if getattr(config, field) < 1:
            fail(field, "must be at least 1")
    if config.learning_rate <= 0:
        fail("learning_rate", "must be positive")
    if not 0.0 <= config.target_sparsity < 1.0:
        fail("target_sparsity", "must be in [0, 1)")
    if not 0.0 <= config.pruning_begin_fraction < config.pruning_end_fraction <= 1.0:
        fail("pruning_begin_fraction", "must be in [0, pruning_end_fraction)")
    if config.l2 < 0:
        fail("l2", "must be >= 0")
    if not 0.0 <= config.dropout < 1.0:
        fail("dropout", "must be in [0, 1)")
    for field in ("early_stopping_patience", "pruning_epochs"):
        if getattr(config, field) < 0:
            fail(field, "must be >= 0")
    if config.seed is not None and config.seed < 0:
        fail("seed", "must be a non-negative integer or null")
    if not 0 <= config.warmup_examples <= MAX_WARMUP_RECORDS:
        fail("warmup_examples", f"must be in [0, {MAX_WARMUP_RECORDS}]")


def seed_training(seed: Optional[int]) -> None:
    """Seeds Python, NumPy and TensorFlow and makes TensorFlow's ops deterministic."""
    if seed is None:
        return
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# ---------------------------------------------------------------------------
# Class balance.

def label_counts(tf_transform_output: tft.TFTransformOutput) -> Dict[int, int]:
    """Label -> number of examples in the split the Transform analyzed (train)."""
    path = tf_transform_output.vocabulary_file_by_name(LABEL_COUNTS_VOCAB)
    counts = {}
    with tf.io.gfile.GFile(path) as f:
        for line in f:
            count, label = line.split()
            counts[int(label)] = int(count)
    unexpected = sorted(set(counts) - set(CLASSES))
    if unexpected:
        raise DataError(f"{LABEL_KEY} must be 0 or 1; the training split has {unexpected}")
    return counts


def class_weights(counts: Dict[int, int], scheme: str) -> Dict[int, float]:
    """Per-class loss weights from label counts.

    balanced: n / (2 * n_class), each class contributes equally to the loss;
    sqrt: the square root of balanced, a milder correction; none: all 1.
    """
    empty = [label for label in CLASSES if counts.get(label, 0) == 0]
    if empty:
        raise DataError(f"the training split has no examples with {LABEL_KEY}={empty[0]}")
    total = sum(counts[label] for label in CLASSES)
    balanced = {label: total / (len(CLASSES) * counts[label]) for label in CLASSES}
    if scheme == "balanced":
        return balanced
    if scheme == "sqrt":
        return {label: math.sqrt(weight) for label, weight in balanced.items()}
    if scheme == "none":
        return {label: 1.0 for label in CLASSES}
    raise UsageError(f"trainer.class_weight_scheme must be one of {CLASS_WEIGHT_SCHEMES}, "
                     f"got {scheme!r}")


def logit_shift(counts: Dict[int, int], class_weight: Optional[Dict[int, float]]) -> float:
    """The prior correction of the served score: class weights, or resampling when None."""
    if class_weight is None:
        return calibration.resampling_logit_shift(counts, RESAMPLED_FRAUD_SHARE)
    return calibration.weighting_logit_shift(class_weight)


# ---------------------------------------------------------------------------
# Data.

def _list_files(patterns: Sequence[str]) -> List[str]:
    files = sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise DataError(f"no example files match {list(patterns)}")
    return files


def read_serialized_examples(patterns: Sequence[str], limit: int) -> List[bytes]:
    """Up to `limit` serialized tf.Examples from TFRecord files (gzipped when *.gz)."""
    records: List[bytes] = []
    for path in _list_files(patterns):
        compression_type = "GZIP" if path.endswith(".gz") else ""
        dataset = tf.data.TFRecordDataset(path, compression_type=compression_type)
        records.extend(record.numpy() for record in dataset.take(limit - len(records)))
        if len(records) >= limit:
            break
    return records


def check_raw_examples(patterns: Sequence[str]) -> None:
    """Fails clearly when the Trainer was wired to transformed instead of raw examples."""
    path = _list_files(patterns)[0]
    first = read_serialized_examples([path], 1)
    if not first:
        raise DataError(f"{path}: no examples")
    present = set(tf.train.Example.FromString(first[0]).features.feature)
    required = [name for name in MODEL_FEATURES if name not in OPTIONAL_FEATURES] + [LABEL_KEY]
    absent = [name for name in required if name not in present]
    if absent:
        raise DataError(
            f"{path}: example lacks raw features {absent}; the Trainer reads the raw "
            "FeatureGen examples with the Transform graph, not transformed examples")


def transformed_dataset(files: Sequence[str], data_accessor, tf_transform_output,
                        batch_size: int, num_epochs: Optional[int], label_key: str = LABEL_KEY,
                        seed: Optional[int] = None, shuffle: bool = True) -> tf.data.Dataset:
    """Batches of (model inputs, label [batch, 1] float) from raw examples.

    `seed` fixes the shuffle order (with seeded training, the same data gives the
    same model); `shuffle=False` keeps the files' order, for scoring.
    """
    raw = data_accessor.tf_dataset_factory(
        list(files),
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, num_epochs=num_epochs,
                                       shuffle=shuffle, shuffle_seed=seed),
        tf_transform_output.raw_metadata.schema)
    layer = tf_transform_output.transform_features_layer()
    names = model_lib.input_names(tf_transform_output, label_key)

    # Converting the Transform layer's Python code with autograph costs seconds
    # and buys nothing: it has no tensor-dependent Python control flow.
    @tf.autograph.experimental.do_not_convert
    def to_model_inputs(raw_features):
        transformed = layer(raw_features)
        label = tf.cast(tf.expand_dims(transformed[label_key], axis=-1), tf.float32)
        return model_lib.as_model_inputs(transformed, names), label

    return raw.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE)


def balanced_batches(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """Batches drawing frauds with probability RESAMPLED_FRAUD_SHARE from a repeating dataset."""
    examples = dataset.unbatch()
    by_class = [examples.filter(lambda _, label, c=float(c): tf.equal(label[0], c))
                for c in CLASSES]
    weights = [1.0 - RESAMPLED_FRAUD_SHARE, RESAMPLED_FRAUD_SHARE]
    return tf.data.Dataset.sample_from_datasets(by_class, weights=weights).batch(batch_size)


def steps_per_epoch(train_steps: Optional[int], num_train_examples: int,
                    config: TrainerConfig) -> int:
    """TrainArgs.num_steps spread over the epochs, or one pass over the train split per epoch."""
    if train_steps:
        return math.ceil(train_steps / config.epochs)
    return max(1, math.ceil(num_train_examples / config.batch_size))


# ---------------------------------------------------------------------------
# Training.

def _fit(model, train, evaluation, eval_steps, epochs: Tuple[int, int], steps: int,
         class_weight, callbacks) -> None:
    model.fit(train, initial_epoch=epochs[0], epochs=epochs[1], steps_per_epoch=steps,
              validation_data=evaluation, validation_steps=eval_steps,
              class_weight=class_weight, callbacks=callbacks, verbose=2)


def write_json(directory: str, name: str, value) -> None:
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(os.path.join(directory, name), "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)


def _datasets(fn_args, tf_transform_output, config: TrainerConfig):
    """The repeating train dataset (resampled if configured) and the eval dataset."""
    train = transformed_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                                config.batch_size, num_epochs=None, seed=config.seed)
    if config.balanced_resampling:
        train = balanced_batches(train, config.batch_size)
    evaluation = transformed_dataset(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, config.batch_size,
        num_epochs=None if fn_args.eval_steps else 1)
    return train, evaluation


def _train(fn_args, tf_transform_output, config: TrainerConfig, steps: int, class_weight):
    """Trains (pruning, then optional QAT) under MirroredStrategy; returns (model, plan)."""
    train, evaluation = _datasets(fn_args, tf_transform_output, config)
    plan = None
    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        model = model_lib.build_model(tf_transform_output, config.hidden_units,
                                      config.embedding_dim)
        if config.target_sparsity > 0:
            plan = compression.pruning_plan(steps * config.epochs, config.target_sparsity,
                                            config.pruning_begin_fraction,
                                            config.pruning_end_fraction)
            model = compression.prune_dense_layers(model, plan)
        model_lib.compile_model(model, config.learning_rate)
    callbacks = (compression.pruning_callbacks(fn_args.model_run_dir) if plan else
                 [tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)])
    _fit(model, train, evaluation, fn_args.eval_steps, (0, config.epochs), steps,
         class_weight, callbacks)

    with strategy.scope():
        if plan:
            model = compression.strip_pruning(model)
        if config.quantization_aware:
            model = compression.quantize_dense_layers(model)
            model_lib.compile_model(model, config.learning_rate * QAT_LEARNING_RATE_SCALE)
    if config.quantization_aware:
        _fit(model, train, evaluation, fn_args.eval_steps,
             (config.epochs, config.epochs + config.qat_epochs), steps, class_weight,
             [tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)])
    return model, plan


def write_reports(model_run_dir: str, config: TrainerConfig, model, plan,
                   counts: Dict[int, int], class_weight) -> None:
    """compression.json (achieved sparsity) and class_balance.json, for the run summary."""
    sparsity = compression.dense_kernel_sparsity(model)
    write_json(model_run_dir, COMPRESSION_FILE, {
        "target_sparsity": config.target_sparsity,
        "pruning": dataclasses.asdict(plan) if plan else None,
        "quantization_aware": config.quantization_aware,
        "dense_kernel_sparsity": sparsity,
        "min_dense_kernel_sparsity": min(sparsity.values()),
    })
    write_json(model_run_dir, CLASS_BALANCE_FILE, {
        "label_counts": {str(label): counts.get(label, 0) for label in CLASSES},
        "class_weight_scheme": config.class_weight_scheme,
        "balanced_resampling": config.balanced_resampling,
        "class_weight": ({str(label): w for label, w in class_weight.items()}
                         if class_weight else None),
    })


def _eval_labels_and_scores(fn_args, tf_transform_output, config: TrainerConfig,
                            model) -> Tuple[np.ndarray, np.ndarray]:
    """The labels and the model's raw scores over one pass of the eval split."""
    dataset = transformed_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                                  config.batch_size, num_epochs=1)
    labels, scores = [], []
    for inputs, label in dataset:
        labels.append(label.numpy()[:, 0])
        scores.append(model(inputs, training=False).numpy()[:, 0])
    return np.concatenate(labels), np.concatenate(scores)


def _write_calibration(fn_args, tf_transform_output, config: TrainerConfig, model,
                       shift: float) -> None:
    """calibration.json: Brier and ECE of the raw and the calibrated score on the eval split.

    Measured after the shift is fixed from the training split, so the eval
    split only reports on it.
    """
    labels, raw = _eval_labels_and_scores(fn_args, tf_transform_output, config, model)
    calibrated = export.calibrated_probability(tf.constant(raw), shift).numpy()
    write_json(fn_args.model_run_dir, calibration.CALIBRATION_FILE, {
        "logit_shift": shift,
        "eval_examples": len(labels),
        "ece_bins": calibration.ECE_BINS,
        RAW_SCORE_KEY: calibration.calibration_errors(labels, raw),
        OUTPUT_KEY: calibration.calibration_errors(labels, calibrated),
    })


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (GenericExecutor)."""
    config = trainer_config(fn_args.custom_config)
    seed_training(config.seed)
    model_lib.skip_autograph_for_tf_keras()
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    check_raw_examples(fn_args.train_files)

    counts = label_counts(tf_transform_output)
    # Computed (and both classes checked) even when resampling replaces them.
    weights = class_weights(counts, config.class_weight_scheme)
    class_weight = None if config.balanced_resampling else weights
    shift = logit_shift(counts, class_weight)
    steps = steps_per_epoch(fn_args.train_steps, sum(counts.values()), config)

    model, plan = _train(fn_args, tf_transform_output, config, steps, class_weight)
    write_reports(fn_args.model_run_dir, config, model, plan, counts, class_weight)
    _write_calibration(fn_args, tf_transform_output, config, model, shift)

    warmup_needed = sum(export.WARMUP_BATCH_SIZES[i % len(export.WARMUP_BATCH_SIZES)]
                        for i in range(config.warmup_examples))
    warmup = read_serialized_examples(fn_args.eval_files, warmup_needed)
    export.export_serving_model(model, tf_transform_output, fn_args.serving_model_dir,
                                warmup, config.warmup_examples, shift)

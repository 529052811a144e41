"""The Trainer component's `run_fn`: train, compress and export the fraud model.

Wiring: the Trainer reads the *raw* FeatureGen examples together with the
Transform graph (`Trainer(examples=<FeatureGen examples>,
transform_graph=transform.outputs['transform_graph'], ...)`; Transform may run
with `materialize=False`). Each split goes once through the lean transform the
serving signatures apply (components/lean_transform.py: the Transform's
constants, checked against its layer), so there is one preprocessing path,
and training runs on the transformed arrays in memory
(components/transformed_arrays.py); the warmup requests are real raw eval
examples.

Memory bound: both splits must fit in memory. A transformed row of the fraud
model takes 164 bytes (35 float32 inputs, 2 int64 ids, the int64 label), and
training holds the training split, synthetic frauds included, once more as the
tensors its batches are gathered from: about (2 x train + eval rows) x 164
bytes, 0.33 GB per million training transactions.

Hyperparameters come from `fn_args.custom_config`, a
`dataclasses.asdict(components.trainer_config.TrainerConfig)`.

Steps:
1. Class balance from the training split's label counts (recorded by the
   Transform analysis, see components.preprocessing): class weights with the
   configured scheme, or balanced resampling of the in-memory split instead;
   optionally synthetic frauds added to the training split
   (components/synthetic_minority.py); and the prior correction that undoes
   all of it in the served probability (components/export.py).
2. Under tf.distribute.MirroredStrategy: optionally train a wider teacher
   first (`teacher_width_multiplier`); build the model, wrap its Dense layers
   for magnitude pruning, train it (on the teacher's softened scores beside
   the labels when there is a teacher, components/distillation.py) with
   TensorBoard logs in `model_run_dir`.
3. Strip the pruning wrappers; optionally fine-tune quantization-aware.
4. Record the class balance (and the number of synthetic frauds), the
   achieved sparsity and parameter counts, and the Brier score and ECE of the
   raw and the calibrated score on the eval split as JSON in `model_run_dir`
   (class_balance.json, compression.json, calibration.json); optionally the
   model's two int8 TFLite forms there too (`tflite_int8`:
   compression.TFLITE_FILE and TFLITE_WEIGHTS_FILE).
5. Export the serving model with its signatures and warmup requests.

The variants a bank compares (benchmarks/compression.py) are configs of this
one Trainer: dense (`target_sparsity: 0`), pruned (the default), pruned and
quantization-aware, a distilled student, and the int8 TFLite forms.
"""
import dataclasses
import json
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from common.errors import DataError, UsageError
from common.serving_contract import MAX_WARMUP_RECORDS, OUTPUT_KEY, RAW_SCORE_KEY
from components import (calibration, compression, distillation, export, lean_transform,
                        synthetic_minority)
from components import model as model_lib
from components.features import LABEL_KEY, MODEL_FEATURES, OPTIONAL_FEATURES
from components.preprocessing import LABEL_COUNTS_VOCAB
from components.trainer_config import TrainerConfig
from components.transformed_arrays import (READ_BATCH_SIZE, Split, read_split_with,
                                           serialized_records)

CLASS_WEIGHT_SCHEMES = ("balanced", "sqrt", "none")
CLASSES = (0, 1)
COMPRESSION_FILE = "compression.json"
CLASS_BALANCE_FILE = "class_balance.json"
# QAT fine-tunes a trained model: a smaller step keeps it near its optimum.
QAT_LEARNING_RATE_SCALE = 0.1
# The fraud share of balanced resampling's batches.
RESAMPLED_FRAUD_SHARE = 0.5
# The teacher's TensorBoard logs, inside model_run_dir.
TEACHER_LOG_DIR = "teacher"


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
    for field in ("embedding_dim", "batch_size", "epochs", "qat_epochs", "synthetic_neighbours",
                  "steps_per_execution"):
        if getattr(config, field) < 1:
            fail(field, "must be at least 1")
    if not 0.0 <= config.synthetic_fraud_ratio < math.inf:
        fail("synthetic_fraud_ratio", "must be a finite number >= 0 (synthetic frauds per "
                                      "real fraud of the training split)")
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
    if config.teacher_width_multiplier < 0:
        fail("teacher_width_multiplier", "must be >= 0 (0: no teacher)")
    if not 0.0 <= config.distillation_alpha <= 1.0:
        fail("distillation_alpha", "must be in [0, 1]")
    if not config.distillation_temperature > 0:
        fail("distillation_temperature", "must be positive")
    if not 0.0 < config.negative_sampling_rate <= 1.0:
        fail("negative_sampling_rate", "must be in (0, 1] (1: no downsampling)")
    if config.negative_sampling_rate < 1.0 and config.balanced_resampling:
        fail("negative_sampling_rate", "is below 1 with balanced_resampling, which draws its "
                                       "own class shares; set one of them")
    if config.tflite_int8 and config.quantization_aware:
        fail("tflite_int8", "converts the pruned or dense model, not a quantization-aware one")
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


def logit_shift(counts: Dict[int, int], class_weight: Optional[Dict[int, float]],
                synthetic_frauds: int = 0, negative_sampling_rate: float = 1.0) -> float:
    """The prior correction of the served score: class weights, or resampling when None.

    `counts` are the real training split's. Synthetic frauds are extra fraud
    weight: n1 real frauds trained beside s synthetic ones at weight w1 weigh
    as n1 frauds at w1 (n1 + s) / n1, so the served probability stays that of
    the real fraud rate. Resampling draws its fraud share from real and
    synthetic frauds alike, so they leave its correction unchanged.
    """
    if class_weight is None:
        return calibration.resampling_logit_shift(counts, RESAMPLED_FRAUD_SHARE)
    fraud_weight = class_weight[1] * (counts[1] + synthetic_frauds) / counts[1]
    return calibration.weighting_logit_shift({0: class_weight[0] * negative_sampling_rate,
                                              1: fraud_weight})


# ---------------------------------------------------------------------------
# Data.

def _list_files(patterns: Sequence[str]) -> List[str]:
    files = sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise DataError(f"no example files match {list(patterns)}")
    return files


def read_serialized_examples(patterns: Sequence[str], limit: int) -> List[bytes]:
    """Up to `limit` serialized tf.Examples from TFRecord files (gzipped when *.gz)."""
    return [record.numpy() for record in serialized_records(_list_files(patterns)).take(limit)]


def read_splits(fn_args, tf_transform_output: tft.TFTransformOutput) -> Tuple[Split, Split]:
    """The train and eval splits through the lean serving transform, as arrays."""
    feature_spec = export.serving_feature_spec(tf_transform_output)
    lean = lean_transform.LeanTransform.from_transform_output(tf_transform_output, feature_spec)
    spec = lean_transform.parse_spec(feature_spec)
    names = model_lib.input_names(tf_transform_output)
    train, evaluation = (read_split_with(_list_files(patterns), lean, spec, names)
                         for patterns in (fn_args.train_files, fn_args.eval_files))
    return train, evaluation


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


def _balanced_rows(labels: np.ndarray, batch_size: int, seed: Optional[int]) -> tf.data.Dataset:
    """Endless batches of rows, each a fraud with probability RESAMPLED_FRAUD_SHARE.

    Rows are drawn with replacement within their class, a whole batch at a
    time: per-row sampling in tf.data costs more than the training step.
    """
    by_class = [tf.constant(np.flatnonzero(labels == label)) for label in CLASSES]

    def draw(batch_seed):
        seeds = tf.random.experimental.stateless_split(batch_seed, num=len(CLASSES) + 1)
        fraud = tf.random.stateless_uniform([batch_size], seeds[0]) < RESAMPLED_FRAUD_SHARE
        legit, fraudulent = (
            tf.gather(rows, tf.random.stateless_uniform(
                [batch_size], seeds[i + 1], maxval=tf.size(rows, out_type=tf.int64),
                dtype=tf.int64))
            for i, rows in enumerate(by_class))
        return tf.where(fraud, fraudulent, legit)

    return tf.data.Dataset.random(seed=seed).batch(2).map(draw)


def pass_rows(fraud: tf.Tensor, seed: Optional[int], negative_sampling_rate: float,
              epoch: tf.Tensor) -> tf.Tensor:
    """The row indices of one pass, shuffled: every row, or every fraud and a fresh
    `negative_sampling_rate` share of the legitimate rows (`fraud`: a [rows] bool)."""
    rows = tf.range(tf.size(fraud, out_type=tf.int64))
    if negative_sampling_rate < 1.0:
        uniform = (tf.random.uniform(tf.shape(fraud)) if seed is None else
                   tf.random.stateless_uniform(
                       tf.shape(fraud), tf.stack([tf.constant(seed + 1, tf.int64), epoch])))
        rows = tf.boolean_mask(rows, fraud | (uniform < negative_sampling_rate))
    # One permutation per pass in a single op: a shuffle buffer of the whole
    # split costs about 2 CPU seconds per million rows and pass (a sixth of
    # the fitting CPU at 1 M transactions).
    if seed is None:
        return tf.random.shuffle(rows)
    return tf.random.experimental.stateless_shuffle(
        rows, seed=tf.stack([tf.constant(seed, tf.int64), epoch]))


def _row_batches(labels: np.ndarray, batch_size: int, seed: Optional[int],
                 balanced: bool, negative_sampling_rate: float = 1.0) -> tf.data.Dataset:
    """Endless batches of row indices: shuffled passes over the split, or balanced draws."""
    if balanced:
        return _balanced_rows(labels, batch_size, seed)
    fraud = tf.constant(labels == 1)
    return (tf.data.Dataset.counter()
            .map(lambda epoch: pass_rows(fraud, seed, negative_sampling_rate, epoch))
            .unbatch().batch(batch_size))


def _float_labels(split: Split) -> np.ndarray:
    return split.labels[:, None].astype(np.float32)


def training_batches(train: Split, batch_size: int, seed: Optional[int] = None,
                     balanced: bool = False,
                     negative_sampling_rate: float = 1.0) -> tf.data.Dataset:
    """Endless batches of (model inputs, label [batch, 1] float) gathered from the split.

    Indexing the split in memory keeps even balanced resampling to the cost of
    a gather; `seed` fixes the order (with seeded training, the same data give
    the same model).
    """
    # The inputs stacked by dtype: a batch is two gathers and two splits, not
    # one gather per input (those cost a fifth of the training CPU).
    names_by_dtype: Dict[np.dtype, List[str]] = {}
    for name, value in train.features.items():
        names_by_dtype.setdefault(value.dtype, []).append(name)
    stacks = {dtype: tf.constant(np.stack([train.features[name] for name in names], axis=1))
              for dtype, names in names_by_dtype.items()}
    labels = tf.constant(_float_labels(train))

    def gather(rows):
        inputs = {}
        for dtype, names in names_by_dtype.items():
            inputs.update(zip(names, tf.split(tf.gather(stacks[dtype], rows), len(names), axis=1)))
        return inputs, tf.gather(labels, rows)

    return (_row_batches(train.labels, batch_size, seed, balanced, negative_sampling_rate)
            .map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def steps_per_epoch(train_steps: Optional[int], labels: np.ndarray,
                    config: TrainerConfig) -> int:
    """TrainArgs.num_steps spread over the epochs, or one pass over the train split per epoch
    (over its frauds and its sampled share of legitimate rows)."""
    if train_steps:
        return math.ceil(train_steps / config.epochs)
    frauds = int(np.sum(labels == 1))
    rows = frauds + config.negative_sampling_rate * (len(labels) - frauds)
    return max(1, math.ceil(rows / config.batch_size))


# ---------------------------------------------------------------------------
# Training.

def _fit(model, train, evaluation, eval_steps, epochs: Tuple[int, int], steps: int,
         class_weight, callbacks) -> tf.keras.callbacks.History:
    return model.fit(train, initial_epoch=epochs[0], epochs=epochs[1], steps_per_epoch=steps,
                     validation_data=evaluation, validation_steps=eval_steps,
                     class_weight=class_weight, callbacks=callbacks, verbose=2)


def write_json(directory: str, name: str, value) -> None:
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(os.path.join(directory, name), "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)


def _datasets(train: Split, evaluation: Split, config: TrainerConfig, eval_steps):
    """The endless train batches (resampled if configured) and the eval batches."""
    batches = training_batches(train, config.batch_size, config.seed, config.balanced_resampling,
                               config.negative_sampling_rate)
    # Validation only accumulates metrics, which larger batches reach in fewer steps.
    validation = tf.data.Dataset.from_tensor_slices(
        (evaluation.model_inputs(), _float_labels(evaluation))).batch(READ_BATCH_SIZE)
    return batches, validation.repeat() if eval_steps else validation


def teacher_hidden_units(config: TrainerConfig) -> Tuple[int, ...]:
    return tuple(units * config.teacher_width_multiplier for units in config.hidden_units)


def _train_teacher(fn_args, tf_transform_output, config: TrainerConfig, steps: int,
                   class_weight, batches, validation, strategy) -> Tuple[tf.keras.Model, dict]:
    """The wider, unpruned teacher, trained as the student will be; and its last epoch's
    validation metrics."""
    with strategy.scope():
        teacher = model_lib.build_model(tf_transform_output, teacher_hidden_units(config),
                                        config.embedding_dim, name="teacher")
        model_lib.compile_model(teacher, config.learning_rate, config.steps_per_execution)
    history = _fit(teacher, batches, validation, fn_args.eval_steps, (0, config.epochs), steps,
                   class_weight, [tf.keras.callbacks.TensorBoard(
                       log_dir=os.path.join(fn_args.model_run_dir, TEACHER_LOG_DIR))])
    return teacher, {name: values[-1] for name, values in history.history.items()
                     if name.startswith("val_")}


def _train(fn_args, tf_transform_output, config: TrainerConfig, steps: int, class_weight,
           train: Split, evaluation: Split):
    """Trains (distillation from a teacher if configured, pruning, then optional QAT) under
    MirroredStrategy; returns (model, pruning plan, the teacher's validation metrics)."""
    batches, validation = _datasets(train, evaluation, config, fn_args.eval_steps)
    plan, teacher, teacher_metrics = None, None, None
    strategy = tf.distribute.MirroredStrategy()
    if config.teacher_width_multiplier:
        teacher, teacher_metrics = _train_teacher(fn_args, tf_transform_output, config, steps,
                                                  class_weight, batches, validation, strategy)
    with strategy.scope():
        model = model_lib.build_model(tf_transform_output, config.hidden_units,
                                      config.embedding_dim)
        if config.target_sparsity > 0:
            plan = compression.pruning_plan(steps * config.epochs, config.target_sparsity,
                                            config.pruning_begin_fraction,
                                            config.pruning_end_fraction)
            model = compression.prune_dense_layers(model, plan)
        trained = model if teacher is None else distillation.Distiller(
            model, teacher, config.distillation_alpha, config.distillation_temperature)
        model_lib.compile_model(trained, config.learning_rate, config.steps_per_execution)
    callbacks = (compression.pruning_callbacks(fn_args.model_run_dir) if plan else
                 [tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)])
    _fit(trained, batches, validation, fn_args.eval_steps, (0, config.epochs), steps,
         class_weight, callbacks)

    with strategy.scope():
        if plan:
            model = compression.strip_pruning(model)
        if config.quantization_aware:
            model = compression.quantize_dense_layers(model)
            model_lib.compile_model(model, config.learning_rate * QAT_LEARNING_RATE_SCALE,
                                    config.steps_per_execution)
    if config.quantization_aware:
        _fit(model, batches, validation, fn_args.eval_steps,
             (config.epochs, config.epochs + config.qat_epochs), steps, class_weight,
             [tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)])
    return model, plan, teacher_metrics


def _distillation_report(config: TrainerConfig, teacher_metrics: Optional[dict]):
    if not config.teacher_width_multiplier:
        return None
    return {"teacher_hidden_units": list(teacher_hidden_units(config)),
            "alpha": config.distillation_alpha, "temperature": config.distillation_temperature,
            "teacher_validation": teacher_metrics}


def write_reports(model_run_dir: str, config: TrainerConfig, model, plan,
                  counts: Dict[int, int], class_weight, synthetic_frauds: int = 0,
                  teacher_metrics: Optional[dict] = None) -> None:
    """compression.json (achieved sparsity, parameters, distillation) and class_balance.json,
    for the run summary."""
    sparsity = compression.dense_kernel_sparsity(model)
    write_json(model_run_dir, COMPRESSION_FILE, {
        "target_sparsity": config.target_sparsity,
        "pruning": dataclasses.asdict(plan) if plan else None,
        "quantization_aware": config.quantization_aware,
        "dense_kernel_sparsity": sparsity,
        "min_dense_kernel_sparsity": min(sparsity.values()),
        **compression.parameter_counts(model),
        "distillation": _distillation_report(config, teacher_metrics),
    })
    write_json(model_run_dir, CLASS_BALANCE_FILE, {
        "label_counts": {str(label): counts.get(label, 0) for label in CLASSES},
        "class_weight_scheme": config.class_weight_scheme,
        "balanced_resampling": config.balanced_resampling,
        "class_weight": ({str(label): w for label, w in class_weight.items()}
                         if class_weight else None),
        "synthetic_frauds": synthetic_frauds,
        "negative_sampling_rate": config.negative_sampling_rate,
    })


def _write_calibration(model_run_dir: str, model, evaluation: Split, shift: float) -> None:
    """calibration.json: Brier and ECE of the raw and the calibrated score on the eval split.

    Measured after the shift is fixed from the training split, so the eval
    split only reports on it.
    """
    raw = model.predict(evaluation.model_inputs(), batch_size=READ_BATCH_SIZE, verbose=0)[:, 0]
    calibrated = export.calibrated_probability(tf.constant(raw), shift).numpy()
    write_json(model_run_dir, calibration.CALIBRATION_FILE, {
        "logit_shift": shift,
        "eval_examples": len(evaluation.labels),
        "ece_bins": calibration.ECE_BINS,
        RAW_SCORE_KEY: calibration.calibration_errors(evaluation.labels, raw),
        OUTPUT_KEY: calibration.calibration_errors(evaluation.labels, calibrated),
    })


def _write_tflite(model_run_dir: str, model, train: Split, seed: Optional[int]) -> None:
    """The model's two int8 TFLite forms; activations calibrated on random training rows."""
    rows = np.random.default_rng(seed).choice(
        len(train.labels), min(len(train.labels), compression.TFLITE_CALIBRATION_ROWS),
        replace=False)
    sample = {name: value[rows] for name, value in train.model_inputs().items()}
    for name, calibration_inputs in ((compression.TFLITE_FILE, sample),
                                     (compression.TFLITE_WEIGHTS_FILE, None)):
        content = compression.tflite_int8(model, model_lib.OUTPUT_LAYER, calibration_inputs)
        with tf.io.gfile.GFile(os.path.join(model_run_dir, name), "wb") as f:
            f.write(content)


def _with_synthetic_frauds(train: Split, config: TrainerConfig) -> Tuple[Split, int]:
    """The training split with the configured synthetic frauds appended, and their number."""
    synthetic = synthetic_minority.synthetic_frauds(
        train, config.synthetic_fraud_ratio, config.synthetic_neighbours,
        model_lib.categorical_inputs(), config.seed)
    return train.concat(synthetic), len(synthetic.labels)


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
    train, evaluation = read_splits(fn_args, tf_transform_output)
    train, synthetic = _with_synthetic_frauds(train, config)
    shift = logit_shift(counts, class_weight, synthetic, config.negative_sampling_rate)
    steps = steps_per_epoch(fn_args.train_steps, train.labels, config)

    model, plan, teacher_metrics = _train(fn_args, tf_transform_output, config, steps,
                                          class_weight, train, evaluation)
    write_reports(fn_args.model_run_dir, config, model, plan, counts, class_weight, synthetic,
                  teacher_metrics)
    _write_calibration(fn_args.model_run_dir, model, evaluation, shift)
    if config.tflite_int8:
        _write_tflite(fn_args.model_run_dir, model, train, config.seed)

    warmup_needed = sum(export.WARMUP_BATCH_SIZES[i % len(export.WARMUP_BATCH_SIZES)]
                        for i in range(config.warmup_examples))
    warmup = read_serialized_examples(fn_args.eval_files, warmup_needed)
    export.export_serving_model(model, tf_transform_output, fn_args.serving_model_dir,
                                warmup, config.warmup_examples, shift)

"""The credit Trainer's `run_fn`: train, compress, compare with baselines and export.

custom_config (built by pipeline/pipeline.py):
    trainer       dataclasses.asdict(TrainerConfig)
    columns       the table's transform_config (label, numeric, log1p, categorical)
    scale         dataclasses.asdict(ScorecardScale)
    reason_codes  k, the reasons per application

The same tf-keras machinery as fraud (components/trainer.py): class weights
from the training split's label counts, MirroredStrategy, magnitude pruning
and optional QAT, TensorBoard logs, seeded training; with what small tables
need: L2 and dropout, and early stopping on the eval loss (the best weights
kept), after which pruning fine-tunes the trained network.

Besides the model, the Trainer writes credit_evaluation.json into its
model_run directory: on the eval split, the DNN's quality, KS table by score
decile, ROC and KS curve points and the PSI of its score between train and
eval, and the same quality for the logistic-regression and gradient-boosted
baselines fitted on the same transformed training split, so that the report
shows all three on equal terms. The Evaluator's TFMA figures remain the ones
that bless.
"""
from typing import Dict, List, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from common.distribution_stats import quantile_psi
from components import compression
from components import export as fraud_export
from components import model as model_lib
from components import trainer as fraud_trainer
from components.credit import baselines, export, metrics
from components.credit.config import ScorecardScale
from components.preprocessing import transformed_name
from components.trainer_config import TrainerConfig

EVALUATION_FILE = "credit_evaluation.json"
DNN = "dnn"


def _model(tf_transform_output, config: TrainerConfig, columns) -> tf.keras.Model:
    return model_lib.build_model(
        tf_transform_output, config.hidden_units, config.embedding_dim,
        categorical=[transformed_name(name) for name in columns["categorical"]],
        label_key=columns["label"], l2=config.l2, dropout=config.dropout,
        output_name="default", name="credit")


def _dataset(files, fn_args, tf_transform_output, config: TrainerConfig, columns,
             repeat: bool, shuffle: bool = True) -> tf.data.Dataset:
    return fraud_trainer.transformed_dataset(
        files, fn_args.data_accessor, tf_transform_output, config.batch_size,
        num_epochs=None if repeat else 1, label_key=columns["label"], seed=config.seed,
        shuffle=shuffle)


def _train(fn_args, tf_transform_output, config: TrainerConfig, columns, steps: int,
           class_weight) -> Tuple[tf.keras.Model, object]:
    """Dense training with early stopping, then pruning and QAT as fine-tuning phases."""
    train = _dataset(fn_args.train_files, fn_args, tf_transform_output, config, columns, True)
    evaluation = _dataset(fn_args.eval_files, fn_args, tf_transform_output, config, columns,
                          False)
    board = tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)
    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        model = _model(tf_transform_output, config, columns)
        model_lib.compile_model(model, config.learning_rate)
    callbacks = [board]
    if config.early_stopping_patience:
        callbacks.append(tf.keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience,
            restore_best_weights=True))
    history = model.fit(train, epochs=config.epochs, steps_per_epoch=steps,
                        validation_data=evaluation, class_weight=class_weight,
                        callbacks=callbacks, verbose=2)
    epoch = len(history.epoch)
    plan = None
    if config.target_sparsity > 0:
        plan = compression.pruning_plan(steps * config.pruning_epochs, config.target_sparsity,
                                        config.pruning_begin_fraction,
                                        config.pruning_end_fraction)
        with strategy.scope():
            model = compression.prune_dense_layers(model, plan, trained=True)
            model_lib.compile_model(model, config.learning_rate)
        fraud_trainer.fit(model, train, evaluation, None, (epoch, epoch + config.pruning_epochs),
                          steps, class_weight, compression.pruning_callbacks(fn_args.model_run_dir))
        epoch += config.pruning_epochs
        with strategy.scope():
            model = compression.strip_pruning(model)
    if config.quantization_aware:
        with strategy.scope():
            model = compression.quantize_dense_layers(model)
            model_lib.compile_model(model,
                                    config.learning_rate * fraud_trainer.QAT_LEARNING_RATE_SCALE)
        fraud_trainer.fit(model, train, evaluation, None, (epoch, epoch + config.qat_epochs),
                          steps, class_weight, [board])
    return model, plan


def transformed_arrays(dataset: tf.data.Dataset) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """One pass of a transformed dataset as numpy: ({input: [n]}, labels [n])."""
    features: Dict[str, List[np.ndarray]] = {}
    labels = []
    for inputs, label in dataset:
        for name, value in inputs.items():
            features.setdefault(name, []).append(value.numpy()[:, 0])
        labels.append(label.numpy()[:, 0])
    return ({name: np.concatenate(parts) for name, parts in features.items()},
            np.concatenate(labels).astype(np.int64))


def _scores(model: tf.keras.Model, features: Dict[str, np.ndarray], shift: float) -> np.ndarray:
    """The calibrated default probability, as the served model computes it."""
    raw = model.predict({name: value[:, None] for name, value in features.items()},
                        batch_size=4096, verbose=0)[:, 0]
    return fraud_export.calibrated_probability(tf.constant(raw), shift).numpy()


def evaluation_report(labels: np.ndarray, scores: np.ndarray, train_scores: np.ndarray,
                      baseline_results: Dict[str, dict]) -> dict:
    """What credit_evaluation.json holds (see the module docstring)."""
    return {
        "eval_examples": int(len(labels)),
        "eval_default_rate": float(labels.mean()),
        "models": {DNN: metrics.quality(labels, scores),
                   **{name: result["metrics"] for name, result in baseline_results.items()}},
        "deciles": metrics.decile_table(labels, scores),
        "curves": {DNN: metrics.curve_points(labels, scores),
                   **{name: metrics.curve_points(labels, result["eval_scores"])
                      for name, result in baseline_results.items()}},
        "score_psi": quantile_psi(train_scores, scores),
    }


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (GenericExecutor)."""
    custom = fn_args.custom_config
    config = fraud_trainer.trainer_config(custom["trainer"])
    columns = custom["columns"]
    fraud_trainer.seed_training(config.seed)
    model_lib.skip_autograph_for_tf_keras()
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)

    counts = fraud_trainer.label_counts(tf_transform_output)
    class_weight = fraud_trainer.class_weights(counts, config.class_weight_scheme)
    shift = fraud_trainer.logit_shift(counts, class_weight)
    steps = fraud_trainer.steps_per_epoch(fn_args.train_steps, sum(counts.values()), config)
    model, plan = _train(fn_args, tf_transform_output, config, columns, steps, class_weight)

    def arrays(files):
        return transformed_arrays(_dataset(files, fn_args, tf_transform_output, config, columns,
                                           repeat=False, shuffle=False))

    train_features, train_labels = arrays(fn_args.train_files)
    eval_features, eval_labels = arrays(fn_args.eval_files)
    baseline_results = baselines.fit_baselines(
        train_features, train_labels, eval_features, eval_labels,
        categorical=[transformed_name(name) for name in columns["categorical"]],
        seed=config.seed or 0)
    report = evaluation_report(eval_labels, _scores(model, eval_features, shift),
                               _scores(model, train_features, shift), baseline_results)
    fraud_trainer.write_json(fn_args.model_run_dir, EVALUATION_FILE, report)
    fraud_trainer.write_reports(fn_args.model_run_dir, config, model, plan, counts, class_weight)

    warmup = fraud_trainer.read_serialized_examples(fn_args.eval_files, 64)
    export.export_credit_model(
        model, tf_transform_output, fn_args.serving_model_dir, columns, shift,
        ScorecardScale(**custom["scale"]), custom["reason_codes"], warmup,
        config.warmup_examples)

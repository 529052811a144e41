"""The credit Trainer's `run_fn`: train, compress, compare with baselines and export.

custom_config (built by pipeline/pipeline.py):
    trainer       dataclasses.asdict(TrainerConfig)
    columns       the table's transform_config (label, numeric, log1p, categorical)
    scale         dataclasses.asdict(ScorecardScale)
    reason_codes  k, the reasons per application

The same tf-keras machinery as fraud (components/trainer.py): class weights
from the training split's label counts, MirroredStrategy, magnitude pruning
and optional QAT, TensorBoard logs, seeded training; with what small tables
need: L2 and dropout, and early stopping on the loss of a validation slice
held out of the training split (VALIDATION_SHARE; the best weights kept; the
eval split stays unseen until it is scored), after which pruning fine-tunes
the trained network. With `wide_first` (the credit default) the wide path is
fitted alone first and the deep path is kept only if it lowers that loss
(`_fit_dense`). Both splits go through the Transform graph once and
training runs on the transformed arrays: an application table fits in memory,
and re-running the Transform every epoch would cost more than the network.

Besides the model, the Trainer writes credit_evaluation.json into its
model_run directory: on the eval split, the DNN's quality, KS table by score
decile, ROC and KS curve points and the PSI of its score between train and
eval, and the same quality for the logistic-regression and gradient-boosted
baselines fitted on the same transformed training split, so that the report
shows all three on equal terms; and, when the network trained wide first,
whether it kept its deep path, with the two validation losses that decided
it. The Evaluator's TFMA figures remain the ones that bless.
"""
import math
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from common.distribution_stats import quantile_psi
from components import compression
from components import export as fraud_export
from components import model as model_lib
from components import trainer as fraud_trainer
from components import transformed_arrays
from components.credit import baselines, export, metrics
from components.credit.config import ScorecardScale
from components.preprocessing import transformed_name
from components.trainer_config import TrainerConfig
from components.transformed_arrays import Split

EVALUATION_FILE = "credit_evaluation.json"
DNN = "dnn"
# The share of the training split held out for early stopping.
VALIDATION_SHARE = 0.1
# Credit categories (purpose, housing, a region) are few; one-hot, the network
# sees them as a scorecard does, and a small table cannot fit embeddings.
ONE_HOT_MAX_BUCKETS = 64


def _model(tf_transform_output, config: TrainerConfig, columns) -> tf.keras.Model:
    return model_lib.build_model(
        tf_transform_output, config.hidden_units, config.embedding_dim,
        categorical=[transformed_name(name) for name in columns["categorical"]],
        label_key=columns["label"], l2=config.l2, dropout=config.dropout, wide=config.wide,
        one_hot_max_buckets=ONE_HOT_MAX_BUCKETS, output_name="default", name="credit")


def _arrays(files, fn_args, tf_transform_output, columns) -> Split:
    return transformed_arrays.read_split(files, fn_args.data_accessor, tf_transform_output,
                                         columns["label"])


def hold_out(train: Split, seed: int) -> Tuple[Split, Split]:
    """(fit, validation): a seeded VALIDATION_SHARE of the training split for early stopping.

    Early stopping must not look at the eval split, or the Evaluator's figures
    (and the comparison with the baselines) would be optimistic.
    """
    order = np.random.default_rng(seed).permutation(len(train.labels))
    size = max(1, round(VALIDATION_SHARE * len(order)))
    return train.take(np.sort(order[size:])), train.take(np.sort(order[:size]))


def _fit(model, fit: Split, validation: Split, config: TrainerConfig, epochs: Tuple[int, int],
         class_weight, callbacks):
    return model.fit(fit.model_inputs(), fit.labels[:, None].astype(np.float32),
                     batch_size=config.batch_size, initial_epoch=epochs[0], epochs=epochs[1],
                     validation_data=(validation.model_inputs(),
                                      validation.labels[:, None].astype(np.float32)),
                     class_weight=class_weight, callbacks=callbacks, shuffle=True, verbose=2)


def _dense_callbacks(board, config: TrainerConfig, monitor: str = "val_loss") -> list:
    if not config.early_stopping_patience:
        return [board]
    return [board, tf.keras.callbacks.EarlyStopping(
        monitor=monitor, patience=config.early_stopping_patience, restore_best_weights=True)]


def _fit_dense(model, strategy, fit: Split, validation: Split, config: TrainerConfig,
               class_weight, board) -> Tuple[int, Optional[dict]]:
    """Dense training to early stopping: (epochs run, the wide-first record or None).

    With `wide_first`, the wide path is fitted alone first, then the whole
    network from there; the deep path is kept only if it lowers the
    validation loss, else the model is the wide path's logistic regression.
    The record says which, with both validation losses.
    """
    if not (config.wide and config.wide_first):
        return len(_fit(model, fit, validation, config, (0, config.epochs), class_weight,
                        _dense_callbacks(board, config)).epoch), None
    with strategy.scope():
        _set_deep_path_trainable(model, False)
        model_lib.compile_model(model, config.learning_rate, config.steps_per_execution)
    # The wide path alone is a convex problem regularised by its L2 term, as a
    # logistic regression is: trained to convergence of the training loss, not
    # stopped early on the small validation slice's noise.
    wide = _fit(model, fit, validation, config, (0, config.epochs), class_weight,
                _dense_callbacks(board, config, monitor="loss"))
    # Per layer: the order of model.get_weights() changes with the trainable flags.
    wide_weights = {layer.name: layer.get_weights() for layer in model.layers}
    with strategy.scope():
        _set_deep_path_trainable(model, True)
        model_lib.compile_model(model, config.learning_rate, config.steps_per_execution)
    epoch = len(wide.epoch)
    both = _fit(model, fit, validation, config, (epoch, epoch + config.epochs), class_weight,
                _dense_callbacks(board, config))
    losses = {"wide_path": _kept_validation_loss(wide, "loss", config),
              "whole_network": _kept_validation_loss(both, "val_loss", config)}
    deep_path_kept = losses["whole_network"] < losses["wide_path"]
    if not deep_path_kept:
        for layer in model.layers:
            layer.set_weights(wide_weights[layer.name])
    return epoch + len(both.epoch), {"deep_path_kept": deep_path_kept,
                                     "validation_loss": losses}


def _kept_validation_loss(history, monitor: str, config: TrainerConfig) -> float:
    """The validation loss of the weights a phase ended with.

    Early stopping restores the epoch where `monitor` was lowest; without it
    the last epoch's weights stay.
    """
    losses = history.history
    epoch = int(np.argmin(losses[monitor])) if config.early_stopping_patience else -1
    return float(losses["val_loss"][epoch])


def _set_deep_path_trainable(model: tf.keras.Model, trainable: bool) -> None:
    """Freezes (or thaws) the hidden layers and the deep logit; frozen, the deep logit is zeroed.

    With the deep logit at zero the network is its wide path alone, a logistic
    regression on the encoded inputs.
    """
    for layer in model.layers:
        if layer.name.startswith("hidden_") or layer.name == model_lib.DEEP_LOGIT:
            layer.trainable = trainable
    if not trainable:
        deep_logit = model.get_layer(model_lib.DEEP_LOGIT)
        deep_logit.set_weights([np.zeros_like(w) for w in deep_logit.get_weights()])


def _train(fn_args, tf_transform_output, config: TrainerConfig, columns, train: Split,
           class_weight) -> Tuple[tf.keras.Model, object, Optional[dict]]:
    """Dense training with early stopping, then pruning and QAT as fine-tuning phases.

    Returns (model, pruning plan or None, the wide-first record or None).
    """
    fit, validation = hold_out(train, config.seed or 0)
    steps = math.ceil(len(fit.labels) / config.batch_size)
    board = tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)
    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        model = _model(tf_transform_output, config, columns)
        model_lib.compile_model(model, config.learning_rate, config.steps_per_execution)
    epoch, wide_first = _fit_dense(model, strategy, fit, validation, config, class_weight,
                                   board)
    plan = None
    if config.target_sparsity > 0:
        plan = compression.pruning_plan(steps * config.pruning_epochs, config.target_sparsity,
                                        config.pruning_begin_fraction,
                                        config.pruning_end_fraction)
        with strategy.scope():
            model = compression.prune_dense_layers(model, plan, trained=True)
            model_lib.compile_model(model, config.learning_rate, config.steps_per_execution)
        _fit(model, fit, validation, config, (epoch, epoch + config.pruning_epochs),
             class_weight, compression.pruning_callbacks(fn_args.model_run_dir))
        epoch += config.pruning_epochs
        with strategy.scope():
            model = compression.strip_pruning(model)
    if config.quantization_aware:
        with strategy.scope():
            model = compression.quantize_dense_layers(model)
            model_lib.compile_model(
                model, config.learning_rate * fraud_trainer.QAT_LEARNING_RATE_SCALE,
                config.steps_per_execution)
        _fit(model, fit, validation, config, (epoch, epoch + config.qat_epochs), class_weight,
             [board])
    return model, plan, wide_first


def _scores(model: tf.keras.Model, features: Dict[str, np.ndarray], shift: float) -> np.ndarray:
    """The calibrated default probability, as the served model computes it."""
    raw = model.predict({name: value[:, None] for name, value in features.items()},
                        batch_size=4096, verbose=0)[:, 0]
    return fraud_export.calibrated_probability(tf.constant(raw), shift).numpy()


def evaluation_report(labels: np.ndarray, scores: np.ndarray, train_scores: np.ndarray,
                      baseline_results: Dict[str, dict],
                      wide_first: Optional[dict] = None) -> dict:
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
        "wide_first": wide_first,
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
    train = _arrays(fn_args.train_files, fn_args, tf_transform_output, columns)
    evaluation = _arrays(fn_args.eval_files, fn_args, tf_transform_output, columns)
    model, plan, wide_first = _train(fn_args, tf_transform_output, config, columns, train,
                                     class_weight)

    baseline_results = baselines.fit_baselines(
        train.features, train.labels, evaluation.features, evaluation.labels,
        categorical=[transformed_name(name) for name in columns["categorical"]],
        seed=config.seed or 0)
    report = evaluation_report(evaluation.labels, _scores(model, evaluation.features, shift),
                               _scores(model, train.features, shift), baseline_results,
                               wide_first)
    fraud_trainer.write_json(fn_args.model_run_dir, EVALUATION_FILE, report)
    fraud_trainer.write_reports(fn_args.model_run_dir, config, model, plan, counts, class_weight)

    warmup = fraud_trainer.read_serialized_examples(fn_args.eval_files, 64)
    export.export_credit_model(
        model, tf_transform_output, fn_args.serving_model_dir, columns, shift,
        ScorecardScale(**custom["scale"]), custom["reason_codes"], warmup,
        config.warmup_examples)

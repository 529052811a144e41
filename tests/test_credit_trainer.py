"""The credit Trainer's wide-first training: the wide path alone first, the deep path kept only if it helps."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from components import model as model_lib
from components.credit import trainer as credit_trainer
from components.transformed_arrays import Split
from pipeline import credit_summary
from pipeline.configs import CREDIT_TRAINER

LABEL = "bad"
NUMERIC = ("income_xf", "utilisation_xf")


class _TransformOutput:
    """What build_model reads of a TFTransformOutput: two numeric inputs and the label."""

    def transformed_feature_spec(self):
        return {name: tf.io.FixedLenFeature([], tf.float32) for name in NUMERIC + (LABEL,)}


def _model():
    return model_lib.build_model(_TransformOutput(), (4,), 2, categorical=(), label_key=LABEL,
                                 wide=True, name="credit")


def _split(rows: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    features = {name: rng.normal(size=rows).astype(np.float32) for name in NUMERIC}
    logit = 1.5 * features["income_xf"] - features["utilisation_xf"]
    labels = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return Split(features, labels)


def _layer_weights(model):
    return {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}


def _same(left, right) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(left, right))


def test_a_frozen_deep_path_leaves_a_logistic_regression():
    model = _model()
    credit_trainer._set_deep_path_trainable(model, False)
    inputs = {name: np.array([[0.5], [-1.0]], np.float32) for name in NUMERIC}
    kernel, bias = model.get_layer("wide_logit").get_weights()
    stacked = np.hstack([inputs[name] for name in sorted(NUMERIC)])
    expected = 1 / (1 + np.exp(-(stacked @ kernel + bias)))
    np.testing.assert_allclose(model.predict(inputs, verbose=0), expected, rtol=1e-5)
    assert not any(layer.trainable for layer in model.layers
                   if layer.name.startswith("hidden_") or layer.name == model_lib.DEEP_LOGIT)


@pytest.fixture
def config():
    return dataclasses.replace(CREDIT_TRAINER, epochs=3, early_stopping_patience=1,
                               wide_first=True, seed=0)


def _train(model, config, tmp_path):
    strategy = tf.distribute.get_strategy()
    model_lib.compile_model(model, config.learning_rate, config.steps_per_execution)
    board = tf.keras.callbacks.TensorBoard(log_dir=str(tmp_path))
    return credit_trainer._fit_dense(model, strategy, _split(400, 0), _split(100, 1), config,
                                     None, board)


def test_the_wide_phase_trains_only_the_wide_path(config, tmp_path, monkeypatch):
    model = _model()
    before = _layer_weights(model)
    fit = credit_trainer._fit
    calls = []

    def wide_phase_only(model, *args, **kwargs):
        calls.append(_layer_weights(model))
        if len(calls) == 2:  # the whole network's phase: record its start and skip it
            raise StopIteration
        return fit(model, *args, **kwargs)

    monkeypatch.setattr(credit_trainer, "_fit", wide_phase_only)
    with pytest.raises(StopIteration):
        _train(model, config, tmp_path)
    after_wide = calls[1]
    assert not _same(before["wide_logit"], after_wide["wide_logit"])
    assert _same(before["hidden_0"], after_wide["hidden_0"])
    assert all(not w.any() for w in after_wide[model_lib.DEEP_LOGIT])


@pytest.mark.parametrize("deep_val_loss, kept_phase", [(np.inf, 0), (-np.inf, 1)],
                         ids=["dropped-when-no-better", "kept-when-better"])
def test_the_deep_path_is_kept_only_if_it_lowers_the_validation_loss(
        deep_val_loss, kept_phase, config, tmp_path, monkeypatch):
    fit = credit_trainer._fit
    phases = []

    def deep_phase_scored(model, *args, **kwargs):
        history = fit(model, *args, **kwargs)
        phases.append(_layer_weights(model))
        if len(phases) == 2:
            history.history["val_loss"] = [deep_val_loss]
        return history

    monkeypatch.setattr(credit_trainer, "_fit", deep_phase_scored)
    model = _model()
    _, record = _train(model, config, tmp_path)
    kept = _layer_weights(model)
    assert all(_same(kept[name], phases[kept_phase][name]) for name in kept)
    assert not all(_same(phases[1][name], phases[0][name]) for name in kept)
    assert record["deep_path_kept"] == (kept_phase == 1)
    assert record["validation_loss"]["whole_network"] == deep_val_loss


def test_without_wide_first_there_is_no_record(config, tmp_path):
    epochs, record = _train(_model(), dataclasses.replace(config, wide_first=False), tmp_path)
    assert record is None and 1 <= epochs <= config.epochs


@pytest.mark.parametrize("kept, whole_network, expected", [
    (True, 0.4, "network: the whole network (its deep path lowered the validation loss: "
                "0.4000 with it, 0.5000 without)"),
    (False, 0.6, "network: the wide path alone, a logistic regression (its deep path did not "
                 "lower the validation loss: 0.6000 with it, 0.5000 without)")])
def test_the_run_summary_says_which_network_was_kept(kept, whole_network, expected):
    record = {"deep_path_kept": kept,
              "validation_loss": {"wide_path": 0.5, "whole_network": whole_network}}
    assert credit_summary.wide_first_line(record) == expected


@pytest.mark.parametrize("monitor, patience, expected", [
    ("loss", 8, 0.7), ("val_loss", 8, 0.4), ("loss", 0, 0.45)])
def test_the_kept_validation_loss_is_that_of_the_restored_epoch(monitor, patience, expected):
    class History:
        history = {"loss": [3.0, 1.0, 2.0, 2.5], "val_loss": [0.5, 0.7, 0.4, 0.45]}

    config = dataclasses.replace(CREDIT_TRAINER, early_stopping_patience=patience)
    assert credit_trainer._kept_validation_loss(History, monitor, config) == expected

"""riskpipe's Evaluator: TFX's executor, run with NumPy printing only a few values per array."""
import numpy as np
import pytest
import tensorflow as tf
from tfx.components.evaluator import executor as tfx_evaluator_executor

from components.evaluator import executor


def _signature_of_serialized_examples(tmp_path):
    module = tf.Module()
    module.serve = tf.function(
        lambda examples: {"outputs": tf.strings.length(examples)},
        input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    return tf.saved_model.load(str(tmp_path)).signatures["serving_default"]


def test_the_evaluator_runs_tfx_evaluator_under_a_small_print_threshold(monkeypatch):
    seen = {}

    def tfx_do(self, input_dict, output_dict, exec_properties):
        seen["threshold"] = np.get_printoptions()["threshold"]
        seen["args"] = (input_dict, output_dict, exec_properties)

    monkeypatch.setattr(tfx_evaluator_executor.Executor, "Do", tfx_do)
    before = np.get_printoptions()["threshold"]
    executor.Executor().Do({"examples": []}, {"evaluation": []}, {"eval_config": "{}"})
    assert seen["threshold"] == executor.PRINT_THRESHOLD
    assert seen["args"] == ({"examples": []}, {"evaluation": []}, {"eval_config": "{}"})
    assert np.get_printoptions()["threshold"] == before


def test_the_print_threshold_is_restored_when_the_evaluation_fails(monkeypatch):
    def failing_do(self, input_dict, output_dict, exec_properties):
        raise ValueError("bad eval config")

    monkeypatch.setattr(tfx_evaluator_executor.Executor, "Do", failing_do)
    before = np.get_printoptions()["threshold"]
    with pytest.raises(ValueError, match="bad eval config"):
        executor.Executor().Do({}, {}, {})
    assert np.get_printoptions()["threshold"] == before


def test_a_positional_signature_call_scores_the_same_and_prints_few_examples(tmp_path):
    # How TFMA calls serving_default: positionally, which TensorFlow first
    # fails to bind, formatting the batch into the error it then drops.
    signature = _signature_of_serialized_examples(tmp_path)
    batch = tf.constant([b"example-%04d" % i for i in range(1000)])
    with np.printoptions(threshold=executor.PRINT_THRESHOLD):
        scored = signature(batch)["outputs"].numpy()
        with pytest.raises(TypeError) as failure:
            signature(batch, batch)
    np.testing.assert_array_equal(scored, signature(examples=batch)["outputs"].numpy())
    message = str(failure.value)
    assert "example-0000" in message and "example-0500" not in message

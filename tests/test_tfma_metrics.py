"""Precision and recall from the calibration histogram: the values of TFMA's own metrics."""
import json

import numpy as np
import pytest

from components.metric_names import EXAMPLE_COUNT, PRECISION, RECALL

# TFMA's own AUCPrecisionRecall divides by empty threshold buckets (and drops the NaNs).
pytestmark = pytest.mark.filterwarnings(
    "ignore::RuntimeWarning:tensorflow_model_analysis.metrics.confusion_matrix_metrics")


def _write_examples(path, labels, predictions):
    import tensorflow as tf

    with tf.io.TFRecordWriter(path) as writer:
        for label, prediction in zip(labels, predictions):
            feature = {"label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                       "prediction": tf.train.Feature(
                           float_list=tf.train.FloatList(value=[prediction]))}
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=feature)).SerializeToString())


def _config(class_name, module, name, threshold):
    import tensorflow_model_analysis as tfma

    return tfma.MetricConfig(class_name=class_name, module=module,
                             config=json.dumps({"name": name, "thresholds": [threshold]}))


@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.37])
def test_histogram_precision_and_recall_equal_tfmas_own(tmp_path, threshold):
    import tensorflow_model_analysis as tfma

    from components import tfma_metrics

    rng = np.random.default_rng(3)
    labels = (rng.random(800) < 0.2).astype(int)
    # Scores kept 1e-3 away from 0.37, off the histogram's 1e-4 grid.
    scores = np.clip(rng.beta(1, 4, 800) + 0.4 * labels * rng.random(800), 0, 1)
    scores = np.where(np.abs(scores - 0.37) < 1e-3, 0.36, scores).astype(np.float32)
    path = str(tmp_path / "examples.tfrecord")
    _write_examples(path, labels, scores)
    metrics = [
        _config("Precision", "", "tfma_precision", threshold),
        _config("Recall", "", "tfma_recall", threshold),
        _config(tfma_metrics.PRECISION_CLASS_NAME, tfma_metrics.MODULE, PRECISION, threshold),
        _config(tfma_metrics.RECALL_CLASS_NAME, tfma_metrics.MODULE, RECALL, threshold),
        # Fills the calibration histogram as the Evaluator's AUCs do.
        tfma.MetricConfig(class_name="AUC", config=json.dumps({"num_thresholds": 10000})),
    ]
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label", prediction_key="prediction")],
        slicing_specs=[tfma.SlicingSpec()], metrics_specs=[tfma.MetricsSpec(metrics=metrics)])
    result = tfma.run_model_analysis(eval_shared_model=None, eval_config=eval_config,
                                     data_location=path, output_path=str(tmp_path / "eval"))
    (overall,) = [m[""][""] for key, m in result.slicing_metrics if key == ()]
    values = {name: value["doubleValue"] for name, value in overall.items()}
    flagged = scores.astype(np.float64) > threshold
    true_positives = np.sum(flagged & (labels == 1))
    assert values[PRECISION] == pytest.approx(true_positives / flagged.sum(), abs=1e-9)
    assert values[RECALL] == pytest.approx(true_positives / labels.sum(), abs=1e-9)
    assert values[PRECISION] == pytest.approx(values["tfma_precision"], abs=1e-9)
    assert values[RECALL] == pytest.approx(values["tfma_recall"], abs=1e-9)


def test_the_evaluator_gates_on_the_histogram_metrics_and_they_survive_pickling():
    from apache_beam.internal import pickler
    from tensorflow_model_analysis.metrics import metric_specs

    from components import tfma_metrics
    from pipeline.configs import EvalConfig
    from pipeline.eval_config import build_eval_config

    eval_config = build_eval_config(EvalConfig())
    gated = [c for c in eval_config.metrics_specs[0].metrics if c.per_slice_thresholds]
    assert [(c.class_name, c.module) for c in gated] == [
        (tfma_metrics.PRECISION_CLASS_NAME, tfma_metrics.MODULE),
        (tfma_metrics.RECALL_CLASS_NAME, tfma_metrics.MODULE)]
    computations = metric_specs.to_computations(eval_config.metrics_specs, eval_config=eval_config)
    restored = pickler.loads(pickler.dumps(computations))
    assert {k.name for c in restored for k in c.keys} >= {PRECISION, RECALL}
    # Besides the example count, the one computation that visits examples is the shared histogram.
    counted = {k.name for c in computations if hasattr(c, "combiner") for k in c.keys}
    (histogram,) = counted - {EXAMPLE_COUNT}
    assert histogram.startswith("_calibration_histogram")

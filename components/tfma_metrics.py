"""Precision and recall at a threshold, from the calibration histogram TFMA's AUCs already fill.

    tfma.MetricConfig(class_name="HistogramPrecision", module="components.tfma_metrics",
                      config=json.dumps({"name": PRECISION, "thresholds": [0.5]}))

TFMA's own Precision and Recall at explicit thresholds count every example in
a combiner of their own, in Python, example by example: on the fraud eval
split that added about 7 CPU seconds to a 60 s Evaluator. These are the same
metrics (TFMA's classes, same values, same blessing thresholds) with their
confusion matrix derived from the 10,000-bucket calibration histogram that
AUC, AUCPrecisionRecall and RecallAtFalsePositiveRate share, so they add no
pass over the examples. The counts are exact at thresholds on the bucket grid
(multiples of 1e-4, such as the default 0.5); elsewhere the bucket holding the
threshold is counted on one side, which moves only scores within 1e-4 of it.
They are module-level classes, so Beam pickles them by reference; TFMA imports
this module from `module` on every worker.
"""
import json
from typing import Dict, List, Optional, Union

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import (binary_confusion_matrices,
                                               confusion_matrix_metrics, metric_types)

MODULE = __name__
PRECISION_CLASS_NAME = "HistogramPrecision"
RECALL_CLASS_NAME = "HistogramRecall"


def metric_config(class_name: str, module: str = "", **config) -> tfma.MetricConfig:
    """A tfma.MetricConfig of TFMA's `class_name`, or of one from `module`, with `config`."""
    return tfma.MetricConfig(class_name=class_name, module=module, config=json.dumps(config))


class _FromHistogram:
    """Derives a TFMA confusion-matrix metric at `thresholds` from the calibration histogram."""

    def _metric_computations(self, thresholds: Optional[Union[float, List[float]]] = None,
                             name: Optional[str] = None, eval_config=None, model_name: str = "",
                             output_name: str = "", sub_key=None, aggregation_type=None,
                             class_weights: Optional[Dict[int, float]] = None,
                             example_weighted: bool = False, preprocessors=None,
                             **kwargs) -> metric_types.MetricComputations:
        del kwargs  # top_k and class_id: a binary model has neither.
        if thresholds is None:
            thresholds = [self._default_threshold()]
        elif isinstance(thresholds, float):
            thresholds = [thresholds]
        key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                     sub_key=sub_key, example_weighted=example_weighted,
                                     aggregation_type=aggregation_type)
        computations = binary_confusion_matrices.binary_confusion_matrices(
            thresholds=list(thresholds), use_histogram=True, eval_config=eval_config,
            model_name=model_name, output_name=output_name, sub_key=sub_key,
            aggregation_type=aggregation_type, class_weights=class_weights,
            example_weighted=example_weighted, preprocessors=preprocessors)
        matrices_key = computations[-1].keys[-1]

        def result(metrics):
            return {key: self._metric_value(key=key, matrices=metrics[matrices_key])}

        return [*computations, metric_types.DerivedMetricComputation(keys=[key], result=result)]


class HistogramPrecision(_FromHistogram, confusion_matrix_metrics.Precision):
    """TFMA's Precision at `thresholds` (default 0.5), from the calibration histogram."""


class HistogramRecall(_FromHistogram, confusion_matrix_metrics.Recall):
    """TFMA's Recall at `thresholds` (default 0.5), from the calibration histogram."""

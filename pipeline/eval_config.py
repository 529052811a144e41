"""The Evaluator's TFMA configuration: fraud metrics, slices and the blessing rule.

Blessing: precision and recall at the operating threshold must clear their
lower bounds, and neither may fall more than `max_drop` below the last blessed
model. TFMA skips change thresholds when there is no baseline, so the first
run is judged on the lower bounds alone; and TFMA blesses nothing when no
threshold is configured, so the bounds are always set.
"""
import json
from typing import List

import tensorflow_model_analysis as tfma

from common.serving_contract import OUTPUT_KEY, SERVING_DEFAULT
from components.features import LABEL_KEY
from pipeline.configs import EvalConfig

# The Evaluator feeds the raw eval examples to the signature that parses
# serialized tf.Examples and applies the Transform graph.
SIGNATURE_NAME = SERVING_DEFAULT
# Recall is reported at this false positive rate (alerts a fraud team can review).
RECALL_FPR = 0.01
# Fraud scores crowd near 0: a fine threshold grid keeps the low-FPR end exact.
NUM_THRESHOLDS = 10000

# Metric names as they appear in the Evaluator's output.
ROC_AUC = "roc_auc"
PR_AUC = "pr_auc"
PRECISION = "precision"
RECALL = "recall"
RECALL_AT_FPR = "recall_at_1pct_fpr"
EXAMPLE_COUNT = "example_count"
GATED_METRICS = (PRECISION, RECALL)


def _metric(class_name: str, **config) -> tfma.MetricConfig:
    return tfma.MetricConfig(class_name=class_name, config=json.dumps(config))


def _gated(class_name: str, name: str, threshold: float, lower_bound: float,
           max_drop: float) -> tfma.MetricConfig:
    """A metric at `threshold` that blesses on the overall slice only.

    Small slices (a rare merchant category) are reported but do not gate.
    """
    metric = _metric(class_name, name=name, thresholds=[threshold])
    metric.per_slice_thresholds.add(
        slicing_specs=[tfma.SlicingSpec()],
        threshold=tfma.MetricThreshold(
            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}),
            change_threshold=tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                absolute={"value": -max_drop})))
    return metric


def metric_configs(config: EvalConfig) -> List[tfma.MetricConfig]:
    """The reported metrics; precision and recall carry the blessing thresholds."""
    return [
        _metric("ExampleCount", name=EXAMPLE_COUNT),
        _metric("AUC", name=ROC_AUC, curve="ROC", num_thresholds=NUM_THRESHOLDS),
        _metric("AUCPrecisionRecall", name=PR_AUC, num_thresholds=NUM_THRESHOLDS),
        _gated("Precision", PRECISION, config.threshold, config.min_precision, config.max_drop),
        _gated("Recall", RECALL, config.threshold, config.min_recall, config.max_drop),
        _metric("RecallAtFalsePositiveRate", name=RECALL_AT_FPR,
                false_positive_rate=RECALL_FPR, num_thresholds=NUM_THRESHOLDS),
    ]


def build_eval_config(config: EvalConfig) -> tfma.EvalConfig:
    """The tfma.EvalConfig of the Evaluator: overall plus one slice per slice feature."""
    slices = [tfma.SlicingSpec()]
    slices += [tfma.SlicingSpec(feature_keys=[name]) for name in config.slice_features]
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=SIGNATURE_NAME, label_key=LABEL_KEY,
                                    prediction_key=OUTPUT_KEY)],
        slicing_specs=slices,
        metrics_specs=[tfma.MetricsSpec(metrics=metric_configs(config))],
    )

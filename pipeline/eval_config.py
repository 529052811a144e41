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

from common.serving_contract import DEFAULT_PROBABILITY_KEY, OUTPUT_KEY, SERVING_DEFAULT
from components import tfma_metrics
from components.credit.config import CreditBlessing
from components.credit.tfma_metrics import credit_metric_configs
from components.features import LABEL_KEY
from components.metric_names import (EXAMPLE_COUNT, KS, PR_AUC, PRECISION, RECALL,
                                     RECALL_AT_FPR, ROC_AUC)
from components.tfma_metrics import metric_config
from pipeline.configs import EvalConfig

# The Evaluator feeds the raw eval examples to the signature that parses
# serialized tf.Examples and applies the Transform graph.
SIGNATURE_NAME = SERVING_DEFAULT
# Recall is reported at this false positive rate (alerts a fraud team can review).
RECALL_FPR = 0.01
# Fraud scores crowd near 0: a fine threshold grid keeps the low-FPR end exact.
NUM_THRESHOLDS = 10000

GATED_METRICS = (PRECISION, RECALL)


def _gated(class_name: str, name: str, threshold: float, lower_bound: float,
           max_drop: float) -> tfma.MetricConfig:
    """A metric at `threshold` that blesses on the overall slice only.

    Small slices (a rare merchant category) are reported but do not gate.
    """
    metric = metric_config(class_name, tfma_metrics.MODULE, name=name, thresholds=[threshold])
    return _bless(metric, lower_bound, max_drop)


def metric_configs(config: EvalConfig) -> List[tfma.MetricConfig]:
    """The reported metrics; precision and recall carry the blessing thresholds."""
    return [
        metric_config("ExampleCount", name=EXAMPLE_COUNT),
        metric_config("AUC", name=ROC_AUC, curve="ROC", num_thresholds=NUM_THRESHOLDS),
        metric_config("AUCPrecisionRecall", name=PR_AUC, num_thresholds=NUM_THRESHOLDS),
        _gated(tfma_metrics.PRECISION_CLASS_NAME, PRECISION, config.threshold,
               config.min_precision, config.max_drop),
        _gated(tfma_metrics.RECALL_CLASS_NAME, RECALL, config.threshold, config.min_recall,
               config.max_drop),
        metric_config("RecallAtFalsePositiveRate", name=RECALL_AT_FPR,
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


def _bless(metric: tfma.MetricConfig, lower_bound: float, max_drop: float) -> tfma.MetricConfig:
    """Adds blessing thresholds on the overall slice: a lower bound and no drop beyond max_drop."""
    metric.per_slice_thresholds.add(
        slicing_specs=[tfma.SlicingSpec()],
        threshold=tfma.MetricThreshold(
            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}),
            change_threshold=tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                absolute={"value": -max_drop})))
    return metric


def build_credit_eval_config(blessing: CreditBlessing, label_key: str) -> tfma.EvalConfig:
    """The credit Evaluator's config: ROC-AUC, KS, Gini, PR-AUC, Brier; blessing on KS and ROC-AUC."""
    bounds = {ROC_AUC: blessing.min_roc_auc, KS: blessing.min_ks}
    metrics = [_bless(metric, bounds[metric_name(metric)], blessing.max_drop)
               if metric_name(metric) in bounds else metric
               for metric in credit_metric_configs(NUM_THRESHOLDS)]
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=SIGNATURE_NAME, label_key=label_key,
                                    prediction_key=DEFAULT_PROBABILITY_KEY)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
    )


def metric_name(metric: tfma.MetricConfig) -> str:
    return json.loads(metric.config or "{}").get("name", "")

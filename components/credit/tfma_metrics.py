"""The credit metrics as TFMA 0.47 metrics, for the Evaluator's EvalConfig and its blessing.

    tfma.MetricConfig(class_name="KolmogorovSmirnov", module="components.credit.tfma_metrics",
                      config=json.dumps({"name": KS, "num_thresholds": 1000}))
    tfma.MetricConfig(class_name="Gini", module="components.credit.tfma_metrics",
                      config=json.dumps({"name": GINI, "num_thresholds": 1000}))

Both are built the way TFMA builds its own derived metrics
(tensorflow_model_analysis/metrics/confusion_matrix_metrics.py): a derived
computation on the binary confusion matrices at a grid of thresholds, so with
the same num_thresholds they share one calibration histogram with TFMA's AUC,
AUCPrecisionRecall and each other. Their value is a float per slice, which
tfma.MetricThreshold value and change thresholds can gate on. They are
module-level classes, so Beam pickles them (and the computations' closures) by
reference; TFMA imports this module from `module` on every worker.

The Brier score needs no custom metric: it is TFMA's MeanSquaredError
(tensorflow_model_analysis/metrics/mean_regression_error.py) of the 0/1 label
and the probability, named BRIER.

On the threshold grid (num_thresholds evenly spaced cuts in [0, 1] plus the
ends), KS is the max of TPR - FPR over the cuts of the grid, which is at most
the exact KS of components/credit/metrics.ks and equals it when every pair of
distinct scores has a cut between them; Gini is 2 * AUC - 1 of TFMA's
interpolated (trapezoidal) ROC-AUC on the same grid.
"""
from typing import Any, Dict, List, Optional, Union

import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import binary_confusion_matrices, confusion_matrix_metrics
from tensorflow_model_analysis.metrics import metric_types

from components.metric_names import BRIER, EXAMPLE_COUNT, GINI, KS, PR_AUC, ROC_AUC
from components.tfma_metrics import metric_config

MODULE = __name__
KS_CLASS_NAME = "KolmogorovSmirnov"
GINI_CLASS_NAME = "Gini"


class KolmogorovSmirnov(confusion_matrix_metrics.ConfusionMatrixMetricBase):
    """KS = max over the thresholds of TPR - FPR (share of bads minus share of goods above it).

    Signed, unlike metrics.ks: a model that ranks backwards gets ~0, not a high
    KS, and so fails a KS lower bound. Thresholds are as for TFMA's AUC:
    `num_thresholds` evenly spaced cuts (default 1000) or explicit `thresholds`.
    """

    def __init__(self, num_thresholds: Optional[int] = None, name: Optional[str] = None,
                 thresholds: Optional[Union[float, List[float]]] = None, top_k: Optional[int] = None,
                 class_id: Optional[int] = None):
        super().__init__(num_thresholds=num_thresholds, thresholds=thresholds, name=name,
                         top_k=top_k, class_id=class_id)

    def _default_name(self) -> str:
        return KS

    def _metric_value(self, key: metric_types.MetricKey,
                      matrices: binary_confusion_matrices.Matrices) -> float:
        del key
        tp, tn = np.asarray(matrices.tp, dtype=np.float64), np.asarray(matrices.tn, dtype=np.float64)
        fp, fn = np.asarray(matrices.fp, dtype=np.float64), np.asarray(matrices.fn, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = tp / (tp + fn) - fp / (fp + tn)
        # A slice without bads or without goods has no KS.
        if not np.any(np.isfinite(gap)):
            return float("nan")
        return float(np.nanmax(gap))


class Gini(confusion_matrix_metrics.AUC):
    """Gini = 2 * ROC-AUC - 1, with TFMA's ROC-AUC on the same thresholds (default 1000)."""

    def __init__(self, num_thresholds: Optional[int] = None, summation_method: str = "interpolation",
                 name: Optional[str] = None,
                 thresholds: Optional[Union[float, List[float]]] = None, top_k: Optional[int] = None,
                 class_id: Optional[int] = None):
        super().__init__(num_thresholds=num_thresholds, curve="ROC", summation_method=summation_method,
                         name=name, thresholds=thresholds, top_k=top_k, class_id=class_id)

    def get_config(self) -> Dict[str, Any]:
        # As AUCPrecisionRecall: the curve is fixed, so not an argument of __init__.
        config = super().get_config()
        del config["curve"]
        return config

    def _default_name(self) -> str:
        return GINI

    def _metric_value(self, curve: str, summation_method: str, key: metric_types.MetricKey,
                      matrices: binary_confusion_matrices.Matrices) -> float:
        auc = super()._metric_value(curve=curve, summation_method=summation_method, key=key,
                                    matrices=matrices)
        return float(2.0 * auc - 1.0)


def credit_metric_configs(num_thresholds: int) -> List[tfma.MetricConfig]:
    """ExampleCount, ROC-AUC, PR-AUC, KS, Gini and Brier, named from components.metric_names.

    The thresholded metrics share one grid of `num_thresholds`; no blessing
    thresholds are set here (the caller adds them on KS and ROC_AUC).
    """
    return [
        metric_config("ExampleCount", name=EXAMPLE_COUNT),
        metric_config("AUC", name=ROC_AUC, curve="ROC", num_thresholds=num_thresholds),
        metric_config("AUCPrecisionRecall", name=PR_AUC, num_thresholds=num_thresholds),
        metric_config(KS_CLASS_NAME, MODULE, name=KS, num_thresholds=num_thresholds),
        metric_config(GINI_CLASS_NAME, MODULE, name=GINI, num_thresholds=num_thresholds),
        metric_config("MeanSquaredError", name=BRIER),
    ]

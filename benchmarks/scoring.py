"""The fraud-quality figures the benchmarks print, computed one way for all of them (sklearn).

Keys are the Evaluator's metric names (components/metric_names.py); these are
the exact values on the scored rows, where TFMA reads them off a threshold grid.
"""
from typing import Dict

import numpy as np

from components.metric_names import PR_AUC, RECALL_AT_FPR, ROC_AUC


def recall_at_fpr(labels, scores) -> float:
    """The largest recall among thresholds flagging at most the Evaluator's RECALL_FPR of the
    legitimate rows."""
    # pylint: disable=import-outside-toplevel
    from sklearn.metrics import roc_curve

    from pipeline.eval_config import RECALL_FPR

    false_positive_rate, true_positive_rate, _ = roc_curve(labels, scores)
    return float(true_positive_rate[false_positive_rate <= RECALL_FPR].max())


def quality(labels, scores) -> Dict[str, float]:
    """PR-AUC (sklearn's average precision), ROC-AUC and recall at the Evaluator's FPR."""
    # pylint: disable=import-outside-toplevel
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {PR_AUC: float(average_precision_score(labels, scores)),
            ROC_AUC: float(roc_auc_score(labels, scores)),
            RECALL_AT_FPR: recall_at_fpr(labels, scores)}


def pr_auc_by_scenario(labels, scores, scenarios) -> Dict[str, float]:
    """Fraud scenario -> PR-AUC of its frauds against all legitimate rows (present ones only)."""
    # pylint: disable=import-outside-toplevel
    from sklearn.metrics import average_precision_score

    from components.transactions import FRAUD_SCENARIOS

    labels, scores, scenarios = np.asarray(labels), np.asarray(scores), np.asarray(scenarios)
    per_scenario = {}
    for scenario in FRAUD_SCENARIOS:
        mask = scenarios == scenario
        if mask.any():
            versus_legit = mask | (labels == 0)
            per_scenario[scenario] = float(average_precision_score(labels[versus_legit],
                                                                   scores[versus_legit]))
    return per_scenario

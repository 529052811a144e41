"""How a live model performs: on the labels known so far, and estimated where none are yet.

Labelled figures are computed on the decisions whose label is known at the
report's date: ROC-AUC and PR-AUC of the scores, KS, and the recall of the
policy (the share of known frauds the engine did not approve). They need both
classes and at least MIN_LABELLED_FRAUDS frauds, else they are None.

Where labels have not arrived, ROC-AUC is estimated from the scores alone by
confidence-based performance estimation (CBPE, as NannyML describes it): a
calibrated score p is the probability that the transaction is a fraud, so at
each threshold the expected true positives are the sum of p above it and the
expected false positives the sum of 1 - p; the expected ROC curve they trace
has an area, the estimate. It is only as good as the calibration.
"""
from typing import Dict, Optional, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from common.distribution_stats import ks_statistic

MIN_LABELLED_FRAUDS = 1
APPROVE = "APPROVE"


def estimated_roc_auc(probabilities: Sequence[float]) -> Optional[float]:
    """The ROC-AUC that calibrated scores imply for themselves (CBPE); None without scores."""
    p = np.sort(np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0))[::-1]
    if not len(p) or p.sum() == 0 or (1 - p).sum() == 0:
        return None
    true_positives = np.concatenate([[0.0], np.cumsum(p)])
    false_positives = np.concatenate([[0.0], np.cumsum(1 - p)])
    return float(np.trapz(true_positives / true_positives[-1],
                          false_positives / false_positives[-1]))


def labelled_figures(scores: Sequence[float], labels: Sequence[int],
                     decisions: Sequence[str]) -> Dict[str, Optional[float]]:
    """ROC-AUC, PR-AUC, KS and policy recall of labelled decisions (None where undefined)."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    frauds = int(labels.sum())
    figures: Dict[str, Optional[float]] = {"labelled": int(len(labels)), "frauds": frauds,
                                           "roc_auc": None, "pr_auc": None, "ks": None,
                                           "recall": None}
    if frauds:
        caught = sum(1 for label, decision in zip(labels, decisions)
                     if label and decision != APPROVE)
        figures["recall"] = caught / frauds
    if frauds >= MIN_LABELLED_FRAUDS and frauds < len(labels):
        figures.update(roc_auc=float(roc_auc_score(labels, scores)),
                       pr_auc=float(average_precision_score(labels, scores)),
                       ks=ks_statistic(scores, labels))
    return figures

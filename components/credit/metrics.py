"""Credit-scoring quality metrics, the decile table and the curves of a score (numpy/sklearn).

Conventions throughout: label 1 is a bad (a default), 0 a good; a higher score
is riskier. "Cumulative share of bads at t" is the share of all bads scoring
>= t (the true positive rate of the rule "decline if score >= t"), and the same
for goods (the false positive rate); so the KS curve and the ROC curve are the
same pairs of numbers, read differently.

The Evaluator computes the same metrics in TFMA (components/credit/tfma_metrics.py)
on a grid of thresholds; these are the exact values, for the Trainer's reports,
the baselines and the tests.
"""
from typing import Dict, List, Tuple

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from common.distribution_stats import ks_statistic
from components.metric_names import BRIER, GINI, KS, PR_AUC, ROC_AUC


def _validated(labels, scores) -> Tuple[np.ndarray, np.ndarray]:
    """(labels as int 0/1, scores as float64), or ValueError naming what is wrong."""
    y = np.atleast_1d(np.asarray(labels)).reshape(-1)
    s = np.atleast_1d(np.asarray(scores, dtype=np.float64)).reshape(-1)
    if y.shape[0] != s.shape[0]:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} labels, {s.shape[0]} scores")
    if y.shape[0] == 0:
        raise ValueError("labels and scores are empty")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores hold {int(np.sum(~np.isfinite(s)))} NaN or infinite values")
    values = np.unique(y)
    if not np.all(np.isin(values, (0, 1))):
        raise ValueError(f"labels must be 0 (good) or 1 (bad), got values {values[:5].tolist()}")
    if values.shape[0] < 2:
        raise ValueError(f"labels hold a single class (all {int(values[0])}): the metrics need "
                         "both bads (1) and goods (0)")
    return y.astype(np.int64), s


def _cumulative_shares(y: np.ndarray, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """At each distinct score, riskiest first: (score, population, bads, goods shares scoring >= it).

    Tied scores form one step: the cut is only ever between distinct scores.
    """
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # The last row of each run of equal scores closes a step.
    last_of_run = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    bads = np.cumsum(y_sorted)[last_of_run]
    rows = (np.arange(y_sorted.shape[0]) + 1)[last_of_run]
    goods = rows - bads
    return (s_sorted[last_of_run], rows / y_sorted.shape[0], bads / bads[-1], goods / goods[-1])


def ks(labels, scores) -> float:
    """The Kolmogorov-Smirnov statistic: max over cuts of |cum. share of bads - cum. share of goods|.

    The cuts are between distinct scores only (a tie is never split), so KS is
    the largest |TPR - FPR| over the points of the ROC curve. The absolute value
    makes a score that ranks backwards score high too; TFMA's KolmogorovSmirnov
    (components/credit/tfma_metrics.py) gates on the signed max(TPR - FPR).
    """
    y, s = _validated(labels, scores)
    return ks_statistic(s, y)


def gini(labels, scores) -> float:
    """The Gini coefficient (accuracy ratio) of the score: 2 * ROC-AUC - 1."""
    y, s = _validated(labels, scores)
    return float(2.0 * roc_auc_score(y, s) - 1.0)


def brier(labels, probabilities) -> float:
    """The Brier score: mean of (probability of default - label)^2; needs probabilities in [0, 1]."""
    y, p = _validated(labels, probabilities)
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(f"the Brier score needs probabilities in [0, 1], got scores in "
                         f"[{p.min():.4g}, {p.max():.4g}]")
    return float(np.mean((p - y) ** 2))


def quality(labels, scores) -> Dict[str, float]:
    """{ROC_AUC, KS, GINI, PR_AUC, BRIER} of probabilities of default (floats).

    PR_AUC is sklearn's average precision: sum over the distinct scores of
    (recall step) * precision at that cut, with no interpolation between cuts.
    TFMA's AUCPrecisionRecall (the Evaluator's PR_AUC) instead integrates a PR
    curve interpolated between its thresholds (Davis & Goadrich: true and false
    positives linear in between), which is usually a little higher, and is
    binned at num_thresholds; compare the two only approximately.
    """
    y, s = _validated(labels, scores)
    auc = float(roc_auc_score(y, s))
    return {
        ROC_AUC: auc,
        KS: ks(y, s),
        GINI: 2.0 * auc - 1.0,
        PR_AUC: float(average_precision_score(y, s)),
        BRIER: brier(y, s),
    }


def decile_table(labels, scores, bins: int = 10) -> List[dict]:
    """The gains table: one row per score bin, bin 1 the riskiest tenth (for bins=10).

    Rows are ranked by score, riskiest first, and cut into `bins` bins of equal
    size, except that tied scores always stay in one bin (the bin of the
    middle row of the tie); bins may so be uneven, and a bin that a tie leaves
    empty has no row (the numbers of the remaining rows are kept). Per row:
    decile, count, bads, goods, bad_rate, min_score, max_score, and the shares
    of all bads and goods in this bin and the riskier ones (cum_bads_share,
    cum_goods_share) with ks = |cum_bads_share - cum_goods_share|.

    The ks column is KS evaluated at the bin edges only, so its max is at most
    ks(); it equals ks() when the bins are fine enough that the best cut is a
    bin edge, which is always the case when bins >= the number of rows (each
    distinct score then has a bin of its own).
    """
    y, s = _validated(labels, scores)
    if int(bins) < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    bins = int(bins)
    n = y.shape[0]
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # Runs of equal scores: [start, end) positions in the ranking.
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    ends = np.r_[starts[1:], n]
    middle = (starts + ends - 1) / 2.0
    run_bin = np.minimum((middle * bins / n).astype(np.int64), bins - 1)
    row_bin = np.repeat(run_bin, ends - starts)
    # row_bin never decreases along the ranking: each bin is one slice of it.
    first = np.flatnonzero(np.r_[True, row_bin[1:] != row_bin[:-1]])
    last = np.r_[first[1:], n] - 1
    counts = last - first + 1
    bads = np.add.reduceat(y_sorted, first)
    goods = counts - bads
    cum_bads_share = np.cumsum(bads) / bads.sum()
    cum_goods_share = np.cumsum(goods) / goods.sum()
    table = []
    for i, start in enumerate(first):
        table.append({
            "decile": int(row_bin[start]) + 1,
            "count": int(counts[i]),
            "bads": int(bads[i]),
            "goods": int(goods[i]),
            "bad_rate": float(bads[i] / counts[i]),
            "min_score": float(s_sorted[last[i]]),
            "max_score": float(s_sorted[start]),
            "cum_bads_share": float(cum_bads_share[i]),
            "cum_goods_share": float(cum_goods_share[i]),
            "ks": float(abs(cum_bads_share[i] - cum_goods_share[i])),
        })
    return table


def _downsampled(length: int, max_points: int, keep: int) -> np.ndarray:
    """Indices of about max_points evenly spread points of [0, length), with 0, length-1 and keep."""
    if length <= max_points:
        return np.arange(length)
    picked = np.round(np.linspace(0, length - 1, max(max_points - 1, 2))).astype(np.int64)
    return np.unique(np.r_[picked, keep])


def _floats(values: np.ndarray) -> List[float]:
    return [float(v) for v in values]


def curve_points(labels, scores, max_points: int = 200) -> Dict[str, Dict[str, List[float]]]:
    """The ROC and KS curves of a score, at most about max_points points each, as JSON-able floats.

    {"roc": {"fpr": [...], "tpr": [...]},
     "ks": {"population_share": [...], "cum_bads_share": [...], "cum_goods_share": [...]}}

    Both curves start at 0 and end at 1. Points are picked evenly along each
    curve, always keeping its ends and the cut of the largest gap, so the KS
    read off the points (max |cum_bads_share - cum_goods_share|, or max |tpr -
    fpr|) is the exact ks().
    """
    y, s = _validated(labels, scores)
    if int(max_points) < 3:
        raise ValueError(f"max_points must be at least 3, got {max_points}")
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=True)
    roc_keep = _downsampled(fpr.shape[0], int(max_points), int(np.argmax(np.abs(tpr - fpr))))
    _, population, bads, goods = _cumulative_shares(y, s)
    population, bads, goods = np.r_[0.0, population], np.r_[0.0, bads], np.r_[0.0, goods]
    ks_keep = _downsampled(population.shape[0], int(max_points), int(np.argmax(np.abs(bads - goods))))
    return {
        "roc": {"fpr": _floats(fpr[roc_keep]), "tpr": _floats(tpr[roc_keep])},
        "ks": {"population_share": _floats(population[ks_keep]),
               "cum_bads_share": _floats(bads[ks_keep]),
               "cum_goods_share": _floats(goods[ks_keep])},
    }

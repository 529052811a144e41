"""Distances between two distributions that risk teams read: PSI and KS.

Both the pipeline (drift between training runs) and the monitor (live data
against the training split) compare distributions with them, so they are
written once, here.

PSI, the population stability index, over the same bins of an expected
(reference) and an actual distribution:

    PSI = sum over bins of (a_i - e_i) x ln(a_i / e_i)

with a_i, e_i the shares of each bin; an empty bin is given a small share
(EMPTY_BIN_SHARE) so that the logarithm is defined. The usual bands: below 0.1
stable, 0.1 to 0.25 watch, above 0.25 act (PSI_BANDS).

KS, the Kolmogorov-Smirnov statistic between the scores of two classes: the
largest gap between their cumulative distributions.
"""
import math
from typing import Sequence

import numpy as np

EMPTY_BIN_SHARE = 1e-4
PSI_BANDS = ((0.1, "stable"), (0.25, "watch"), (math.inf, "act"))


def psi(expected_counts: Sequence[float], actual_counts: Sequence[float]) -> float:
    """The PSI of `actual` against `expected`, given as counts over the same bins."""
    expected = np.asarray(expected_counts, dtype=float)
    actual = np.asarray(actual_counts, dtype=float)
    if expected.shape != actual.shape or expected.ndim != 1 or not len(expected):
        raise ValueError("psi needs two count vectors over the same, non-empty bins")
    if expected.sum() <= 0 or actual.sum() <= 0:
        raise ValueError("psi needs at least one count on each side")
    e = np.maximum(expected / expected.sum(), EMPTY_BIN_SHARE)
    a = np.maximum(actual / actual.sum(), EMPTY_BIN_SHARE)
    return float(np.sum((a - e) * np.log(a / e)))


def quantile_psi(expected_values: Sequence[float], actual_values: Sequence[float],
                 bins: int = 10) -> float:
    """The PSI of actual values against expected ones, over the expected values' quantile bins.

    The usual PSI of a score between a development sample and a later one:
    with deciles of the development scores, each bin holds a tenth of them.
    """
    expected = np.asarray(expected_values, dtype=float)
    actual = np.asarray(actual_values, dtype=float)
    edges = np.unique(np.quantile(expected, np.linspace(0.0, 1.0, bins + 1)[1:-1]))

    def counts(values):
        return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)

    return psi(counts(expected), counts(actual))


def psi_band(value: float) -> str:
    """'stable', 'watch' or 'act' for a PSI value."""
    return next(band for bound, band in PSI_BANDS if value < bound)


def ks_statistic(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The largest gap between the cumulative score distributions of positives and negatives."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("ks_statistic needs both classes")
    thresholds = np.unique(scores)
    positives = np.searchsorted(np.sort(scores[labels]), thresholds, side="right") / labels.sum()
    negatives = np.searchsorted(np.sort(scores[~labels]), thresholds, side="right") / (~labels).sum()
    return float(np.max(np.abs(positives - negatives)))

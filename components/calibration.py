"""Calibration of the fraud score: the prior correction and how calibrated a score is.

The prior correction (why it is the served score's calibration: components/export.py)
is a shift of the logit by what class weights or resampling did to the odds the
model learned. Calibration is measured with the Brier score and the expected
calibration error (ECE) over equal-width score bins. NumPy only, so the run
summary reads CALIBRATION_FILE without loading TensorFlow.
"""
import math
from typing import Dict, Mapping

import numpy as np

# Written by the Trainer into its model_run directory, read by the run summary.
CALIBRATION_FILE = "calibration.json"
ECE_BINS = 10


def weighting_logit_shift(class_weight: Mapping[int, float]) -> float:
    """ln(w1 / w0): loss weights w1 on frauds and w0 on the rest multiply the learned odds so."""
    return math.log(class_weight[1] / class_weight[0])


def _log_odds(share: float) -> float:
    return math.log(share / (1.0 - share))


def resampling_logit_shift(counts: Mapping[int, int], fraud_share: float) -> float:
    """ln(s / (1 - s)) - ln(pi / (1 - pi)): training on a fraud share s, the data's being pi.

    `counts` (label -> examples) give pi; s is what the resampling draws.
    """
    return _log_odds(fraud_share) - _log_odds(counts[1] / (counts[0] + counts[1]))


def brier_score(labels, scores) -> float:
    """The mean squared difference between the scores and the 0/1 labels."""
    labels, scores = np.asarray(labels, np.float64), np.asarray(scores, np.float64)
    return float(np.mean((scores - labels) ** 2))


def expected_calibration_error(labels, scores, bins: int = ECE_BINS) -> float:
    """Sum over equal-width score bins of (bin share) * |fraud rate - mean score| in the bin.

    Bin i holds scores in [i / bins, (i + 1) / bins); a score of 1 is in the last bin.
    """
    labels, scores = np.asarray(labels, np.float64), np.asarray(scores, np.float64)
    index = np.minimum((scores * bins).astype(np.int64), bins - 1)
    # In a bin of n of the N scores, n / N * |rate - mean score| = |sum(labels) - sum(scores)| / N.
    gaps = np.abs(np.bincount(index, labels, bins) - np.bincount(index, scores, bins))
    return float(gaps.sum() / len(scores))


def calibration_errors(labels, scores) -> Dict[str, float]:
    """{"brier": ..., "ece": ...} of one score against the labels."""
    return {"brier": brier_score(labels, scores), "ece": expected_calibration_error(labels, scores)}

"""The scorecard's points scale: points = offset + factor * ln(good:bad odds).

With p the probability of default, the good:bad odds are (1 - p) / p, so
ln(odds) = -logit(p) and points = offset - factor * logit(p). The exported
model computes it from the calibrated logit (components/credit/export.py);
`points` is the same formula on a probability, for tests and batch scoring.
"""
import math
from typing import Tuple

import numpy as np

from components.credit.config import ScorecardScale


def factor_and_offset(scale: ScorecardScale) -> Tuple[float, float]:
    """(factor, offset): points_to_double_odds / ln 2, and base points less factor * ln(base odds)."""
    if scale.points_to_double_odds <= 0 or scale.base_odds <= 0:
        raise ValueError("credit.scale: points_to_double_odds and base_odds must be positive")
    factor = scale.points_to_double_odds / math.log(2.0)
    return factor, scale.base_points - factor * math.log(scale.base_odds)


def points(probability, scale: ScorecardScale) -> np.ndarray:
    """Points of probabilities of default strictly between 0 and 1."""
    p = np.asarray(probability, dtype=np.float64)
    factor, offset = factor_and_offset(scale)
    return offset + factor * (np.log1p(-p) - np.log(p))

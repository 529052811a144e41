"""PSI and KS against hand-worked values."""
import math

import pytest

from common.distribution_stats import ks_statistic, psi, psi_band


def test_psi_of_a_distribution_against_itself_is_zero():
    assert psi([50, 30, 20], [5, 3, 2]) == pytest.approx(0)


def test_psi_hand_worked():
    # Shares 0.6/0.4 against 0.4/0.6: 2 x 0.2 x ln(1.5).
    assert psi([60, 40], [40, 60]) == pytest.approx(0.4 * math.log(1.5))


def test_psi_gives_an_empty_bin_a_small_share():
    # e = (1, 1e-4), a = (0.5, 0.5).
    expected = (0.5 - 1) * math.log(0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert psi([100, 0], [50, 50]) == pytest.approx(expected)


def test_psi_bands():
    assert [psi_band(v) for v in (0.05, 0.1, 0.2, 0.25, 3.0)] == [
        "stable", "watch", "watch", "act", "act"]


def test_psi_needs_matching_bins_with_counts():
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        psi([0, 0], [1, 1])


def test_ks_hand_worked():
    assert ks_statistic([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]) == pytest.approx(1.0)
    # Negatives 0.1, 0.4; positives 0.35, 0.8: the gap is 0.5 at 0.1 and at 0.4.
    assert ks_statistic([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        ks_statistic([0.1, 0.2], [1, 1])

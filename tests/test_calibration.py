"""Calibration measures and the prior correction, against values worked out by hand."""
import math

import numpy as np
import pytest
import tensorflow as tf

from components import calibration
from components.export import calibrated_probability
from pipeline import run_summary
from pipeline.configs import EvalConfig


def test_brier_score_is_the_mean_squared_error():
    # (0.2² + 0.3² + 0.6² + 0²) / 4 = (0.04 + 0.09 + 0.36) / 4
    assert calibration.brier_score([1, 0, 1, 0], [0.8, 0.3, 0.4, 0.0]) == pytest.approx(0.1225)
    assert calibration.brier_score([1, 0], [1.0, 0.0]) == 0.0


def test_ece_weighs_each_bins_gap_by_its_share():
    labels = [0, 0, 1, 1, 1]
    scores = [0.05, 0.15, 0.15, 0.95, 1.0]
    # Bin [0, 0.1): 1/5 * |0 - 0.05|; bin [0.1, 0.2): 2/5 * |0.5 - 0.15|;
    # bin [0.9, 1] (1.0 included): 2/5 * |1 - 0.975|.
    assert calibration.expected_calibration_error(labels, scores) == pytest.approx(
        0.01 + 0.14 + 0.01)


def test_ece_is_zero_when_every_bins_fraud_rate_is_its_mean_score():
    # Brier still counts the spread within the bin: (0.75² + 3 * 0.25²) / 4.
    assert calibration.calibration_errors([1, 0, 0, 0], [0.25] * 4) == pytest.approx(
        {"brier": 0.1875, "ece": 0.0})


def test_ece_with_one_bin_compares_the_overall_rate_and_mean_score():
    # Fraud rate 3/6, mean score (4 * 0.25 + 0.95 + 1.0) / 6.
    error = calibration.expected_calibration_error([1, 0, 0, 0, 1, 1], [0.25] * 4 + [0.95, 1.0],
                                                   bins=1)
    assert error == pytest.approx(0.5 - 2.95 / 6)


def test_weighting_shift_is_the_log_weight_ratio():
    assert calibration.weighting_logit_shift({0: 0.5, 1: 5.0}) == pytest.approx(math.log(10))
    assert calibration.weighting_logit_shift({0: 1.0, 1: 1.0}) == 0.0


def test_resampling_shift_is_the_change_of_log_odds():
    counts = {0: 900, 1: 100}
    # Balanced batches (s = 1/2) from pi = 1/10: 0 - ln(1/9), as balanced weights give.
    assert calibration.resampling_logit_shift(counts, 0.5) == pytest.approx(math.log(9))
    # s = 1/4: ln(1/3) - ln(1/9).
    assert calibration.resampling_logit_shift(counts, 0.25) == pytest.approx(math.log(3))
    assert calibration.resampling_logit_shift(counts, 0.1) == pytest.approx(0.0)


@pytest.mark.parametrize("raw, shift, expected", [
    (0.5, math.log(9), 0.1),    # logit 0 - ln 9: odds 1/9
    (0.9, math.log(9), 0.5),    # logit ln 9 - ln 9
    (0.75, math.log(3), 0.5),   # logit ln 3 - ln 3
    (0.3, 0.0, 0.3),            # no weighting, no change
    (1.0, math.log(9), 1.0),    # a saturated score stays saturated
    (0.0, math.log(9), 0.0),
])
def test_calibrated_probability_shifts_the_logit(raw, shift, expected):
    result = calibrated_probability(tf.constant([raw], tf.float32), shift).numpy()
    np.testing.assert_allclose(result, [expected], rtol=1e-6, atol=1e-7)


def test_run_summary_shows_both_scores_calibration_errors():
    summary = run_summary.RunSummary(metadata_path="m", calibration={
        "eval_examples": 1248, "ece_bins": 10, "logit_shift": 2.876949,
        "raw_score": {"brier": 0.05792, "ece": 0.08797},
        "fraud_probability": {"brier": 0.03329, "ece": 0.02171}})
    lines = run_summary.format_summary(summary, EvalConfig()).splitlines()
    start = lines.index("calibration (eval split, 1248 rows; ECE over 10 equal-width bins):")
    assert lines[start + 1].split() == ["raw_score:", "Brier", "0.0579", "ECE", "0.0880"]
    assert lines[start + 2].split() == ["fraud_probability:", "Brier", "0.0333", "ECE", "0.0217",
                                        "(logit(raw_score)", "-", "2.8769)"]


def test_run_summary_without_a_calibration_report_has_no_calibration_lines():
    text = run_summary.format_summary(run_summary.RunSummary(metadata_path="m"), EvalConfig())
    assert "calibration" not in text

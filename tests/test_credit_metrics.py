"""The credit task's metrics: exact numpy values, their TFMA twins, the baselines and the curves PNG."""
import json
import os
import struct

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from components.credit import metrics
from components.credit.baselines import BASELINE_MODELS, fit_baselines
from components.metric_names import BRIER, EXAMPLE_COUNT, GINI, KS, PR_AUC, ROC_AUC

# TFMA's own AUCPrecisionRecall divides by empty threshold buckets (and drops the NaNs).
pytestmark = pytest.mark.filterwarnings(
    "ignore::RuntimeWarning:tensorflow_model_analysis.metrics.confusion_matrix_metrics")

# 4 bads and 6 goods, riskiest first; the two 0.8s are a tie of one bad and one good.
FIXTURE_LABELS = [1, 1, 0, 1, 0, 0, 1, 0, 0, 0]
FIXTURE_SCORES = [0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
# Cumulative shares scoring >= each distinct score, bads/4 and goods/6:
#   >= 0.9: 1/4 - 0/6 = 0.25
#   >= 0.8: 2/4 - 1/6 = 0.3333   (the tie enters whole)
#   >= 0.7: 3/4 - 1/6 = 7/12 = 0.5833   <- the largest gap
#   >= 0.6: 3/4 - 2/6 = 0.4167
#   >= 0.5: 3/4 - 3/6 = 0.25
#   >= 0.4: 4/4 - 3/6 = 0.5
#   >= 0.3, 0.2, 0.1: 1 - 4/6, 1 - 5/6, 1 - 1 = 0.3333, 0.1667, 0
FIXTURE_KS = 7 / 12


def _scored(n, seed, slope=1.5, decimals=None):
    """Labels drawn from probabilities of a logistic score (optionally rounded: ties)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p = 1.0 / (1.0 + np.exp(-(slope * x - 1.0)))
    if decimals is not None:
        p = np.round(p, decimals)
    y = (rng.random(n) < p).astype(np.int64)
    return y, p


# --- numpy metrics ----------------------------------------------------------------------


def test_ks_of_the_fixture_is_the_hand_computed_value():
    assert metrics.ks(FIXTURE_LABELS, FIXTURE_SCORES) == pytest.approx(FIXTURE_KS, abs=1e-12)


def test_ks_never_splits_a_tie():
    # >= 0.9: 1/2 - 0/3 = 0.5; >= 0.5: 2/2 - 2/3 = 0.333; >= 0.1: 0. Splitting the
    # tie at 0.5 with its bad first would claim 2/2 - 0/3 = 1.
    labels, scores = [1, 1, 0, 0, 0], [0.9, 0.5, 0.5, 0.5, 0.1]
    assert metrics.ks(labels, scores) == pytest.approx(0.5)
    # The order of the tied rows does not matter.
    assert metrics.ks([1, 0, 0, 1, 0], [0.9, 0.5, 0.5, 0.5, 0.1]) == pytest.approx(0.5)
    assert metrics.ks([0, 0, 1, 0, 1], [0.5, 0.5, 0.5, 0.1, 0.9]) == pytest.approx(0.5)


def test_ks_is_the_largest_gap_of_the_roc_curve():
    for decimals in (None, 2):
        y, p = _scored(3000, seed=1, decimals=decimals)
        fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
        assert metrics.ks(y, p) == pytest.approx(np.max(np.abs(tpr - fpr)), abs=1e-12)


def test_gini_is_twice_the_auc_less_one():
    y, p = _scored(2000, seed=2)
    assert metrics.gini(y, p) == pytest.approx(2 * roc_auc_score(y, p) - 1, abs=1e-12)
    assert metrics.gini(FIXTURE_LABELS, FIXTURE_SCORES) == pytest.approx(
        2 * roc_auc_score(FIXTURE_LABELS, FIXTURE_SCORES) - 1)


def test_quality_reports_the_five_metrics_as_floats():
    y, p = _scored(2000, seed=3)
    quality = metrics.quality(y, p)
    assert set(quality) == {ROC_AUC, KS, GINI, PR_AUC, BRIER}
    assert all(type(v) is float for v in quality.values())
    assert quality[GINI] == pytest.approx(2 * quality[ROC_AUC] - 1)
    assert quality[KS] == metrics.ks(y, p)
    assert quality[BRIER] == pytest.approx(np.mean((p - y) ** 2))
    json.dumps(quality)


def test_brier_needs_probabilities():
    assert metrics.brier([0, 1], [0.0, 1.0]) == 0.0
    assert metrics.brier([0, 1], [1.0, 0.0]) == 1.0
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        metrics.brier([0, 1], [-0.5, 2.0])


@pytest.mark.parametrize("function", [metrics.ks, metrics.gini, metrics.brier, metrics.quality,
                                      metrics.decile_table, metrics.curve_points])
def test_errors_name_the_problem(function):
    with pytest.raises(ValueError, match="differ in length: 3 labels, 2 scores"):
        function([0, 1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="single class"):
        function([1, 1, 1], [0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="0 \\(good\\) or 1 \\(bad\\)"):
        function([0, 2, 1], [0.2, 0.3, 0.4])


# --- decile table -----------------------------------------------------------------------


def test_decile_table_adds_up_and_ranks_riskiest_first():
    y, p = _scored(5000, seed=4)
    table = metrics.decile_table(y, p)
    assert [row["decile"] for row in table] == list(range(1, 11))
    assert [row["count"] for row in table] == [500] * 10
    assert sum(row["bads"] for row in table) == y.sum()
    assert sum(row["goods"] for row in table) == len(y) - y.sum()
    for row in table:
        assert row["bads"] + row["goods"] == row["count"]
        assert row["bad_rate"] == pytest.approx(row["bads"] / row["count"])
        assert row["ks"] == pytest.approx(abs(row["cum_bads_share"] - row["cum_goods_share"]))
    assert all(a["min_score"] > b["max_score"] for a, b in zip(table, table[1:]))
    assert table[0]["bad_rate"] > table[-1]["bad_rate"]
    assert table[-1]["cum_bads_share"] == pytest.approx(1.0)
    assert table[-1]["cum_goods_share"] == pytest.approx(1.0)
    # KS at the bin edges only: at most the exact KS, and close to it.
    assert max(row["ks"] for row in table) <= metrics.ks(y, p) + 1e-12
    assert max(row["ks"] for row in table) == pytest.approx(metrics.ks(y, p), abs=0.05)


def test_decile_table_keeps_ties_in_one_bin_and_its_ks_is_exact_on_fine_bins():
    y, p = _scored(3000, seed=5, decimals=2)  # about 100 distinct scores: many ties
    table = metrics.decile_table(y, p)
    assert sum(row["count"] for row in table) == len(y)
    # No score is in two bins (bins are uneven).
    assert all(a["min_score"] > b["max_score"] for a, b in zip(table, table[1:]))
    for row in table:
        inside = (p >= row["min_score"]) & (p <= row["max_score"])
        assert inside.sum() == row["count"]
        assert y[inside].sum() == row["bads"]
    fine = metrics.decile_table(y, p, bins=len(y))
    assert len(fine) == len(np.unique(p))
    assert max(row["ks"] for row in fine) == pytest.approx(metrics.ks(y, p), abs=1e-12)
    assert max(row["ks"] for row in metrics.decile_table(FIXTURE_LABELS, FIXTURE_SCORES, bins=10)) == \
        pytest.approx(FIXTURE_KS)


def test_decile_table_of_the_fixture():
    table = metrics.decile_table(FIXTURE_LABELS, FIXTURE_SCORES, bins=5)
    # The tie at 0.8 (rows 2 and 3 of 10) stays in bin 1, which so holds 3 rows.
    assert [row["count"] for row in table] == [3, 1, 2, 2, 2]
    assert [row["bads"] for row in table] == [2, 1, 0, 1, 0]
    assert table[1]["ks"] == pytest.approx(FIXTURE_KS)
    assert (table[0]["min_score"], table[0]["max_score"]) == (0.8, 0.9)


# --- curve points -----------------------------------------------------------------------


def test_curve_points_are_downsampled_json_floats_that_keep_the_ks():
    y, p = _scored(20000, seed=6)
    points = metrics.curve_points(y, p, max_points=200)
    assert set(points) == {"roc", "ks"}
    assert set(points["roc"]) == {"fpr", "tpr"}
    assert set(points["ks"]) == {"population_share", "cum_bads_share", "cum_goods_share"}
    roc, ks = points["roc"], points["ks"]
    assert 100 < len(roc["fpr"]) == len(roc["tpr"]) <= 201
    assert 100 < len(ks["population_share"]) == len(ks["cum_bads_share"]) == len(ks["cum_goods_share"]) <= 201
    for curve in (roc["fpr"], roc["tpr"], ks["population_share"], ks["cum_bads_share"], ks["cum_goods_share"]):
        assert all(type(v) is float for v in curve)
        assert curve[0] == 0.0 and curve[-1] == 1.0
        assert all(a <= b for a, b in zip(curve, curve[1:]))
    exact = metrics.ks(y, p)
    assert max(b - g for b, g in zip(ks["cum_bads_share"], ks["cum_goods_share"])) == pytest.approx(exact)
    assert max(t - f for t, f in zip(roc["tpr"], roc["fpr"])) == pytest.approx(exact)
    json.loads(json.dumps(points))
    # A small problem keeps every point.
    small = metrics.curve_points(FIXTURE_LABELS, FIXTURE_SCORES)
    assert len(small["ks"]["population_share"]) == len(set(FIXTURE_SCORES)) + 1


# --- TFMA -------------------------------------------------------------------------------

# On a 1000-threshold grid (cuts 1/999 apart), scores on a 0.01 grid always have
# a cut between any two distinct values, so TFMA's grid metrics are the exact ones.
TFMA_THRESHOLDS = 1000


def _write_examples(path, labels, predictions, baseline_predictions=None):
    import tensorflow as tf

    with tf.io.TFRecordWriter(path) as writer:
        for i, (label, prediction) in enumerate(zip(labels, predictions)):
            feature = {"label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                       "prediction": tf.train.Feature(float_list=tf.train.FloatList(value=[prediction]))}
            if baseline_predictions is not None:
                feature["baseline_prediction"] = tf.train.Feature(
                    float_list=tf.train.FloatList(value=[baseline_predictions[i]]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def _ks_threshold(lower_bound, max_drop=None):
    import tensorflow_model_analysis as tfma

    threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}))
    if max_drop is not None:
        threshold.change_threshold.CopyFrom(tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -max_drop}))
    return threshold


def _credit_metrics_spec(ks_threshold):
    import tensorflow_model_analysis as tfma
    from components.credit.tfma_metrics import MODULE, credit_metric_configs

    configs = credit_metric_configs(TFMA_THRESHOLDS)
    (ks_config,) = [c for c in configs if c.module == MODULE and json.loads(c.config)["name"] == KS]
    ks_config.threshold.CopyFrom(ks_threshold)
    return tfma.MetricsSpec(metrics=configs)


def _overall(slicing_metrics):
    """{metric name: value} of the overall slice of a single-model EvalResult."""
    (slice_metrics,) = [m for key, m in slicing_metrics if key == ()]
    return {name: value["doubleValue"] for name, value in slice_metrics[""][""].items()}


@pytest.fixture(scope="module")
def scored_examples(tmp_path_factory):
    """A TFRecord of 600 tf.Examples: 'label' (int) and 'prediction' (float on a 0.01 grid)."""
    y, p = _scored(600, seed=7, decimals=2)
    path = str(tmp_path_factory.mktemp("tfma") / "examples.tfrecord")
    _write_examples(path, y, p.astype(np.float32))
    return path, y, p.astype(np.float32).astype(np.float64)


def test_credit_metric_configs_are_named_from_metric_names():
    from components.credit.tfma_metrics import MODULE, credit_metric_configs

    configs = credit_metric_configs(500)
    names = [json.loads(c.config)["name"] for c in configs]
    assert names == [EXAMPLE_COUNT, ROC_AUC, PR_AUC, KS, GINI, BRIER]
    by_name = dict(zip(names, configs))
    assert (by_name[KS].class_name, by_name[KS].module) == ("KolmogorovSmirnov", MODULE)
    assert (by_name[GINI].class_name, by_name[GINI].module) == ("Gini", MODULE)
    assert by_name[BRIER].class_name == "MeanSquaredError" and not by_name[BRIER].module
    assert json.loads(by_name[ROC_AUC].config)["curve"] == "ROC"
    for name in (ROC_AUC, PR_AUC, KS, GINI):
        assert json.loads(by_name[name].config)["num_thresholds"] == 500


def test_the_custom_metrics_survive_beam_pickling():
    import tensorflow_model_analysis as tfma
    from apache_beam.internal import pickler
    from tensorflow_model_analysis.metrics import metric_specs

    from components.credit.tfma_metrics import credit_metric_configs

    eval_config = tfma.EvalConfig(model_specs=[tfma.ModelSpec(label_key="label", prediction_key="prediction")],
                                  metrics_specs=[tfma.MetricsSpec(metrics=credit_metric_configs(100))])
    for config in eval_config.metrics_specs[0].metrics:
        metric = metric_specs.metric_instance(config)
        assert pickler.loads(pickler.dumps(metric)).get_config() == metric.get_config()
    computations = metric_specs.to_computations(eval_config.metrics_specs, eval_config=eval_config)
    restored = pickler.loads(pickler.dumps(computations))
    assert {k.name for c in restored for k in c.keys} >= {KS, GINI, ROC_AUC, BRIER}


@pytest.mark.parametrize("lower_bound, blessed", [(0.3, True), (0.9, False)])
def test_tfma_credit_metrics_match_numpy_and_gate_on_ks(scored_examples, tmp_path, lower_bound, blessed):
    import tensorflow_model_analysis as tfma

    path, y, p = scored_examples
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label", prediction_key="prediction")],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[_credit_metrics_spec(_ks_threshold(lower_bound))])
    output = str(tmp_path / "eval")
    # Model-agnostic: no model, the predictions are a feature of the examples.
    result = tfma.run_model_analysis(eval_shared_model=None, eval_config=eval_config,
                                     data_location=path, output_path=output)
    tfma_values = _overall(result.slicing_metrics)
    expected = metrics.quality(y, p)
    assert tfma_values[EXAMPLE_COUNT] == len(y)
    for name in (KS, GINI, ROC_AUC, BRIER):
        assert tfma_values[name] == pytest.approx(expected[name], abs=2e-3), name
    assert 0.3 < expected[KS] < 0.9
    validation = tfma.load_validation_result(output)
    assert validation.validation_ok is blessed
    if not blessed:
        (failing,) = validation.metric_validations_per_slice
        assert [f.metric_key.name for f in failing.failures] == [KS]


def _evaluate_against_baseline(eval_config, data_location, output_path):
    """The Evaluator's extract-evaluate-write pipeline with two model-agnostic models.

    tfma.run_model_analysis refuses change thresholds without a baseline
    *model*; here both the candidate and the baseline are columns of
    predictions, so the pipeline is assembled from TFMA's own parts with the
    config TFMA would use with a baseline model.
    """
    import apache_beam as beam
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis import constants
    from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator
    from tensorflow_model_analysis.extractors import (example_weights_extractor, features_extractor,
                                                      labels_extractor, materialized_predictions_extractor,
                                                      slice_key_extractor, unbatch_extractor)
    from tensorflow_model_analysis.utils import config_util
    from tensorflow_model_analysis.writers import metrics_plots_and_validations_writer
    from tfx_bsl.public import tfxio

    eval_config = config_util.update_eval_config_with_defaults(eval_config, has_baseline=True)
    extractors = [features_extractor.FeaturesExtractor(eval_config=eval_config),
                  labels_extractor.LabelsExtractor(eval_config=eval_config),
                  example_weights_extractor.ExampleWeightsExtractor(eval_config=eval_config),
                  materialized_predictions_extractor.MaterializedPredictionsExtractor(eval_config=eval_config),
                  unbatch_extractor.UnbatchExtractor(),
                  slice_key_extractor.SliceKeyExtractor(eval_config=eval_config)]
    evaluators = [metrics_plots_and_validations_evaluator.MetricsPlotsAndValidationsEvaluator(
        eval_config=eval_config)]
    outputs = {key: os.path.join(output_path, key) for key in (
        constants.METRICS_KEY, constants.PLOTS_KEY, constants.ATTRIBUTIONS_KEY, constants.VALIDATIONS_KEY)}
    writers = [metrics_plots_and_validations_writer.MetricsPlotsAndValidationsWriter(
        output_paths=outputs, eval_config=eval_config)]
    source = tfxio.TFExampleRecord(file_pattern=data_location,
                                   raw_record_column_name=constants.ARROW_INPUT_COLUMN)
    with beam.Pipeline() as pipeline:
        _ = (pipeline
             | source.BeamSource()
             | tfma.BatchedInputsToExtracts()
             | tfma.ExtractAndEvaluate(extractors=extractors, evaluators=evaluators)
             | tfma.WriteResults(writers=writers))
    return tfma.load_validation_result(output_path)


def test_tfma_ks_change_threshold_blocks_a_drop_from_the_baseline(tmp_path):
    import tensorflow_model_analysis as tfma

    y, strong = _scored(600, seed=8, slope=1.5, decimals=2)
    rng = np.random.default_rng(9)
    weak = np.clip(np.round(strong + rng.normal(scale=0.25, size=len(y)), 2), 0.0, 1.0)
    assert metrics.ks(y, strong) - metrics.ks(y, weak) > 0.05
    assert metrics.ks(y, weak) > 0.2
    path = str(tmp_path / "examples.tfrecord")
    _write_examples(path, y, weak.astype(np.float32), baseline_predictions=strong.astype(np.float32))
    # The weak candidate clears the bound of 0.2, but falls more than 0.02 below the baseline.
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(name="candidate", label_key="label", prediction_key="prediction"),
                     tfma.ModelSpec(name="baseline", label_key="label", prediction_key="baseline_prediction",
                                    is_baseline=True)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[_credit_metrics_spec(_ks_threshold(0.2, max_drop=0.02))])
    validation = _evaluate_against_baseline(eval_config, path, str(tmp_path / "eval"))
    assert not validation.validation_ok
    (failing,) = validation.metric_validations_per_slice
    (failure,) = failing.failures
    assert (failure.metric_key.name, failure.metric_key.is_diff) == (KS, True)
    assert failure.metric_value.double_value.value == pytest.approx(
        metrics.ks(y, weak) - metrics.ks(y, strong), abs=2e-3)
    # The same bounds bless a candidate that is no worse than the baseline.
    _write_examples(path, y, strong.astype(np.float32), baseline_predictions=weak.astype(np.float32))
    assert _evaluate_against_baseline(eval_config, path, str(tmp_path / "eval_2")).validation_ok


# --- baselines --------------------------------------------------------------------------


def _credit_features(n, seed):
    """Transformed-looking features; `utilization` drives the label, the rest is noise."""
    rng = np.random.default_rng(seed)
    features = {
        "utilization": rng.normal(size=n),
        "income": rng.normal(size=n),
        "income_missing": (rng.random(n) < 0.1).astype(np.float32),
        "region": rng.integers(0, 8, n).astype(np.int64),
        "product": rng.integers(0, 3, n).astype(np.int64),
    }
    logit = -1.2 + 2.0 * features["utilization"]
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return features, labels


def test_baselines_learn_the_driving_feature_deterministically():
    train, train_labels = _credit_features(800, seed=10)
    evaluation, eval_labels = _credit_features(400, seed=11)
    results = fit_baselines(train, train_labels, evaluation, eval_labels, ["region", "product"], seed=3)
    assert tuple(results) == BASELINE_MODELS == ("logistic_regression", "gradient_boosting")
    for name, result in results.items():
        assert set(result["metrics"]) == {ROC_AUC, KS, GINI, PR_AUC, BRIER}
        assert result["metrics"][ROC_AUC] > 0.7, name
        assert result["eval_scores"].shape == (400,)
        assert np.all((result["eval_scores"] > 0) & (result["eval_scores"] < 1))
        assert result["metrics"] == metrics.quality(eval_labels, result["eval_scores"])
    again = fit_baselines(train, train_labels, evaluation, eval_labels, ["region", "product"], seed=3)
    for name in BASELINE_MODELS:
        np.testing.assert_array_equal(again[name]["eval_scores"], results[name]["eval_scores"])


def test_baselines_reject_features_the_splits_do_not_share():
    train, train_labels = _credit_features(200, seed=12)
    evaluation, eval_labels = _credit_features(100, seed=13)
    del evaluation["income"]
    with pytest.raises(ValueError, match="only in train \\['income'\\]"):
        fit_baselines(train, train_labels, evaluation, eval_labels, ["region"], seed=0)
    with pytest.raises(ValueError, match="categorical features not among the features"):
        fit_baselines(train, train_labels, train, train_labels, ["branch"], seed=0)


# --- the curves PNG ---------------------------------------------------------------------


def test_roc_ks_png_is_written(tmp_path):
    from pipeline.credit_plots import write_roc_ks_png

    y, p = _scored(5000, seed=14)
    rng = np.random.default_rng(15)
    curves = {"dnn": metrics.curve_points(y, p),
              "logistic_regression": metrics.curve_points(y, np.clip(p + rng.normal(0, 0.1, len(y)), 0, 1)),
              "gradient_boosting": metrics.curve_points(y, np.clip(p + rng.normal(0, 0.2, len(y)), 0, 1))}
    path = tmp_path / "report" / "roc_ks.png"
    write_roc_ks_png(str(path), curves)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 550)
    assert len(data) > 20_000

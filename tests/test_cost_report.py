"""`riskpipe report` on the end-to-end run: runs, model versions and features, cost beside value."""
import json
import math
import os

import numpy as np
import pytest

from components import features
from ledger import feature_costs, feature_values, report
from pipeline import mlmd_queries
from test_report_html import chromium, page_dom  # noqa: F401  # the browser fixture

# Small measurements: this is a check of the figures' shape, not a benchmark.
MEASURE_FLAGS = ["--serving-transactions", "200", "--feature-cost-transactions", "2000"]
# Shuffles per feature when valuing it here: enough for the mean to stand out of the noise
# of the tiny eval split.
REPETITIONS = 10


@pytest.fixture(scope="module")
def reported(pipeline_run, pushed_model, run_riskpipe, tmp_path_factory):
    """(the JSON report, the HTML page's path, stdout) of `riskpipe report` on the e2e run."""
    out = tmp_path_factory.mktemp("report")
    result = run_riskpipe(["report", "--pipeline-root", pipeline_run.pipeline_root,
                           "--json", str(out / "report.json"), "--html", str(out / "report.html"),
                           *MEASURE_FLAGS])
    assert result.exit_code == 0, result.stderr
    with open(out / "report.json") as f:
        return json.load(f), str(out / "report.html"), result.stdout


def test_report_json_holds_the_runs_models_and_features(reported):
    data, _, _ = reported
    assert data["currency"] == "USD"
    priced = [run for run in data["runs"] if run["components"]]
    assert priced
    for run in priced:
        assert run["total_cost"] == pytest.approx(sum(c["cost"] for c in run["components"]))
        for component in run["components"]:
            assert {"name", "cached", "wall_seconds", "cpu_seconds", "peak_memory_mb",
                    "cost"} <= set(component)
    model = data["models"][0]
    assert {"version", "blessed", "pushed", "metrics"} <= set(model)
    assert model["blessed"] and model["pushed"]
    metrics = model["metrics"]
    assert 0.5 < metrics["roc_auc"] <= 1 and 0 < metrics["pr_auc"] <= 1
    assert 0 <= metrics["recall_at_1pct_fpr"] <= 1
    assert metrics["serving_cpu_ms_per_txn"] > 0
    # Priced at the vCPU-hour of the prices the latest run used.
    assert metrics["cost_per_million_txns"] == pytest.approx(
        metrics["serving_cpu_ms_per_txn"] / 1000 / 3600 * data["prices"]["vcpu_hour"] * 1e6)
    # Its training cost is what its lineage ran: at most the first run's whole bill.
    assert 0 < model["training_cost"] <= priced[0]["total_cost"]
    rows = data["features"]
    assert {row["name"] for row in rows} == set(features.MODEL_FEATURES)
    for row in rows:
        assert {"name", "cost_us_per_txn", "cost_share", "value_pr_auc", "value_share"} <= set(row)
    assert sum(row["cost_share"] for row in rows) == pytest.approx(1)
    assert sum(row["value_share"] for row in rows) == pytest.approx(1)
    assert data["cut_candidates"] == [row["name"] for row in rows if row["cut_candidate"]]


def test_report_prints_the_latest_runs_cost_and_the_feature_table(reported):
    data, _, stdout = reported
    assert "cost by component" in stdout and "total" in stdout
    assert "model versions" in stdout and str(data["models"][0]["version"]) in stdout
    assert "candidates to cut" in stdout


def test_report_html_renders_its_charts_in_chromium(reported, chromium, tmp_path):  # noqa: F811
    data, page, _ = reported
    dom = page_dom(chromium, page, str(tmp_path))
    bars = sum(1 for run in data["runs"] for c in run["components"] if c["cost"] > 0)
    assert len(dom.select("rect", "bar")) == bars > 0
    assert len(dom.select("circle", "feature")) == len(data["features"])
    assert len(dom.select("circle", "model")) == len(data["models"])


def test_a_measured_version_is_reported_again_without_measuring(reported, pipeline_run,
                                                                 run_riskpipe):
    data, _, _ = reported
    result = run_riskpipe(["report", "--pipeline-root", pipeline_run.pipeline_root,
                           "--no-measure"])
    assert result.exit_code == 0, result.stderr
    assert f"{data['models'][0]['metrics']['serving_cpu_ms_per_txn']:.3f}" in result.stdout


def _first_run_examples(pipeline_run) -> str:
    """The uri of the examples FeatureGen wrote in the e2e run."""
    store = mlmd_queries.open_store(pipeline_run.metadata_path)
    feature_gen = next(execution for node, _, execution in
                       pipeline_run.executions(0, pipeline_run.last_execution)
                       if node == "FeatureGen")
    return mlmd_queries.output_artifacts(store, feature_gen.id)["examples"][0].uri


def test_a_feature_without_information_is_worth_nothing_and_the_best_is_worth_more(
        pipeline_run, pushed_model):
    columns, labels = feature_values.read_eval_split(_first_run_examples(pipeline_run), 50000)
    columns["is_weekend"] = np.zeros_like(columns["is_weekend"])  # the same for every example
    version_dir = os.path.join(pushed_model, pipeline_run.versions()[0])
    values = {v.name: v for v in feature_values.permutation_values(
        feature_values.model_scorer(version_dir), columns, labels, list(features.MODEL_FEATURES),
        repetitions=REPETITIONS)}
    assert values["is_weekend"].value_pr_auc == 0 and values["is_weekend"].value_roc_auc == 0
    best = max(values.values(), key=lambda v: v.value_pr_auc)
    # The spread is one repetition's; the mean's standard error is spread / sqrt(n).
    assert best.value_pr_auc > 3 * best.value_pr_auc_spread / math.sqrt(REPETITIONS) > 0


def test_cut_candidates_are_cheap_to_keep_only_when_worth_little():
    measured = {"costs": [{"name": n, "group": "g", "cost_us_per_txn": c, "batch_cpu_share": 0.0,
                           "request_bytes": 10.0} for n, c in (("a", 1.0), ("b", 1.0), ("c", 0.01))],
                "values": [{"name": n, "value_pr_auc": v, "value_pr_auc_spread": 0.0,
                            "value_roc_auc": 0.0, "value_roc_auc_spread": 0.0}
                           for n, v in (("a", 0.5), ("b", 0.001), ("c", 0.0))]}
    rows = {row["name"]: row for row in report.feature_rows(measured, cut_threshold=0.05)}
    assert rows["b"]["cut_candidate"]          # costly, worth little
    assert not rows["a"]["cut_candidate"]      # costly, worth a lot
    assert not rows["c"]["cut_candidate"]      # worth nothing, but nearly free
    assert rows["a"]["cost_share"] == pytest.approx(1.0 / 2.01)


def test_request_bytes_are_what_a_feature_adds_to_the_example():
    row = {"amount": 12.5, "channel": "card_present", "seconds_since_prev_txn": None}
    sizes = feature_costs.request_bytes([row])
    assert sizes["amount"] == (len(features.serialize_example({"amount": 12.5,
                                                               "channel": "card_present"}))
                               - len(features.serialize_example({"channel": "card_present"})))
    assert sizes["seconds_since_prev_txn"] == 0  # absent from this transaction: nothing sent


def test_every_feature_group_is_timed_in_the_online_driver():
    from synthetic_transactions import random_stream  # pylint: disable=import-outside-toplevel

    micros = feature_costs.online_group_microseconds(random_stream(500, seed=1))
    assert set(micros) == set(features.FEATURE_GROUPS)
    assert micros["card_history"] > 0 and micros["terminal_history"] > 0
    assert micros["card_profile"] > 0

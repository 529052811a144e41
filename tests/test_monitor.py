"""The monitor on hand-made inputs: label coverage, figures, the estimate, alerts, bad input, rollback."""
import dataclasses
import json
import os

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from common.errors import DataError
from components import features
from ledger.feature_values import feature_columns
from monitor import actions, baseline, html_page, performance
from monitor.report import AlertRules, build_report
from synthetic_transactions import random_stream, write_partitions
from test_report_html import chromium, page_dom  # noqa: F401  # the browser fixture

VERSION = 7
DAY = 86400


def _scores(stream, quality: float, seed: int = 0):
    """A score per transaction that ranks frauds first with probability ~`quality`."""
    rng = np.random.default_rng(seed)
    return {t.transaction_id: float(np.clip(0.5 * t.is_fraud * quality + rng.uniform(0, 0.5), 0, 1))
            for t in stream}


def _baseline(stream, eval_auc: float = 0.9):
    builder = features.OnlineFeatureBuilder()
    columns = feature_columns([builder.update(t) for t in stream])
    return {"version": VERSION, "eval": {"roc_auc": eval_auc, "pr_auc": 0.5, "ks": 0.6},
            "score_counts": baseline.score_counts(np.random.default_rng(1).uniform(0, 1, 1000)),
            "features": {name: baseline.feature_reference(columns[name], kind)
                         for name, kind in features.MODEL_FEATURES.items()}}


def _write_decisions(path, stream, scores, version=VERSION):
    with open(path, "w") as f:
        for txn in stream:
            score = scores[txn.transaction_id]
            f.write(json.dumps({"transaction_id": txn.transaction_id, "timestamp": txn.timestamp,
                                "decision": "BLOCK" if score > 0.6 else "APPROVE",
                                "score": score, "model_version": version}) + "\n")
    return str(path)


@pytest.fixture
def inputs(tmp_path):
    """(raw data dir, the scored stream of its last 5 days, a baseline) of a 20-day stream."""
    stream = random_stream(3000, days=20, seed=3)
    data = str(tmp_path / "raw")
    write_partitions(stream, data)
    last = stream[-1].timestamp // DAY
    scored = [t for t in stream if t.timestamp // DAY > last - 5]
    return data, scored, _baseline([t for t in stream if t not in set(scored)])


def test_label_coverage_counts_a_label_known_exactly_at_the_date(inputs, tmp_path):
    data, scored, base = inputs
    decisions = _write_decisions(tmp_path / "d.jsonl", scored, _scores(scored, 1.0))
    as_of = max(t.timestamp for t in scored)
    known = sum(t.label_known_at <= as_of for t in scored)
    at_boundary = [t for t in scored if t.label_known_at == as_of]
    report = build_report(decisions, data, {VERSION: base}, as_of)
    covered = sum(day["label_coverage"] * day["transactions"] for day in report["days"])
    assert round(covered) == known
    if at_boundary:  # one second earlier, the boundary labels are not known yet
        earlier = build_report(decisions, data, {VERSION: base}, as_of - 1)
        assert round(sum(d["label_coverage"] * d["transactions"] for d in earlier["days"])) \
            < known


def test_daily_figures_match_sklearn_and_the_decisions(inputs, tmp_path):
    data, scored, base = inputs
    scores = _scores(scored, 1.0)
    decisions = _write_decisions(tmp_path / "d.jsonl", scored, scores)
    report = build_report(decisions, data, {VERSION: base}, scored[-1].timestamp + 90 * DAY)
    day = report["days"][0]
    on_day = [t for t in scored if t.timestamp // DAY == scored[0].timestamp // DAY]
    labels = [t.is_fraud for t in on_day]
    assert day["transactions"] == len(on_day) and day["label_coverage"] == 1.0
    assert day["labelled"]["roc_auc"] == pytest.approx(
        roc_auc_score(labels, [scores[t.transaction_id] for t in on_day]))
    blocked = sum(1 for t in on_day if t.is_fraud and scores[t.transaction_id] > 0.6)
    assert day["labelled"]["recall"] == pytest.approx(blocked / sum(labels))
    assert set(day["feature_psi"]) == set(features.MODEL_FEATURES)


def test_the_label_free_estimate_is_close_to_the_auc_of_calibrated_scores():
    rng = np.random.default_rng(0)
    p = rng.beta(0.5, 6.0, 50000)
    labels = rng.uniform(size=p.size) < p
    assert performance.estimated_roc_auc(p) == pytest.approx(roc_auc_score(labels, p), abs=0.01)


def test_a_version_falling_below_its_baseline_raises_an_action_alert(inputs, tmp_path):
    data, scored, base = inputs
    as_of = scored[-1].timestamp + 90 * DAY
    good = build_report(_write_decisions(tmp_path / "g.jsonl", scored, _scores(scored, 1.0)),
                        data, {VERSION: dict(base, eval={**base["eval"], "roc_auc": 0.8})},
                        as_of, AlertRules(min_frauds=5))
    assert not [a for a in good["alerts"] if a["action"]]
    bad = build_report(_write_decisions(tmp_path / "b.jsonl", scored, _scores(scored, 0.0)),
                       data, {VERSION: base}, as_of, AlertRules(min_frauds=5))
    (alert,) = [a for a in bad["alerts"] if a["action"]]
    assert alert["version"] == VERSION and alert["value"] < 0.9 * 0.95
    assert alert["threshold"] == pytest.approx(0.9 * 0.95)
    assert alert["labelled_frauds"] >= 5
    too_few = build_report(str(tmp_path / "b.jsonl"), data, {VERSION: base}, as_of,
                           AlertRules(min_frauds=10 ** 6))
    assert not [a for a in too_few["alerts"] if a["action"]]


def test_a_decisions_file_with_a_missing_field_names_the_file_and_line(inputs, tmp_path):
    data, scored, base = inputs
    path = _write_decisions(tmp_path / "d.jsonl", scored[:3], _scores(scored, 1.0))
    lines = open(path).read().splitlines()
    record = json.loads(lines[1])
    del record["score"]
    lines[1] = json.dumps(record)
    open(path, "w").write("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"d\.jsonl:2: decision record lacks score"):
        build_report(path, data, {VERSION: base}, scored[-1].timestamp)


def test_decisions_of_a_version_the_baseline_does_not_know_are_an_error(inputs, tmp_path):
    data, scored, base = inputs
    path = _write_decisions(tmp_path / "d.jsonl", scored, _scores(scored, 1.0), version=99)
    with pytest.raises(DataError, match=r"d\.jsonl:1: decision by model version 99"):
        build_report(path, data, {VERSION: base}, scored[-1].timestamp)


def test_a_transaction_of_a_decided_day_without_a_decision_is_an_error(inputs, tmp_path):
    data, scored, base = inputs
    path = _write_decisions(tmp_path / "d.jsonl", scored[1:], _scores(scored, 1.0))
    with pytest.raises(DataError, match=rf"transactions\.csv:\d+: transaction "
                                        rf"{scored[0].transaction_id} has no decision"):
        build_report(path, data, {VERSION: base}, scored[-1].timestamp)


@dataclasses.dataclass
class FakeRollout:
    """The rollout controller's part the monitor uses, over a real model config file."""
    config_path: str
    model_name: str = "fraud"
    moves: int = 0

    def revert_to_previous(self):
        self.moves += 1
        return 2, 1


MODEL_CONFIG = """model_config_list { config { name: "fraud" base_path: "gs://bucket/fraud"
  model_platform: "tensorflow" model_version_policy { specific { versions: 1 versions: 2 } }
  version_labels { key: "stable" value: 2 } %s } }
"""


def _action_report(version=2, action=True):
    alert = {"kind": "performance", "action": action, "metric": "roc_auc", "value": 0.7,
             "version": version, "window": ["2024-01-01", "2024-01-07"], "baseline": 0.9,
             "threshold": 0.855, "max_relative_drop": 0.05, "labelled_frauds": 40}
    return {"as_of": "2024-01-07T23:59:59+00:00", "alerts": [alert]}


def test_rollback_acts_once_on_the_stable_versions_action_alert(tmp_path):
    config = tmp_path / "models.config"
    config.write_text(MODEL_CONFIG % 'version_labels { key: "previous" value: 1 }')
    rollout = FakeRollout(str(config))
    record = actions.act(_action_report(), rollout)
    assert rollout.moves == 1 and record["from_version"] == 2 and record["to_version"] == 1
    (audit,) = [json.loads(line) for line in open(actions.audit_path(str(config)))]
    assert audit["alert"]["value"] == 0.7 and audit["alert"]["threshold"] == 0.855
    assert actions.act(_action_report(), rollout) is None  # the same alert: never twice
    assert rollout.moves == 1


def test_rollback_never_acts_on_a_warning_another_version_or_without_previous(tmp_path):
    config = tmp_path / "models.config"
    config.write_text(MODEL_CONFIG % 'version_labels { key: "previous" value: 1 }')
    rollout = FakeRollout(str(config))
    assert actions.act(_action_report(action=False), rollout) is None
    assert actions.act(_action_report(version=1), rollout) is None
    config.write_text(MODEL_CONFIG % "")
    assert actions.act(_action_report(), rollout) is None
    assert rollout.moves == 0 and not os.path.exists(actions.audit_path(str(config)))


def test_the_html_page_draws_the_daily_charts_in_chromium(inputs, tmp_path, chromium):  # noqa: F811
    data, scored, base = inputs
    decisions = _write_decisions(tmp_path / "b.jsonl", scored, _scores(scored, 0.0))
    report = build_report(decisions, data, {VERSION: base}, scored[-1].timestamp + 90 * DAY,
                          AlertRules(min_frauds=5))
    page = str(tmp_path / "monitor.html")
    html_page.write_html(report, page)
    dom = page_dom(chromium, page, str(tmp_path))
    for chart, line in (("auc", "auc"), ("auc", "estimate"), ("coverage", "coverage"),
                        ("psi", "psi")):
        (drawn,) = dom.select("polyline", line, figure=f"{chart}-{VERSION}")
        assert len(drawn.attrs["points"].split()) == len(report["days"])
    assert len(dom.select("li", "action")) == 1

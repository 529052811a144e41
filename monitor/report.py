"""The monitor's report: per day and model version, performance, label coverage, drift, alerts.

Inputs (monitor/inputs.py): the engine's decisions, the raw transactions with
their labels, and the pipeline root of the versions (monitor/baseline.py).
A label counts when it is known at `as_of`. Drift is the PSI of the day's
scores and of each model feature (recomputed by the online feature driver
over the whole history, as the engine computed them) against the version's
training split. Alerts (AlertRules) look at the last `window_days` days of a
version's decisions:

- performance (an action): a version's labelled ROC-AUC over the window is
  more than `max_relative_drop` below its eval baseline, with at least
  `min_frauds` labelled frauds behind the figure;
- estimate (an early warning, never an action): the label-free estimate of the
  window's ROC-AUC falls by the same drop;
- drift (a warning): the PSI of the score or of a feature over the window is
  in the "act" band (above 0.25).
"""
import dataclasses
import datetime
from typing import Any, Dict, List, Mapping, Optional

from common.distribution_stats import psi, psi_band
from common.errors import DataError
from components import features
from ledger.feature_values import feature_columns
from monitor import baseline as baselines
from monitor.inputs import DAY_SECONDS, Decision, read_decisions, read_labelled_transactions
from monitor.performance import estimated_roc_auc, labelled_figures

ACT = "act"


@dataclasses.dataclass(frozen=True)
class AlertRules:
    max_relative_drop: float = 0.05
    min_frauds: int = 20
    window_days: int = 7


def _day_text(day: int) -> str:
    return datetime.datetime.fromtimestamp(day * DAY_SECONDS, datetime.timezone.utc).date() \
        .isoformat()


def _live_features(history, scored) -> Dict[str, Dict[str, Any]]:
    """Each decided transaction's model features, replaying the whole history in order."""
    builder, found = features.OnlineFeatureBuilder(), {}
    for txn in history:
        feats = builder.update(txn)
        if txn.transaction_id in scored:
            found[txn.transaction_id] = feats
    return found


def _feature_psi(reference: Mapping[str, Any], rows: List[Dict[str, Any]]) -> Dict[str, float]:
    columns = feature_columns(rows)
    out = {}
    for name, kind in features.MODEL_FEATURES.items():
        ref = reference[name]
        live = (baselines.categorical_counts(columns[name], ref["categories"]) if kind == "string"
                else baselines.numeric_counts(columns[name], ref["edges"]))
        out[name] = psi(ref["counts"], live)
    return out


def _group_figures(group: List[Decision], labels, feats, base, as_of: int) -> Dict[str, Any]:
    known = [d for d in group if labels[d.transaction_id].label_known_at is not None
             and labels[d.transaction_id].label_known_at <= as_of and d.score is not None]
    scored = [d for d in group if d.score is not None]
    figures = labelled_figures([d.score for d in known],
                               [labels[d.transaction_id].is_fraud for d in known],
                               [d.decision for d in known])
    score_psi = (psi(base["score_counts"], baselines.score_counts([d.score for d in scored]))
                 if scored else None)
    return {"transactions": len(group),
            "decisions": {k: sum(1 for d in group if d.decision == k)
                          for k in sorted({d.decision for d in group})},
            "label_coverage": len(known) / len(group),
            "labelled": figures,
            "estimated_roc_auc": estimated_roc_auc([d.score for d in scored]),
            "score_psi": score_psi,
            "feature_psi": _feature_psi(base["features"],
                                        [feats[d.transaction_id] for d in scored])
            if scored else {}}


def _by_version(decisions: List[Decision], known_versions) -> Dict[int, List[Decision]]:
    groups: Dict[int, List[Decision]] = {}
    for decision in decisions:
        if decision.model_version is None:  # no score: counted in no version's figures
            continue
        if decision.model_version not in known_versions:
            raise DataError(f"{decision.where}: decision by model version "
                            f"{decision.model_version}, which the pipeline root does not know "
                            f"(known: {sorted(known_versions)})")
        groups.setdefault(decision.model_version, []).append(decision)
    return groups


def _alerts(version: int, window: Dict[str, Any], base, rules: AlertRules,
            window_days: List[int]) -> List[Dict[str, Any]]:
    alerts, span = [], [_day_text(window_days[0]), _day_text(window_days[-1])]
    baseline_auc = base["eval"]["roc_auc"]
    threshold = baseline_auc * (1 - rules.max_relative_drop)
    labelled = window["labelled"]
    common = {"version": version, "window": span, "baseline": baseline_auc,
              "threshold": threshold, "max_relative_drop": rules.max_relative_drop}
    if (labelled["roc_auc"] is not None and labelled["frauds"] >= rules.min_frauds
            and labelled["roc_auc"] < threshold):
        alerts.append({"kind": "performance", "action": True, "metric": "roc_auc",
                       "value": labelled["roc_auc"], "labelled_frauds": labelled["frauds"],
                       "min_frauds": rules.min_frauds, **common})
    estimate = window["estimated_roc_auc"]
    if estimate is not None and estimate < threshold:
        alerts.append({"kind": "estimate", "action": False, "metric": "estimated_roc_auc",
                       "value": estimate, **common})
    drifted = {"score": window["score_psi"], **window["feature_psi"]}
    for subject, value in drifted.items():
        if value is not None and psi_band(value) == ACT:
            alerts.append({"kind": "drift", "action": False, "metric": "psi", "subject": subject,
                           "value": value, "version": version, "window": span})
    return alerts


def build_report(decisions_path: str, data: str, baseline_by_version: Dict[int, Dict],
                 as_of: int, rules: AlertRules = AlertRules()) -> Dict[str, Any]:
    """The monitor's figures and alerts (see the module docstring)."""
    decisions = [d for d in read_decisions(decisions_path) if d.timestamp <= as_of]
    if not decisions:
        raise DataError(f"{decisions_path}: no decision at or before the report's date")
    history, labels = read_labelled_transactions(data, decisions)
    feats = _live_features([t for t in history if t.timestamp <= as_of], labels)
    days, windows, alerts = [], [], []
    for version, group in sorted(_by_version(decisions, baseline_by_version).items()):
        base = baseline_by_version[version]
        by_day: Dict[int, List[Decision]] = {}
        for decision in group:
            by_day.setdefault(decision.day, []).append(decision)
        for day, on_day in sorted(by_day.items()):
            days.append({"day": _day_text(day), "version": version, "baseline": base["eval"],
                         **_group_figures(on_day, labels, feats, base, as_of)})
        # The window ends on the version's latest day of decisions.
        window_days = [d for d in sorted(by_day) if max(by_day) - rules.window_days < d]
        window = _group_figures([d for d in group if d.day in set(window_days)], labels, feats,
                                base, as_of)
        windows.append({"version": version, "window": [_day_text(window_days[0]),
                                                       _day_text(window_days[-1])],
                        "baseline": base["eval"], **window})
        alerts += _alerts(version, window, base, rules, window_days)
    return {"as_of": datetime.datetime.fromtimestamp(as_of, datetime.timezone.utc)
            .isoformat(timespec="seconds"),
            "rules": dataclasses.asdict(rules), "days": days, "windows": windows,
            "alerts": alerts}


def stable_action(report: Dict[str, Any], stable_version: Optional[int]) -> Optional[Dict]:
    """The action alert of the stable version, if one fired."""
    return next((a for a in report["alerts"] if a["action"] and a["version"] == stable_version),
                None)

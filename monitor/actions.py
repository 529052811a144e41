"""Automatic rollback: when the stable version's action alert fires, `stable` goes back to `previous`.

`rollout promote` keeps the version it replaced loaded under the `previous`
label, so going back is one label move through the rollout controller
(validated, written atomically, confirmed on every server), with nothing to
load. Never on an estimate or a drift warning (they are not actions), never
when there is no previous version, and never twice for the same alert: each
rollback is recorded in an audit log beside the model config
(<model_config_file>.audit.jsonl), which is checked first.
"""
import datetime
import json
import os
from typing import Any, Callable, Dict, Optional

from engine.rollout.controller import Rollout
from engine.rollout.model_config import find_model, read_config
from engine.routing import PREVIOUS, STABLE
from monitor.report import stable_action

AUDIT_SUFFIX = ".audit.jsonl"


def audit_path(model_config: str) -> str:
    return model_config + AUDIT_SUFFIX


def _alert_key(alert: Dict[str, Any]) -> tuple:
    return alert["version"], alert["metric"], tuple(alert["window"])


def _audited(path: str) -> set:
    if not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8") as f:
        return {_alert_key(json.loads(line)["alert"]) for line in f if line.strip()}


def _append(path: str, record: Dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def act(report: Dict[str, Any], rollout: Rollout,
        log: Callable[[str], None] = lambda line: None) -> Optional[Dict[str, Any]]:
    """Rolls the stable version back when its action alert fired; returns the audit record."""
    labels = find_model(read_config(rollout.config_path), rollout.model_name,
                        rollout.config_path).version_labels
    alert = stable_action(report, labels.get(STABLE))
    if alert is None:
        return None
    path = audit_path(rollout.config_path)
    if _alert_key(alert) in _audited(path):
        log(f"already acted on the alert for version {alert['version']} over {alert['window']}")
        return None
    if PREVIOUS not in labels:
        log(f"version {alert['version']} alerts, but there is no '{PREVIOUS}' version to go "
            "back to: not acting")
        return None
    before, after = rollout.revert_to_previous()
    record = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "model": rollout.model_name, "from_version": before, "to_version": after,
              "report_as_of": report["as_of"], "alert": alert}
    _append(path, record)
    log(f"rolled back: stable {before} -> {after}; audit record in {path}")
    return record

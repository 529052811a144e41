"""The monitor's report as a table for the terminal."""
from typing import Any, Dict, List, Optional

from ledger.report_text import text_table


def _number(value: Optional[float], spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _day_rows(report: Dict[str, Any]) -> List[tuple]:
    rows = []
    for day in report["days"]:
        labelled, base = day["labelled"], day["baseline"]
        mix = " ".join(f"{k[0]}{v}" for k, v in day["decisions"].items())
        worst = max(day["feature_psi"].items(), key=lambda kv: kv[1], default=("-", None))
        rows.append((day["day"], str(day["version"]), str(day["transactions"]), mix,
                     f"{day['label_coverage']:.0%}", str(labelled["frauds"]),
                     f"{_number(labelled['roc_auc'])} / {_number(base['roc_auc'])}",
                     _number(labelled["pr_auc"]), _number(labelled["recall"]),
                     _number(labelled["ks"]), f"~{_number(day['estimated_roc_auc'])}",
                     _number(day["score_psi"]), f"{worst[0]} {_number(worst[1])}"))
    return rows


def _alert_line(alert: Dict[str, Any]) -> str:
    what = alert.get("subject", alert["metric"])
    line = (f"  {'ACTION' if alert['action'] else 'warning'} {alert['kind']}: version "
            f"{alert['version']} {what} {alert['value']:.3f}")
    if "threshold" in alert:
        line += (f" < {alert['threshold']:.3f} ({1 - alert['max_relative_drop']:.0%} of the "
                 f"baseline {alert['baseline']:.3f})")
    if "labelled_frauds" in alert:
        line += f", {alert['labelled_frauds']} labelled frauds"
    return line + f", {alert['window'][0]} to {alert['window'][1]}"


def format_report(report: Dict[str, Any]) -> str:
    header = ("day", "version", "txns", "decisions", "labelled", "frauds", "ROC-AUC / base",
              "PR-AUC", "recall", "KS", "est. AUC", "score PSI", "top feature PSI")
    lines = [f"monitor as of {report['as_of']} (labels known by then; est. = estimated "
             "from calibrated scores, no labels needed)"]
    lines += text_table(header, _day_rows(report))
    alerts = report["alerts"]
    lines.append("alerts:" if alerts else "alerts: none")
    lines += [_alert_line(alert) for alert in alerts]
    return "\n".join(lines)

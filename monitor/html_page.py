"""The monitor's report as one self-contained HTML page with the daily charts.

Three charts per model version, drawn as inline SVG (no script, no network):
ROC-AUC by day (labelled, the label-free estimate, the eval baseline and the
alert line), label coverage by day, and the score's PSI by day with the PSI
bands. Then the alerts and the daily table.
"""
import html
from typing import Any, Dict, List, Optional, Sequence, Tuple

from common.files import atomic_write_text

WIDTH, HEIGHT, PAD = 640, 200, 36
Series = Sequence[Optional[float]]


def _points(values: Series, low: float, high: float) -> List[Tuple[float, float]]:
    step = (WIDTH - 2 * PAD) / max(1, len(values) - 1)
    span = (high - low) or 1.0
    return [(PAD + i * step, HEIGHT - PAD - (v - low) / span * (HEIGHT - 2 * PAD))
            for i, v in enumerate(values) if v is not None]


def _polyline(values: Series, low: float, high: float, cls: str) -> str:
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in _points(values, low, high))
    return f'<polyline class="{cls}" points="{points}"/>' if points else ""


def _level(value: float, low: float, high: float, cls: str, label: str) -> str:
    y = _points([value], low, high)[0][1]
    return (f'<line class="{cls}" x1="{PAD}" x2="{WIDTH - PAD}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{WIDTH - PAD + 2}" y="{y:.1f}">{html.escape(label)}</text>')


def _chart(chart_id: str, title: str, days: List[str], lines: List[str]) -> str:
    axis = (f'<text x="{PAD}" y="{HEIGHT - 8}">{html.escape(days[0])}</text>'
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" text-anchor="end">'
            f'{html.escape(days[-1])}</text>')
    return (f'<figure id="{chart_id}"><figcaption>{html.escape(title)}</figcaption>'
            f'<svg viewBox="0 0 {WIDTH + 60} {HEIGHT}" width="{WIDTH + 60}" height="{HEIGHT}">'
            f'{"".join(lines)}{axis}</svg></figure>')


def _version_charts(version: int, rows: List[Dict[str, Any]], rules: Dict[str, Any]) -> str:
    days = [row["day"] for row in rows]
    baseline = rows[0]["baseline"]["roc_auc"]
    auc = [row["labelled"]["roc_auc"] for row in rows]
    estimate = [row["estimated_roc_auc"] for row in rows]
    low = min([v for v in auc + estimate if v is not None] + [baseline * 0.8])
    auc_lines = [_polyline(auc, low, 1.0, "auc"), _polyline(estimate, low, 1.0, "estimate"),
                 _level(baseline, low, 1.0, "baseline", "baseline"),
                 _level(baseline * (1 - rules["max_relative_drop"]), low, 1.0, "alert", "alert")]
    coverage = [_polyline([row["label_coverage"] for row in rows], 0.0, 1.0, "coverage")]
    psi = [row["score_psi"] for row in rows]
    top = max([v for v in psi if v is not None] + [0.3])
    psi_lines = [_polyline(psi, 0.0, top, "psi"), _level(0.1, 0.0, top, "band", "0.1"),
                 _level(0.25, 0.0, top, "band", "0.25")]
    return (f"<h2>version {version}</h2>"
            + _chart(f"auc-{version}", "ROC-AUC by day: labelled (solid), estimated (dashed), "
                     "baseline and alert line", days, auc_lines)
            + _chart(f"coverage-{version}", "label coverage by day", days, coverage)
            + _chart(f"psi-{version}", "score PSI by day (bands 0.1, 0.25)", days, psi_lines))


def _alerts(report: Dict[str, Any]) -> str:
    if not report["alerts"]:
        return "<p>No alert.</p>"
    items = "".join(f"<li class=\"{'action' if a['action'] else 'warning'}\">"
                    f"{html.escape(a['kind'])}: version {a['version']} "
                    f"{html.escape(str(a.get('subject', a['metric'])))} {a['value']:.3f}, "
                    f"{html.escape(a['window'][0])} to {html.escape(a['window'][1])}</li>"
                    for a in report["alerts"])
    return f"<ul id=\"alerts\">{items}</ul>"


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
polyline{fill:none;stroke-width:2}.auc{stroke:#1f77b4}.estimate{stroke:#1f77b4;
stroke-dasharray:5 4}.coverage{stroke:#2ca02c}.psi{stroke:#9467bd}
line.baseline{stroke:#555}line.alert{stroke:#d62728;stroke-dasharray:4 3}
line.band{stroke:#bbb;stroke-dasharray:2 3}text{font-size:11px;fill:#555}
li.action{color:#d62728;font-weight:bold}figure{margin:1em 0}"""


def render_html(report: Dict[str, Any]) -> str:
    by_version: Dict[int, List[Dict[str, Any]]] = {}
    for row in report["days"]:
        by_version.setdefault(row["version"], []).append(row)
    charts = "".join(_version_charts(version, rows, report["rules"])
                     for version, rows in sorted(by_version.items()))
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>riskpipe monitor"
            f"</title><style>{STYLE}</style></head><body><h1>riskpipe monitor, as of "
            f"{html.escape(report['as_of'])}</h1><h2>alerts</h2>{_alerts(report)}{charts}"
            "</body></html>\n")


def write_html(report: Dict[str, Any], path: str) -> None:
    atomic_write_text(path, render_html(report))

"""The cost ledger as one self-contained HTML page: charts drawn in the browser, tables in Python.

    write_html(report, "ledger.html")      # open it anywhere, offline: it loads nothing

The report dict (currency, price source, runs, models, features) is embedded
as JSON; the inline JavaScript draws three SVG charts from it. The tables are rendered here, so
the numbers stay readable without JavaScript. Nothing beyond the standard
library is imported, so the page can be written wherever the ledger runs.
"""
import html
import json
import math

from common.files import atomic_write_text

# (figure id, caption); the JavaScript below draws into each figure by its id.
_CHARTS = (
    ("chart-cost-by-component", "Cost by component per run"),
    ("chart-feature-value-cost", "Feature value share vs cost share"),
    ("chart-quality-vs-serving-cost", "Quality vs serving cost per model version"),
)


def render_html(report: dict) -> str:
    """The page for `report`, as one HTML document that references no other file or URL."""
    data = _embedded_json(report)  # first, so a NaN fails with JSON's own message
    body = "\n".join([
        _header(report),
        *(f'<figure id="{figure_id}"><figcaption>{caption}</figcaption></figure>'
          for figure_id, caption in _CHARTS),
        _latest_run_section(report),
        _runs_section(report),
        _models_section(report),
        _features_section(report),
    ])
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>riskpipe cost ledger</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n"
            f'<script type="application/json" id="report-data">{data}</script>\n'
            f"<script>{_JS}</script>\n</body>\n</html>\n")


def write_html(report: dict, path: str) -> None:
    """Writes the page for `report` to `path`; a reader never sees half a page."""
    atomic_write_text(path, render_html(report))


def _embedded_json(report: dict) -> str:
    """The report as JSON that cannot end its <script> element early.

    `</` would close the element; `<!--` would put the HTML parser in a state
    where even the real `</script>` no longer closes it. Both escapes are still
    JSON for the same strings. NaN is refused: the browser's JSON.parse rejects it.
    """
    text = json.dumps(report, ensure_ascii=False, allow_nan=False)
    return text.replace("<!--", "\\u003c!--").replace("</", "<\\/")


# -- Tables -----------------------------------------------------------------

class _Num(str):
    """A formatted number: right-aligned in its table column."""


def _num(value, unit: str = "") -> str:
    """4 significant digits (more for numbers of 10,000 and up), no exponent; None as a dash."""
    if value is None:
        return _Num("—")
    if value == 0:
        return _Num(f"0{unit}")
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))
    return _Num(f"{value:,.{decimals}f}{unit}")


def _money(value, currency: str) -> str:
    return _num(value, f" {currency}")


def _share(value) -> str:
    return _num(None if value is None else value * 100, " %")


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _table(headers, rows) -> str:
    # Each header is aligned like the first row's cell below it: every row holds the same kinds.
    head = "".join(f"<th{_align(cell)}>{html.escape(header)}</th>" for header, cell in zip(headers, rows[0]))
    body = "".join("<tr>" + "".join(f"<td{_align(cell)}>{html.escape(cell)}</td>" for cell in row) + "</tr>\n"
                   for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _align(cell: str) -> str:
    return ' class="num"' if isinstance(cell, _Num) else ""


def _section(title: str, headers, rows, empty_text: str, intro: str = "") -> str:
    content = _table(headers, rows) if rows else f'<p class="empty">{html.escape(empty_text)}</p>'
    intro_html = f"<p>{html.escape(intro)}</p>\n" if intro else ""
    return f"<section>\n<h2>{html.escape(title)}</h2>\n{intro_html}{content}\n</section>"


def _header(report: dict) -> str:
    facts = [
        ("Price source", report["price_source"]),
        ("Cost-effectiveness", report["cost_effectiveness_definition"]),
        ("Cut threshold", f"{_share(report['cut_threshold'])} of the cost share and of the value share"),
    ]
    items = "".join(f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in facts)
    return f"<h1>riskpipe cost ledger</h1>\n<dl>{items}</dl>"


def _latest_run_section(report: dict) -> str:
    if not report["runs"]:
        return _section("Latest run", [], [], "No runs yet.")
    currency, run = report["currency"], report["runs"][-1]
    total = run["total_cost"]
    rows = [[c["name"], _yes_no(c["cached"]), _num(c["wall_seconds"]), _num(c["cpu_seconds"]),
             _num(c["peak_memory_mb"]), _money(c["cost"], currency),
             _share(c["cost"] / total if total else None)]
            for c in run["components"]]
    intro = (f"Started {run['started_at']}; total {_money(total, currency)}, "
             f"{_num(run['total_cpu_seconds'])} CPU s, {_num(run['total_wall_seconds'])} s wall.")
    return _section(f"Latest run: {run['run_id']}",
                    ["Component", "Cached", "Wall s", "CPU s", "Peak MB", "Cost", "Share of total"],
                    rows, "The latest run recorded no components.", intro)


def _runs_section(report: dict) -> str:
    currency = report["currency"]
    rows = [[run["run_id"], run["started_at"], _money(run["total_cost"], currency),
             _num(run["total_cpu_seconds"]), _num(run["total_wall_seconds"]),
             _Num("—" if run["pushed_version"] is None else run["pushed_version"])]
            for run in report["runs"]]
    return _section("Run history (oldest first)",
                    ["Run", "Started", "Total cost", "CPU s", "Wall s", "Pushed version"],
                    rows, "No runs yet.")


def _models_section(report: dict) -> str:
    currency = report["currency"]
    rows = []
    for model in report["models"]:
        metrics = model["metrics"]
        rows.append([_Num(model["version"]), _yes_no(model["blessed"]), _yes_no(model["pushed"]),
                     _num(metrics["roc_auc"]), _num(metrics["pr_auc"]), _num(metrics.get("recall_at_1pct_fpr")),
                     _num(metrics["serving_cpu_ms_per_txn"]),
                     _money(metrics["cost_per_million_txns"], currency),
                     _num(model["cost_effectiveness"])])
    return _section("Model versions",
                    ["Version", "Blessed", "Pushed", "ROC-AUC", "PR-AUC", "Recall@1% FPR",
                     "Serving CPU ms/txn", "Cost per million txns", "Cost-effectiveness"],
                    rows, "No model versions yet.")


def _features_section(report: dict) -> str:
    # Best value for the cost first; features whose value per cost is unknown last.
    features = sorted(report["features"],
                      key=lambda f: (f["value_per_cost"] is None, -(f["value_per_cost"] or 0)))
    rows = [[f["name"], f["group"], _num(f["cost_us_per_txn"]), _share(f["cost_share"]),
             _Num(f"{_num(f['value_pr_auc'])} ± {_num(f['value_pr_auc_spread'])}"),
             _share(f["value_share"]), _num(f["value_per_cost"]), _yes_no(f["cut_candidate"])]
            for f in features]
    return _section("Features by value per cost",
                    ["Feature", "Group", "Cost µs/txn", "Cost share", "Value ΔPR-AUC ± spread",
                     "Value share", "Value per cost", "Cut candidate"],
                    rows, "No feature table yet.")


# -- Page assets --------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 72rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.4; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; }
figure { margin: 2rem 0; } figcaption { font-weight: 600; margin-bottom: .5rem; }
svg { width: 100%; max-width: 720px; height: auto; overflow: visible; font-size: 11px; }
.axis line { stroke: #888; } .axis .label { font-size: 12px; fill: #444; }
.threshold { stroke: #d55e00; stroke-dasharray: 5 4; }
circle.feature { fill: #0072b2; } circle.feature.candidate { fill: #d55e00; }
circle.model { fill: #fff; stroke: #009e73; stroke-width: 2; } circle.model.blessed { fill: #009e73; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .2rem 1rem; font-size: .85rem; }
.swatch { display: inline-block; width: .8em; height: .8em; margin-right: .35em; }
table { border-collapse: collapse; font-size: .9rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #ddd; text-align: left; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty, .note { color: #666; font-style: italic; } .error { color: #a00; }
"""

# Builds every SVG node with createElementNS and every text with textContent:
# names from the report never pass through an HTML parser.
_JS = """
(function () {
  "use strict";
  const report = JSON.parse(document.getElementById("report-data").textContent);
  // The SVG namespace from the HTML parser itself, so the page holds no URL at all.
  const probe = document.createElement("div");
  probe.innerHTML = "<svg></svg>";
  const SVG_NS = probe.firstChild.namespaceURI;
  const W = 720, H = 320, M = {top: 16, right: 24, bottom: 56, left: 72};
  // Okabe-Ito: colours that stay apart for colour-blind readers.
  const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"];

  function el(tag, attrs, parent, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  }

  function fmt(x) {  // 4 significant digits, as in the tables
    if (x === 0) return "0";
    const decimals = Math.max(0, 3 - Math.floor(Math.log10(Math.abs(x))));
    return x.toLocaleString("en-US", {maximumFractionDigits: Math.min(decimals, 20)});
  }
  const pct = x => fmt(x * 100) + " %";

  function linear([d0, d1], [r0, r1]) {
    return v => r0 + (v - d0) / (d1 - d0) * (r1 - r0);
  }

  // [lo, hi] around the values with 5% room; costs and shares read from zero.
  function extent(values, fromZero) {
    let lo = Math.min(...values), hi = Math.max(...values);
    if (fromZero) lo = Math.min(lo, 0);
    if (hi === lo) {
      const half = Math.abs(hi) * 0.1 || 0.5;
      hi += half;
      if (lo !== 0) lo -= half;
    }
    const pad = (hi - lo) * 0.05;
    return [lo === 0 ? 0 : lo - pad, hi + pad];
  }

  function ticks([lo, hi], count) {  // round steps: 1, 2 or 5 times a power of ten
    const raw = (hi - lo) / count;
    const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map(m => m * magnitude).find(s => s >= raw);
    const out = [];
    for (let i = Math.ceil(lo / step); i * step <= hi; i++) out.push(i * step);
    return out;
  }

  function newSvg(figure, label) {
    return el("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label}, figure);
  }

  // Axis lines, ticks and labels; xDomain null for a categorical x axis drawn by the chart.
  function axes(svg, x, y, xDomain, yDomain, xLabel, yLabel) {
    const g = el("g", {class: "axis"}, svg);
    el("line", {x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom}, g);
    el("line", {x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom}, g);
    for (const t of ticks(yDomain, 5)) {
      el("line", {x1: M.left - 4, x2: M.left, y1: y(t), y2: y(t)}, g);
      el("text", {x: M.left - 7, y: y(t), "text-anchor": "end", "dominant-baseline": "middle"}, g, fmt(t));
    }
    if (xDomain) {
      for (const t of ticks(xDomain, 6)) {
        el("line", {x1: x(t), x2: x(t), y1: H - M.bottom, y2: H - M.bottom + 4}, g);
        el("text", {x: x(t), y: H - M.bottom + 16, "text-anchor": "middle"}, g, fmt(t));
      }
    }
    el("text", {class: "label", x: (M.left + W - M.right) / 2, y: H - 12, "text-anchor": "middle"}, g, xLabel);
    el("text", {class: "label", "text-anchor": "middle",
                transform: `translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)`}, g, yLabel);
  }

  function note(figure, className, text) {
    const p = document.createElement("p");
    p.className = className;
    p.textContent = text;
    figure.appendChild(p);
  }

  function legend(figure, names, colour) {
    const list = document.createElement("ul");
    list.className = "legend";
    for (const name of names) {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colour(name);
      item.append(swatch, name);
      list.appendChild(item);
    }
    figure.appendChild(list);
  }

  function costByComponent(figure) {
    const runs = report.runs, currency = report.currency;
    const paid = run => run.components.filter(c => c.cost > 0);
    const names = [...new Set(runs.flatMap(run => paid(run).map(c => c.name)))];
    if (!names.length) return false;
    const colour = name => PALETTE[names.indexOf(name) % PALETTE.length];
    const totals = runs.map(run => paid(run).reduce((sum, c) => sum + c.cost, 0));
    const yDomain = [0, Math.max(...totals) * 1.05];
    const y = linear(yDomain, [H - M.bottom, M.top]);
    const band = (W - M.left - M.right) / runs.length;
    // Label as many runs as fit; every run keeps its full id in a tooltip.
    const labelEvery = Math.ceil(runs.length / 12), maxChars = Math.max(4, Math.floor(band * labelEvery / 7));
    const svg = newSvg(figure, "Stacked bars: cost of each component in each run");
    axes(svg, null, y, null, yDomain, "run (oldest first)", `cost (${currency})`);
    runs.forEach((run, i) => {
      const x = M.left + (i + 0.15) * band, width = band * 0.7;
      let base = 0;
      for (const c of paid(run)) {
        const bar = el("rect", {class: "bar", "data-run": run.run_id, "data-component": c.name, fill: colour(c.name),
                                x: x, width: width, y: y(base + c.cost), height: y(base) - y(base + c.cost)}, svg);
        el("title", {}, bar, `${run.run_id} · ${c.name}: ${fmt(c.cost)} ${currency}`);
        base += c.cost;
      }
      if (i % labelEvery) return;
      const id = run.run_id.length > maxChars ? run.run_id.slice(0, maxChars - 1) + "…" : run.run_id;
      const label = el("text", {x: x + width / 2, y: H - M.bottom + 16, "text-anchor": "middle"}, svg, id);
      el("title", {}, label, `${run.run_id}, started ${run.started_at}`);
    });
    legend(figure, names, colour);
    return true;
  }

  function featureValueCost(figure) {
    const features = report.features, cut = report.cut_threshold;
    if (!features.length) return false;
    const xDomain = extent(features.map(f => f.cost_share).concat(cut), true);
    const yDomain = extent(features.map(f => f.value_share).concat(cut), true);
    const x = linear(xDomain, [M.left, W - M.right]), y = linear(yDomain, [H - M.bottom, M.top]);
    const svg = newSvg(figure, "Scatter: each feature's share of the value against its share of the cost");
    axes(svg, x, y, xDomain, yDomain, "cost share", "value share");
    el("line", {class: "threshold", x1: x(cut), x2: x(cut), y1: M.top, y2: H - M.bottom}, svg);
    el("line", {class: "threshold", x1: M.left, x2: W - M.right, y1: y(cut), y2: y(cut)}, svg);
    for (const f of features) {
      const cx = x(f.cost_share), cy = y(f.value_share);
      const dot = el("circle", {class: f.cut_candidate ? "feature candidate" : "feature",
                                "data-feature": f.name, cx: cx, cy: cy, r: 5}, svg);
      el("title", {}, dot, `${f.name}: cost ${pct(f.cost_share)}, value ${pct(f.value_share)}`);
    }
    // Candidates crowd the low corner: each label steps above the one below it.
    let labelY = Infinity;
    for (const f of features.filter(f => f.cut_candidate).sort((a, b) => a.value_share - b.value_share)) {
      labelY = Math.min(y(f.value_share) - 8, labelY - 13);
      el("text", {x: x(f.cost_share) + 8, y: labelY}, svg, f.name);
    }
    note(figure, "note", `Dashed lines: the cut threshold (${pct(cut)}); labelled points are cut candidates.`);
    return true;
  }

  function qualityVsServingCost(figure) {
    const models = report.models.filter(m => m.metrics.cost_per_million_txns != null && m.metrics.pr_auc != null);
    if (!models.length) return false;
    const currency = report.currency;
    const xDomain = extent(models.map(m => m.metrics.cost_per_million_txns), true);
    const yDomain = extent(models.map(m => m.metrics.pr_auc), false);
    const x = linear(xDomain, [M.left, W - M.right]), y = linear(yDomain, [H - M.bottom, M.top]);
    const svg = newSvg(figure, "Scatter: each model version's PR-AUC against its serving cost");
    axes(svg, x, y, xDomain, yDomain, `serving cost per million transactions (${currency})`, "PR-AUC");
    for (const m of models) {
      const cx = x(m.metrics.cost_per_million_txns), cy = y(m.metrics.pr_auc);
      const dot = el("circle", {class: m.blessed ? "model blessed" : "model", "data-version": m.version,
                                cx: cx, cy: cy, r: 6}, svg);
      el("title", {}, dot, `v${m.version}: PR-AUC ${fmt(m.metrics.pr_auc)}, ` +
         `${fmt(m.metrics.cost_per_million_txns)} ${currency} per million txns` + (m.blessed ? ", blessed" : ""));
      el("text", {x: cx + 9, y: cy - 9}, svg, `v${m.version}`);
    }
    note(figure, "note", "Filled: blessed; hollow: not blessed. Versions without both values are left out.");
    return true;
  }

  const CHARTS = [
    ["chart-cost-by-component", costByComponent, "No component cost recorded yet."],
    ["chart-feature-value-cost", featureValueCost, "No feature table yet."],
    ["chart-quality-vs-serving-cost", qualityVsServingCost,
     "No model version has both a PR-AUC and a serving cost yet."],
  ];
  for (const [id, draw, emptyText] of CHARTS) {
    const figure = document.getElementById(id);
    // One chart's failure leaves the others, and says why on the page.
    try {
      if (!draw(figure)) note(figure, "empty", emptyText);
    } catch (err) {
      note(figure, "error", "This chart could not be drawn: " + err.message);
    }
  }
})();
"""

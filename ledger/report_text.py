"""The cost report as tables for the terminal (`riskpipe report`)."""
from typing import Any, Dict, List, Optional, Sequence


def _money(value: Optional[float], currency: str) -> str:
    return "-" if value is None else f"{currency} {value:.6f}"


def _number(value: Optional[float], spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def text_table(header: Sequence[str], rows: List[Sequence[str]]) -> List[str]:
    """Left-aligned columns, two spaces apart, indented by two."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    return ["  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in [header, *rows]]


def _latest_run(report: Dict[str, Any]) -> List[str]:
    priced = [run for run in report["runs"] if run["components"]]
    if not priced:
        return ["no run has a cost ledger yet: run `riskpipe run`"]
    run, currency = priced[-1], report["currency"]
    total = run["total_cost"] or 1.0
    rows = [(c["name"], "cached" if c["cached"] else "ran", f"{c['wall_seconds']:.1f}",
             f"{c['cpu_seconds']:.1f}", f"{c['peak_memory_mb']:.0f}",
             _money(c["cost"], currency), f"{c['cost'] / total:.1%}")
            for c in sorted(run["components"], key=lambda c: -c["cost"])]
    rows.append(("total", "", f"{run['total_wall_seconds']:.1f}",
                 f"{run['total_cpu_seconds']:.1f}", "", _money(run["total_cost"], currency),
                 "100.0%"))
    return ([f"latest run {run['run_id']}: cost by component"]
            + text_table(("component", "state", "wall s", "CPU s", "peak MB", "cost", "share"),
                         rows))


def _history(report: Dict[str, Any]) -> List[str]:
    rows = [(run["run_id"], str(sum(1 for c in run["components"] if c["cached"])),
             _money(run["total_cost"], report["currency"]) if run["components"] else "-",
             str(run["pushed_version"] or "-")) for run in report["runs"]]
    return ["runs"] + text_table(("run", "cached components", "cost", "pushed version"), rows)


def _models(report: Dict[str, Any]) -> List[str]:
    currency = report["currency"]
    rows = [(str(m["version"]), "yes" if m["blessed"] else "no",
             _number(m["metrics"]["roc_auc"]), _number(m["metrics"]["pr_auc"]),
             _number(m["metrics"].get("recall_at_1pct_fpr")), _number(m["metrics"].get("ks")),
             _number(m["metrics"]["serving_cpu_ms_per_txn"], ".3f"),
             _money(m["metrics"]["cost_per_million_txns"], currency),
             _money(m["training_cost"], currency), _number(m["cost_effectiveness"], ".2f"))
            for m in report["models"]]
    return (["model versions (serving CPU: riskpipe serve, 8 clients, the fleet's batching)"]
            + text_table(("version", "blessed", "ROC-AUC", "PR-AUC", "recall@1%FPR", "KS",
                          "CPU ms/txn", "per 1M txns", "training", "cost-eff."), rows)
            + _baseline_lines(report) + [f"  {report['cost_effectiveness_definition']}"])


def _baseline_lines(report: Dict[str, Any]) -> List[str]:
    """Credit versions: their baselines on the same eval split."""
    return [f"  v{m['version']} {name}: ROC-AUC {_number(values.get('roc_auc'))}, "
            f"KS {_number(values.get('ks'))}, Gini {_number(values.get('gini'))}"
            for m in report["models"] for name, values in m.get("baselines", {}).items()]


def _features(report: Dict[str, Any]) -> List[str]:
    if not report["features"]:
        return ["features: not measured (no pushed fraud model version on disk)"]
    rows = [(f["name"], f"{f['cost_us_per_txn']:.3f}", f"{f['cost_share']:.1%}",
             f"{f['value_pr_auc']:+.4f} ± {f['value_pr_auc_spread']:.4f}",
             f"{f['value_share']:.1%}", _number(f["value_per_cost"], ".4f"),
             "cut?" if f["cut_candidate"] else "") for f in report["features"]]
    candidates = report["cut_candidates"]
    return (["features of the latest version (value: PR-AUC lost when shuffled, 3 repetitions)"]
            + text_table(("feature", "µs/txn", "cost share", "value ΔPR-AUC", "value share",
                      "value/cost", ""), rows)
            + [f"  candidates to cut (value share < {report['cut_threshold']:.0%} < cost share):"
               f" {', '.join(candidates) if candidates else 'none'}"])


def format_report(report: Dict[str, Any]) -> str:
    sections = (_latest_run(report), _history(report), _models(report), _features(report))
    return "\n\n".join("\n".join(section) for section in sections)

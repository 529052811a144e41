"""The credit run summary's evaluation section: the DNN beside its baselines, and the KS table.

The DNN's figures are the Evaluator's (TFMA, the ones that bless); the
baselines' and the decile table come from the Trainer's credit_evaluation.json,
measured on the same eval split.
"""
from typing import List

from components.credit.config import CreditBlessing
from components.credit.trainer import DNN
from components.metric_names import BRIER, GINI, KS, PR_AUC, ROC_AUC
from pipeline.run_summary import table_lines

QUALITY_COLUMNS = ((ROC_AUC, "ROC-AUC"), (KS, "KS"), (GINI, "Gini"), (PR_AUC, "PR-AUC"),
                   (BRIER, "Brier"))


def _fmt(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _quality_rows(summary) -> List[tuple]:
    header = ("model",) + tuple(label for _, label in QUALITY_COLUMNS)
    rows = [header, (f"{DNN} (Evaluator)",) + tuple(_fmt(summary.metrics.get(name))
                                                     for name, _ in QUALITY_COLUMNS)]
    models = (summary.credit_evaluation or {}).get("models", {})
    for model, values in models.items():
        label = f"{DNN} (Trainer)" if model == DNN else model
        rows.append((label,) + tuple(_fmt(values.get(name)) for name, _ in QUALITY_COLUMNS))
    return rows


def _blessing_rule(summary, blessing: CreditBlessing) -> str:
    rule = f"blessing rule: KS >= {blessing.min_ks:g}, ROC-AUC >= {blessing.min_roc_auc:g}"
    base = summary.baseline_metrics
    if KS in base and ROC_AUC in base:
        rule += (f"; versus the last blessed model (KS {base[KS]:.4f}, ROC-AUC "
                 f"{base[ROC_AUC]:.4f}) neither may drop more than {blessing.max_drop:g}")
    return rule


def decile_lines(deciles: List[dict]) -> List[str]:
    header = ("decile", "count", "bads", "goods", "bad rate", "cum bads", "cum goods", "KS")
    rows = [header] + [
        (str(row["decile"]), str(row["count"]), str(row["bads"]), str(row["goods"]),
         _fmt(row["bad_rate"]), f"{row['cum_bads_share']:.1%}", f"{row['cum_goods_share']:.1%}",
         _fmt(row["ks"])) for row in deciles]
    return table_lines(rows)


def evaluation_lines(summary, blessing: CreditBlessing) -> List[str]:
    report = summary.credit_evaluation or {}
    lines = ["evaluation (eval split, overall; baselines fitted on the same train split):"]
    lines += table_lines(_quality_rows(summary))
    lines.append(_blessing_rule(summary, blessing))
    if report.get("deciles"):
        lines.append("KS by score decile (eval split; decile 1 = highest probability of default):")
        lines += decile_lines(report["deciles"])
    if report.get("score_psi") is not None:
        lines.append(f"score PSI, train vs eval: {report['score_psi']:.4f}")
    if report.get("wide_first"):
        lines.append(wide_first_line(report["wide_first"]))
    return lines


def wide_first_line(record: dict) -> str:
    """Which network the wide-first training kept, and the validation losses that decided it."""
    losses = record["validation_loss"]
    kept = ("the whole network (its deep path lowered" if record["deep_path_kept"]
            else "the wide path alone, a logistic regression (its deep path did not lower")
    return (f"network: {kept} the validation loss: {losses['whole_network']:.4f} with it, "
            f"{losses['wide_path']:.4f} without)")

"""The run summary: a pipeline run read back from MLMD (what ran, the data, the metrics, the
blessing, the push), and its table for the terminal.

Everything here is read from the metadata store and the artifacts it points
to, so the summary describes what the run actually produced.
"""
import dataclasses
import json
import os
from typing import Dict, List, Optional, Tuple

from common.serving_contract import OUTPUT_KEY, RAW_SCORE_KEY
from components.anomaly_gate import drift as data_drift
from components.anomaly_gate.executor import DRIFT_FILE, VALIDATED_STATISTICS_KEY
from components.calibration import CALIBRATION_FILE
from components.feature_gen.executor import num_examples_property
from pipeline.configs import EvalConfig
from pipeline.cost_ledger import currency_of, directory_bytes, stored_cost
from pipeline.mlmd_queries import (custom_property, latest_run_executions, open_store,
                                   output_artifacts, state_name)
COMPRESSION_FILE = "compression.json"
SERVING_MODEL_DIR = "Format-Serving"
LABEL_FEATURE = "is_fraud"


@dataclasses.dataclass
class ComponentRun:
    node: str
    state: str  # "ran", "cached", "failed", ...
    seconds: float
    cost: Optional[float] = None  # from the cost ledger; None for a run it did not price


@dataclasses.dataclass
class RunSummary:
    metadata_path: str
    components: List[ComponentRun] = dataclasses.field(default_factory=list)
    examples: Dict[str, int] = dataclasses.field(default_factory=dict)
    fraud_rate: Dict[str, float] = dataclasses.field(default_factory=dict)
    metrics: Dict[str, float] = dataclasses.field(default_factory=dict)
    baseline_metrics: Dict[str, float] = dataclasses.field(default_factory=dict)
    blessed: Optional[bool] = None
    validation_failures: List[str] = dataclasses.field(default_factory=list)
    pushed_to: Optional[str] = None
    # True when the blessed model was already a served version and not pushed again.
    already_served: bool = False
    compression: Optional[dict] = None
    # The Trainer's calibration.json: Brier and ECE of the raw and calibrated score.
    calibration: Optional[dict] = None
    # AnomalyGate's drift.json: the features compared with the previous run and serving.
    drift: Optional[dict] = None
    model_bytes: Optional[int] = None
    tensorboard_dir: Optional[str] = None
    currency: str = ""
    # "credit" when the examples came from CsvExampleGen; then the label is the
    # table's, the Trainer's credit_evaluation.json holds the baselines, deciles
    # and curves, and schema_uri is SchemaGen's output when it inferred one.
    task: str = "fraud"
    credit_evaluation: Optional[dict] = None
    schema_uri: Optional[str] = None


# ---------------------------------------------------------------------------
# What the artifacts hold.

def _split_uri(artifact, split: str) -> str:
    return os.path.join(artifact.uri, f"Split-{split}")


def _split_names(artifact) -> List[str]:
    """The splits of an Examples or ExampleStatistics artifact ('split_names' property)."""
    if "split_names" in artifact.properties:
        return json.loads(artifact.properties["split_names"].string_value)
    return json.loads(custom_property(artifact, "split_names") or "[]")


def _split_statistics(statistics_artifact) -> Dict[str, object]:
    """Split -> its DatasetFeatureStatistics, from StatisticsGen's output."""
    import tensorflow_data_validation as tfdv  # pylint: disable=import-outside-toplevel

    return {split: tfdv.load_stats_binary(os.path.join(_split_uri(statistics_artifact, split),
                                                       "FeatureStats.pb")).datasets[0]
            for split in _split_names(statistics_artifact)}


def label_rates(statistics_artifact, label: str = LABEL_FEATURE) -> Dict[str, float]:
    """Split -> mean of the label, from StatisticsGen's output."""
    rates = {}
    for split, dataset in _split_statistics(statistics_artifact).items():
        for feature in dataset.features:
            if feature.path.step and feature.path.step[-1] == label:
                rates[split] = feature.num_stats.mean
    return rates


def split_sizes(statistics_artifact) -> Dict[str, int]:
    """Split -> number of examples StatisticsGen described: a sampled split's sample size."""
    return {split: int(dataset.num_examples)
            for split, dataset in _split_statistics(statistics_artifact).items()}


def overall_metrics(evaluation_uri: str) -> Tuple[Dict[str, float], Dict[str, float]]:
    """(candidate, baseline) metric name -> value on the overall slice."""
    import tensorflow_model_analysis as tfma  # pylint: disable=import-outside-toplevel

    candidate, baseline = {}, {}
    for metrics in tfma.load_metrics(evaluation_uri):
        if metrics.slice_key.single_slice_keys:
            continue
        for item in metrics.metric_keys_and_values:
            if item.key.is_diff or not item.value.HasField("double_value"):
                continue
            target = baseline if item.key.model_name == "baseline" else candidate
            target[item.key.name] = item.value.double_value.value
    return candidate, baseline


def _describe_failure(failure) -> str:
    key, threshold = failure.metric_key, failure.metric_threshold
    value = failure.metric_value.double_value.value
    if key.is_diff:
        bound = threshold.change_threshold.absolute.value
        return f"{key.name} changed by {value:+.4f} versus the baseline, allowed >= {bound:+g}"
    bound = threshold.value_threshold.lower_bound.value
    return f"{key.name} {value:.4f} is below the lower bound {bound:g}"


def validation_failures(evaluation_uri: str) -> List[str]:
    """One line per failed blessing threshold."""
    import tensorflow_model_analysis as tfma  # pylint: disable=import-outside-toplevel

    result = tfma.load_validation_result(evaluation_uri)
    return [_describe_failure(failure)
            for per_slice in result.metric_validations_per_slice
            for failure in per_slice.failures]


def read_model_run_json(model_run_uri: str, name: str) -> Optional[dict]:
    """A JSON report the Trainer wrote into its model_run directory; None when absent."""
    path = os.path.join(model_run_uri, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------
# The summary.

def _fill_from_outputs(summary: RunSummary, node: str, outputs: Dict[str, list],
                      label: str) -> None:
    # pylint: disable=import-outside-toplevel
    from components.credit.trainer import EVALUATION_FILE
    from pipeline import pipeline as dag

    def first(key):
        return outputs.get(key, [None])[0]

    if node == dag.FEATURE_GEN and first("examples") is not None:
        examples = first("examples")
        summary.examples = {split: int(custom_property(examples, num_examples_property(split)) or 0)
                            for split in _split_names(examples)}
    elif node == dag.EXAMPLE_GEN:
        summary.task = "credit"
    elif node == dag.STATISTICS_GEN and first("statistics") is not None:
        summary.fraud_rate = label_rates(first("statistics"), label)
        # CsvExampleGen records no split sizes, so StatisticsGen read its splits
        # whole; FeatureGen's (above) are the real ones, its splits may be sampled.
        if summary.task == "credit":
            summary.examples = split_sizes(first("statistics"))
    elif node == dag.SCHEMA_GEN and first("schema") is not None:
        summary.schema_uri = first("schema").uri
    elif node == dag.ANOMALY_GATE and first(VALIDATED_STATISTICS_KEY) is not None:
        summary.drift = read_model_run_json(first(VALIDATED_STATISTICS_KEY).uri, DRIFT_FILE)
    elif node == dag.TRAINER:
        if first("model_run") is not None:
            summary.tensorboard_dir = first("model_run").uri
            summary.compression = read_model_run_json(first("model_run").uri, COMPRESSION_FILE)
            summary.calibration = read_model_run_json(first("model_run").uri, CALIBRATION_FILE)
            summary.credit_evaluation = read_model_run_json(first("model_run").uri,
                                                            EVALUATION_FILE)
        if first("model") is not None:
            summary.model_bytes = directory_bytes(
                os.path.join(first("model").uri, SERVING_MODEL_DIR))
    elif node == dag.EVALUATOR:
        if first("evaluation") is not None:
            uri = first("evaluation").uri
            summary.metrics, summary.baseline_metrics = overall_metrics(uri)
            summary.validation_failures = validation_failures(uri)
        if first("blessing") is not None:
            summary.blessed = bool(custom_property(first("blessing"), "blessed"))
    elif node == dag.PUSHER and first("pushed_model") is not None:
        pushed = first("pushed_model")
        if custom_property(pushed, "pushed"):
            summary.pushed_to = custom_property(pushed, "pushed_destination")
            summary.already_served = bool(custom_property(pushed, "already_served"))


def summarize(metadata_path: str, pipeline_name: str, label: str = LABEL_FEATURE) -> RunSummary:
    """The summary of the latest run of `pipeline_name` recorded in the store.

    `label`: the label feature whose mean is each split's fraud or default rate.
    """
    summary = RunSummary(metadata_path=metadata_path)
    store = open_store(metadata_path)
    if store is None:
        return summary
    for node, execution in latest_run_executions(store, pipeline_name):
        priced = stored_cost(execution, node or "?")
        # The ledger measured the run itself; MLMD's update time moves when it is written.
        seconds = priced.wall_seconds if priced else (
            execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0
        summary.components.append(ComponentRun(node or "?", _state(node, execution), seconds,
                                                priced.cost if priced else None))
        summary.currency = summary.currency or currency_of(execution)
        _fill_from_outputs(summary, node, output_artifacts(store, execution.id), label)
    return summary


def _state(node: Optional[str], execution) -> str:
    """The execution's state as the summary shows it."""
    from pipeline import pipeline as dag  # pylint: disable=import-outside-toplevel

    state = state_name(execution)
    # TFX records a resolver that finds nothing as failed; the run goes on without it.
    if node == dag.PREVIOUS_STATISTICS_RESOLVER and state == "failed":
        return "no earlier run"
    return state


# ---------------------------------------------------------------------------
# Formatting.

def _fmt(value: Optional[float], digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _metric_rows(summary: RunSummary, evaluation: EvalConfig) -> List[Tuple[str, str, str]]:
    from pipeline import eval_config as ec  # pylint: disable=import-outside-toplevel

    m = summary.metrics
    bounds = {ec.PRECISION: evaluation.min_precision, ec.RECALL: evaluation.min_recall}
    rows = []
    for name, label in ((ec.ROC_AUC, "ROC-AUC"), (ec.PR_AUC, "PR-AUC"),
                        (ec.PRECISION, f"precision @ {evaluation.threshold:g}"),
                        (ec.RECALL, f"recall @ {evaluation.threshold:g}"),
                        (ec.RECALL_AT_FPR, f"recall @ {ec.RECALL_FPR:.0%} FPR"),
                        (ec.EXAMPLE_COUNT, "eval examples")):
        value = m.get(name)
        shown = str(int(value)) if name == ec.EXAMPLE_COUNT and value is not None else _fmt(value)
        rule = ""
        if name in bounds:
            rule = f">= {bounds[name]:g}"
            if name in summary.baseline_metrics:
                rule += (f", >= {summary.baseline_metrics[name] - evaluation.max_drop:.4f} "
                         f"(baseline {summary.baseline_metrics[name]:.4f} - {evaluation.max_drop:g})")
        rows.append((label, shown, rule))
    return rows


def table_lines(rows: List[Tuple[str, ...]]) -> List[str]:
    if not rows:
        return ["  -"]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
            for row in rows]


def _sparsity_text(compression: Optional[dict]) -> str:
    """E.g. "50.0% zeros in every Dense kernel (target 50%)" from the Trainer's compression.json."""
    if not compression or compression.get("min_dense_kernel_sparsity") is None:
        return "-"
    text = f"{compression['min_dense_kernel_sparsity']:.1%} zeros in every Dense kernel"
    if compression.get("target_sparsity") is not None:
        text += f" (target {compression['target_sparsity']:.0%})"
    return text + (", quantization-aware" if compression.get("quantization_aware") else "")


def _parameters_text(compression: Optional[dict]) -> str:
    """E.g. "869 trainable, 869 non-zero; distilled from a [64, 32] teacher"."""
    if not compression or compression.get("trainable_parameters") is None:
        return "-"
    text = (f"{compression['trainable_parameters']} trainable, "
            f"{compression['nonzero_parameters']} non-zero")
    distillation = compression.get("distillation")
    if distillation:
        text += f"; distilled from a {distillation['teacher_hidden_units']} teacher"
    return text


def _calibration_lines(calibration: Optional[dict]) -> List[str]:
    """Brier and ECE on the eval split of the raw and the calibrated score, when measured."""
    if not calibration:
        return []
    lines = [f"calibration (eval split, {calibration['eval_examples']} rows; "
             f"ECE over {calibration['ece_bins']} equal-width bins):"]
    return lines + table_lines([
        (f"{key}:", f"Brier {_fmt(calibration[key]['brier'])}",
         f"ECE {_fmt(calibration[key]['ece'])}", note)
        for key, note in ((RAW_SCORE_KEY, ""),
                          (OUTPUT_KEY, f"(logit({RAW_SCORE_KEY}) - "
                                       f"{calibration['logit_shift']:.4f})"))])


def _drift_lines(report: Optional[dict]) -> List[str]:
    """A line per feature AnomalyGate found drifted (its distance and PSI), when it compared."""
    if report is None:
        return []
    rows = report["features"]
    if not rows:
        return ["drift: nothing to compare with (no earlier run's statistics, no serving "
                "statistics)"]
    drifted = [row for row in rows if row["drifted"]]
    head = (f"drift: {len(drifted)} of {len(rows)} feature comparisons beyond the thresholds "
            f"(drift_action {report['drift_action']})")
    return [head + (":" if drifted else "")] + [
        "  " + data_drift.describe(row, report["psi_threshold"]) for row in drifted]


def _evaluation_lines(summary: RunSummary, evaluation) -> List[str]:
    """Fraud: the metrics against the blessing bounds and the calibration; credit: its own."""
    if summary.task == "credit":
        from pipeline import credit_summary  # pylint: disable=import-outside-toplevel

        return credit_summary.evaluation_lines(summary, evaluation)
    return (["evaluation (eval split, overall):"] + table_lines(_metric_rows(summary, evaluation))
            + _calibration_lines(summary.calibration))


def format_summary(summary: RunSummary, evaluation) -> str:
    """The human-readable summary table of a run.

    `evaluation`: the EvalConfig of a fraud run, the CreditBlessing of a credit one.
    """
    rate = "default rate" if summary.task == "credit" else "fraud rate"
    lines = ["components:"]
    lines += table_lines([(c.node, c.state, f"{c.seconds:.1f} s", _money(c.cost, summary.currency))
                     for c in summary.components])
    lines.append("data:")
    lines += table_lines([(split, f"{summary.examples.get(split, 0)} rows",
                      f"{rate} {_fmt(summary.fraud_rate.get(split))}")
                     for split in summary.examples])
    lines += _evaluation_lines(summary, evaluation)
    lines += _drift_lines(summary.drift)
    blessing = {None: "not evaluated", True: "BLESSED", False: "NOT blessed"}[summary.blessed]
    lines.append(f"blessing: {blessing}")
    lines += [f"  failed: {failure}" for failure in summary.validation_failures]
    size = "-" if summary.model_bytes is None else f"{summary.model_bytes / 1e6:.2f} MB"
    pushed = summary.pushed_to or "nothing pushed"
    if summary.already_served:
        pushed += " (this model was already served there; not pushed again)"
    lines += table_lines([
        ("sparsity:", _sparsity_text(summary.compression)),
        ("parameters:", _parameters_text(summary.compression)),
        ("model size:", size),
        ("pushed model:", pushed),
        ("TensorBoard logs:", summary.tensorboard_dir or "-"),
        *((("inferred schema:", os.path.join(summary.schema_uri, "schema.pbtxt")),)
          if summary.schema_uri else ()),
        ("MLMD:", summary.metadata_path),
    ])
    return "\n".join(lines + _cost_lines(summary))


def _money(value: Optional[float], currency: str) -> str:
    return "" if value is None else f"{currency} {value:.6f}"


def _cost_lines(summary: RunSummary, top: int = 3) -> List[str]:
    """The run's total cost and its most expensive components (`riskpipe report` has more)."""
    priced = [c for c in summary.components if c.cost is not None]
    if not priced:
        return []
    costly = sorted((c for c in priced if c.cost > 0), key=lambda c: -c.cost)[:top]
    return [f"cost of this run: {_money(sum(c.cost for c in priced), summary.currency)}"
            + ("; most expensive: " + ", ".join(f"{c.node} {_money(c.cost, summary.currency)}"
                                               for c in costly) if costly else "")]

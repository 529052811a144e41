"""The ledger of a pipeline root: what each run, model version and feature cost, beside its worth.

Everything comes from the pipeline's MLMD store and what it points to:

- runs: every run's component costs as the local runner recorded them
  (pipeline/cost_ledger.py), and the version it pushed;
- models: each pushed version's training cost (the executions its lineage
  ran: cached ones cost nothing, so each is the run that did the work), its
  Evaluator metrics, and its serving cost (ledger/serving_cost.py);
- features: the latest pushed version's per-feature cost and value
  (ledger/feature_costs.py, ledger/feature_values.py), and the cut candidates:
  features whose value share is below the threshold while their cost share is
  above it.

Measurements of a version (serving cost, features) are kept under
<pipeline_root>/ledger/ and reused: a version does not change once pushed.
"""
import dataclasses
import datetime
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

from common.files import kept_json
from components.credit import trainer as credit_trainer
from components.metric_names import BRIER, GINI, KS, PR_AUC, RECALL_AT_FPR, ROC_AUC
from ledger import feature_costs, feature_values, serving_cost
from pipeline import cost_ledger, mlmd_queries, run_summary
from pipeline.configs import CostConfig
from pipeline.pipeline import (EVALUATOR, EXAMPLE_GEN, EXAMPLE_SOURCES, FEATURE_GEN, PUSHER,
                               TRAINER)

FRAUD_METRICS = (ROC_AUC, PR_AUC, RECALL_AT_FPR)
CREDIT_METRICS = (ROC_AUC, KS, GINI, PR_AUC, BRIER)

COST_EFFECTIVENESS = ("cost-effectiveness: the PR-AUC a version gained over the version pushed "
                      "before it, per unit of its training cost (PR-AUC per {currency}); none "
                      "for the first version")


@dataclasses.dataclass
class ReportOptions:
    pipeline_name: str = "riskpipe"
    model_name: str = "fraud"
    # A feature is a candidate to cut when its value share is below this and its
    # cost share above it.
    cut_threshold: float = 0.02
    # Measure versions not measured yet (serving cost, feature table).
    measure: bool = True
    serving_transactions: int = 1000
    feature_cost_transactions: int = 20000
    value_rows: int = 50000
    value_repetitions: int = 3
    batching_config: str = serving_cost.FLEET_BATCHING_CONFIG


def _run_record(run_id: str, executions: List[tuple]) -> Dict[str, Any]:
    components = [cost_ledger.stored_cost(execution, node or "?")
                  for node, execution in executions]
    priced = [c for c in components if c is not None]
    started = min(e.create_time_since_epoch for _, e in executions) / 1000
    return {"run_id": run_id,
            "started_at": datetime.datetime.fromtimestamp(started, datetime.timezone.utc)
            .isoformat(timespec="seconds"),
            "components": [dataclasses.asdict(c) for c in priced],
            "total_cost": sum(c.cost for c in priced),
            "total_cpu_seconds": sum(c.cpu_seconds for c in priced),
            "total_wall_seconds": sum(c.wall_seconds for c in priced),
            "pushed_version": None}


def _quality(store, evaluator, names: Sequence[str]) -> Dict[str, Optional[float]]:
    outputs = mlmd_queries.output_artifacts(store, evaluator.id)
    metrics, _ = run_summary.overall_metrics(outputs["evaluation"][0].uri)
    blessed = bool(mlmd_queries.custom_property(outputs["blessing"][0], "blessed"))
    return {"blessed": blessed, **{name: metrics.get(name) for name in names}}


def _credit_baselines(store, pushed) -> Dict[str, Dict[str, float]]:
    """The baselines' quality on the version's eval split, from its Trainer's report."""
    trainer = next(e for e in pushed.lineage if mlmd_queries.node_of(store, e.id) == TRAINER)
    model_run = mlmd_queries.output_artifacts(store, trainer.id)["model_run"][0]
    report = run_summary.read_model_run_json(model_run.uri, credit_trainer.EVALUATION_FILE) or {}
    return {name: values for name, values in report.get("models", {}).items()
            if name != credit_trainer.DNN}


def _measured(pipeline_root: str, kind: str, version: int, measure: Optional[Callable]):
    """A version's kept measurement of `kind`, measured now (and kept) when missing and allowed."""
    return kept_json(os.path.join(pipeline_root, "ledger", kind, f"{version}.json"), measure)


def _serving_figures(pipeline_root: str, pushed, options: ReportOptions) -> Optional[dict]:
    def measure():
        # The first eval transactions, as the risk engine sends them: the fixed replay sample.
        examples = feature_values.as_requests(
            feature_values.split_records(pushed.examples_uri, "eval", options.serving_transactions),
            feature_values.served_inputs(pushed.directory))
        return serving_cost.measure(pushed.directory, options.model_name, examples,
                                    options.batching_config)
    can_measure = options.measure and os.path.isdir(pushed.directory)
    return _measured(pipeline_root, "serving", pushed.version, measure if can_measure else None)


def _model_records(store, runs, pipeline_root: str, prices: CostConfig,
                   options: ReportOptions) -> List[Dict[str, Any]]:
    records = {record["run_id"]: record for record, _ in runs}
    models, previous_pr_auc = [], None
    for pushed in mlmd_queries.pushed_versions(store, options.pipeline_name, PUSHER, EVALUATOR,
                                               EXAMPLE_SOURCES):
        records[pushed.run_id]["pushed_version"] = pushed.version
        credit = pushed.example_source == EXAMPLE_GEN
        quality = _quality(store, pushed.evaluator, CREDIT_METRICS if credit else FRAUD_METRICS)
        # The serving replay and the feature table measure fraud's features.
        serving = None if credit else _serving_figures(pipeline_root, pushed, options)
        training_cost = sum(c.cost for c in (cost_ledger.stored_cost(e, "")
                                             for e in pushed.lineage) if c is not None)
        pr_auc = quality["pr_auc"]
        models.append({
            "version": pushed.version, "blessed": quality.pop("blessed"), "pushed": True,
            "training_cost": training_cost, "pushed_version": pushed,
            "cost_effectiveness": (None if previous_pr_auc is None or pr_auc is None
                                   or not training_cost
                                   else (pr_auc - previous_pr_auc) / training_cost),
            "metrics": {**quality,
                        "serving_cpu_ms_per_txn": serving and serving["cpu_ms_per_txn_c8"],
                        "serving_cpu_ms_per_txn_c1": serving and serving["cpu_ms_per_txn_c1"],
                        "cost_per_million_txns": serving and serving_cost.cost_per_million(
                            serving["cpu_ms_per_txn_c8"], prices.vcpu_hour)},
            **({"baselines": _credit_baselines(store, pushed)} if credit else {})})
        previous_pr_auc = pr_auc if pr_auc is not None else previous_pr_auc
    return models


def _feature_table(pipeline_root: str, pushed, options: ReportOptions) -> List[Dict[str, Any]]:
    def measure():
        # The features the version takes: one a bank excluded costs nothing online.
        inputs = set(feature_values.served_inputs(pushed.directory))
        costs = [cost for cost in feature_costs.feature_costs(
            pushed.input_base, options.feature_cost_transactions) if cost.name in inputs]
        columns, labels = feature_values.read_eval_split(pushed.examples_uri, options.value_rows)
        values = feature_values.permutation_values(
            feature_values.model_scorer(pushed.directory), columns, labels,
            [c.name for c in costs], options.value_repetitions)
        return {"costs": [dataclasses.asdict(c) for c in costs],
                "values": [dataclasses.asdict(v) for v in values]}
    can_measure = options.measure and os.path.isdir(pushed.directory)
    measured = _measured(pipeline_root, "features", pushed.version,
                         measure if can_measure else None)
    return feature_rows(measured, options.cut_threshold) if measured else []


def feature_rows(measured: Dict[str, list], cut_threshold: float) -> List[Dict[str, Any]]:
    """The feature table: cost and value with their shares, sorted by value per cost."""
    values = {v["name"]: v for v in measured["values"]}
    total_cost = sum(c["cost_us_per_txn"] for c in measured["costs"]) or 1.0
    total_value = sum(max(0.0, v["value_pr_auc"]) for v in values.values()) or 1.0
    rows = []
    for cost in measured["costs"]:
        value = values[cost["name"]]
        cost_share = cost["cost_us_per_txn"] / total_cost
        value_share = max(0.0, value["value_pr_auc"]) / total_value
        rows.append({**cost, **value, "cost_share": cost_share, "value_share": value_share,
                     "value_per_cost": (value["value_pr_auc"] / cost["cost_us_per_txn"]
                                        if cost["cost_us_per_txn"] > 0 else None),
                     "cut_candidate": value_share < cut_threshold < cost_share})
    return sorted(rows, key=lambda row: (row["value_per_cost"] is None,
                                         -(row["value_per_cost"] or 0.0)))


def _prices(pipeline_root: str, runs) -> CostConfig:
    """The prices the latest run was priced with (its cost.json), else the defaults."""
    for record, _ in reversed(runs):
        path = os.path.join(pipeline_root, "runs", record["run_id"], cost_ledger.COST_FILE)
        if os.path.exists(path):
            with open(path) as f:
                return CostConfig(**json.load(f)["prices"])
    return CostConfig()


def build_report(pipeline_root: str, options: ReportOptions = ReportOptions()) -> Dict[str, Any]:
    """The report of every run under `pipeline_root` (see the module docstring for its parts)."""
    store = mlmd_queries.open_store(os.path.join(pipeline_root, "metadata.sqlite"))
    if store is None:
        raise FileNotFoundError(f"{pipeline_root}: no metadata.sqlite; run `riskpipe run` first")
    if not options.pipeline_name:
        names = mlmd_queries.pipeline_names(store)
        options = dataclasses.replace(options, pipeline_name=names[0] if len(names) == 1
                                      else ReportOptions.pipeline_name)
    runs = [(_run_record(run_id, executions), executions)
            for run_id, executions in mlmd_queries.run_executions(store, options.pipeline_name)]
    prices = _prices(pipeline_root, runs)
    models = _model_records(store, runs, pipeline_root, prices, options)
    fraud = models and models[-1]["pushed_version"].example_source == FEATURE_GEN
    features = _feature_table(pipeline_root, models[-1]["pushed_version"], options) if fraud else []
    return {"currency": prices.currency, "price_source": prices.source,
            "prices": dataclasses.asdict(prices),
            "cost_effectiveness_definition": COST_EFFECTIVENESS.format(currency=prices.currency),
            "cut_threshold": options.cut_threshold,
            "runs": [record for record, _ in runs],
            "models": [{k: v for k, v in model.items() if k != "pushed_version"}
                       for model in models],
            "features": features,
            "cut_candidates": [row["name"] for row in features if row["cut_candidate"]]}

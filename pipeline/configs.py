"""Configuration of a riskpipe run: plain dataclasses, loadable from a YAML file.

`PipelineConfig` is everything `create_pipeline` needs; nothing is read from
the environment. `riskpipe run --config FILE` overrides the defaults with the
sections of a YAML file whose keys mirror these dataclasses.
"""
import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import yaml

from common.errors import UsageError
from components.credit.config import CreditConfig
from components.features import selected_features
from components.trainer_config import TrainerConfig


@dataclasses.dataclass
class FeatureGenConfig:
    # Out-of-time split: transactions on or after eval_start_date (YYYY-MM-DD,
    # UTC) are the eval split; when empty, the last `eval_days` days are.
    eval_start_date: str = ""
    eval_days: int = 7


@dataclasses.dataclass
class EvalConfig:
    # Decision threshold on the served fraud probability at which precision and
    # recall are measured and blessed. That score is calibrated (prior-corrected
    # for the class weights and synthetic frauds, components/export.py), so the
    # threshold means the same under any weighting. The raw 0.5 of sqrt weights
    # (the default before synthetic frauds) on the demo data (1.08% fraud in
    # training) is sigmoid(logit(0.5) - ln(w1/w0)) = 0.095 on this scale;
    # rounded to 0.1, it gave precision 0.46 and recall 0.51 there (0.45 and
    # 0.51 at 0.095).
    threshold: float = 0.1
    # Lower bounds for blessing, on the whole eval split (slices are reported,
    # not gated: a rare category has too few frauds to judge).
    min_precision: float = 0.2
    min_recall: float = 0.2
    # Largest allowed drop of precision or recall versus the last blessed model.
    max_drop: float = 0.05
    # Features whose values the Evaluator also reports metrics for, e.g.
    # [merchant_category, channel]. None by default: TFMA's metrics cost a
    # Python call per example and slice, so each slice feature adds about half
    # the Evaluator's CPU (at 100 k transactions two of them took it from 5.9
    # to 10.5 s).
    slice_features: Tuple[str, ...] = ()


@dataclasses.dataclass
class CostConfig:
    """Prices that turn a run's measured resources into money (the `cost:` section).

    The defaults are Google Cloud's on-demand list prices in us-central1 as
    published in 2024: N2 vCPU and memory (an n2-standard-4 is 4 vCPU + 16 GB
    = 0.194236 USD/hour), Cloud Storage Standard, and an NVIDIA T4 GPU. A bank
    sets its own negotiated prices here.
    """
    currency: str = "USD"
    vcpu_hour: float = 0.031611
    memory_gb_hour: float = 0.004237
    storage_gb_month: float = 0.020
    gpu_hour: float = 0.35
    # GPUs a component holds while it runs (none on the default machine).
    gpus: float = 0.0
    # How long a run's artifacts are kept: their storage is charged for this long.
    storage_months: float = 1.0
    source: str = ("Google Cloud on-demand list prices, us-central1, 2024: N2 vCPU and "
                   "memory, Cloud Storage Standard, NVIDIA T4")


@dataclasses.dataclass
class ValidationConfig:
    """Drift and skew checks of the data before training (the `validation:` section).

    AnomalyGate compares this run's statistics with those an earlier run passed
    (drift), and the train split with serving statistics when given (skew):
    TFDV's distance where the schema has a comparator, the PSI for every model
    feature (components/anomaly_gate/drift.py).
    """
    # "warn": drifted features are listed in the run summary and the run goes on;
    # "stop": drift fails the run before Transform, like an anomaly.
    drift_action: str = "warn"
    # PSI above which a feature has drifted; 0.25 is where the usual "act" band starts.
    psi_threshold: float = 0.25
    # A TFDV statistics file of serving data (what tfdv.load_statistics reads: the
    # one-record TFRecord tfdv.generate_statistics_* write, or text); "": no skew check.
    serving_statistics: str = ""


@dataclasses.dataclass
class StatisticsConfig:
    """How much data StatisticsGen reads (the `statistics:` section)."""
    # Splits larger than this are described by a random sample of about this
    # many examples (components/statistics_gen/executor.py): statistics cost
    # CPU per row (55 s on 1 M transactions) while the drift, skew and PSI
    # checks compare distributions, which a sample that size estimates closely.
    # 0 computes the statistics on every example.
    max_examples: int = 200_000


@dataclasses.dataclass
class FeatureSelectionConfig:
    """Which model features the fraud model uses (the `features:` section).

    An excluded feature leaves the Transform, the model, the exported
    signatures' inputs and the risk engine's online computation; FeatureGen
    still writes it, so another model version can use it. `riskpipe
    select-features` writes this section from the ledger's feature table.
    """
    exclude: Tuple[str, ...] = ()


TASKS = ("fraud", "credit")
# The fraud task's training defaults: one synthetic fraud per real one
# (components/synthetic_minority.py) instead of class weights. On one split of
# simulated transactions (benchmarks/rare_class.py) it beat sqrt class weights
# on eval PR-AUC at 1 M transactions (0.686 vs 0.648) and at 100 k with two
# seeds (0.519 vs 0.471, 0.300 vs 0.249), with ROC-AUC unchanged; the calibrated
# score's ECE was 0.0002 at 1 M.
# Batches of 512 at a 1.5x learning rate: on the same 1 M-transaction split
# and two training seeds, eval PR-AUC 0.7339 / 0.7386 against 0.7293 / 0.7436
# with batches of 256, for 31% less Trainer CPU (1024 at 2x: 0.7266 / 0.7289).
FRAUD_TRAINER = TrainerConfig(batch_size=512, learning_rate=1.5e-3, class_weight_scheme="none",
                              synthetic_fraud_ratio=1.0)
CREDIT_PIPELINE_NAME = "riskpipe-credit"
# The credit task's training defaults: a small regularised network that stops
# early, for tables of a thousand to a few hundred thousand applications.
# Wide and deep with one-hot categories (components/credit/trainer.py). No
# pruning by default: a model of a few thousand weights scored once per
# application gains nothing from it, and at 1 k applications 50% sparsity cost
# ROC-AUC; `trainer.target_sparsity` turns it on. Without it, L2 near logistic
# regression's (C = 1 over 800 rows is 1.25e-3 on the mean loss) and dropout
# 0.3 keep a column the outcome ignores out of the reason codes, which L2 1e-4
# did not. Mean ROC-AUC / KS of three training seeds at 1 k rows, pruned with
# L2 1e-4 -> these: German credit 0.770/0.448 -> 0.774/0.448, simulated tables
# 0.618/0.303 -> 0.634/0.321 and 0.655/0.360 -> 0.644/0.357. Training the
# wide path first (TrainerConfig.wide_first) then took German credit's mean KS
# from 0.448 to 0.460 (logistic regression: 0.484).
CREDIT_TRAINER = TrainerConfig(hidden_units=(32, 16), batch_size=128, epochs=100,
                               learning_rate=3e-3, l2=1e-3, dropout=0.3, wide=True,
                               wide_first=True, target_sparsity=0.0,
                               early_stopping_patience=8, pruning_epochs=5, seed=0)


@dataclasses.dataclass
class PipelineConfig:
    pipeline_name: str = "riskpipe"
    # "fraud" (card transactions through FeatureGen) or "credit" (a bank's
    # application table through CsvExampleGen).
    task: str = "fraud"
    model_name: str = "fraud"
    data_root: str = ""
    pipeline_root: str = ""
    serving_root: str = ""
    # Defaults to <pipeline_root>/metadata.sqlite for local runs.
    metadata_path: str = ""
    # Defaults to the curated schema/schema.pbtxt.
    schema_path: str = ""
    # Beam pipeline options; none runs the in-process DirectRunner.
    beam_args: List[str] = dataclasses.field(default_factory=list)
    enable_cache: bool = True
    feature_gen: FeatureGenConfig = dataclasses.field(default_factory=FeatureGenConfig)
    trainer: TrainerConfig = dataclasses.field(
        default_factory=lambda: dataclasses.replace(FRAUD_TRAINER))
    evaluation: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    cost: CostConfig = dataclasses.field(default_factory=CostConfig)
    validation: ValidationConfig = dataclasses.field(default_factory=ValidationConfig)
    statistics: StatisticsConfig = dataclasses.field(default_factory=StatisticsConfig)
    credit: CreditConfig = dataclasses.field(default_factory=CreditConfig)
    features: FeatureSelectionConfig = dataclasses.field(default_factory=FeatureSelectionConfig)


def credit_defaults(config: PipelineConfig) -> PipelineConfig:
    """`config` with the credit task's defaults: its model name, pipeline name and trainer."""
    return dataclasses.replace(config, task="credit", model_name="credit",
                               pipeline_name=CREDIT_PIPELINE_NAME, trainer=CREDIT_TRAINER)


def merge(instance, overrides: Dict[str, Any], where: str):
    """Returns a copy of a config dataclass with `overrides` applied, recursively."""
    fields = {f.name: f for f in dataclasses.fields(instance)}
    changes = {}
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise UsageError(f"{where}: unknown key '{key}' (known: {', '.join(fields)})")
        current = getattr(instance, key)
        if dataclasses.is_dataclass(current):
            value = merge(current, value, f"{where}.{key}")
        elif isinstance(current, tuple):
            value = tuple(value)
        changes[key] = value
    return dataclasses.replace(instance, **changes)


def load_config(path: Optional[str], base: Optional[PipelineConfig] = None) -> PipelineConfig:
    """Reads a YAML config file over `base` (or the defaults)."""
    config = base or PipelineConfig()
    if not path:
        return config
    config = merge(config, read_yaml_mapping(path), path)
    check_prices(config.cost, path)
    check_statistics(config.statistics, path)
    try:
        selected_features(config.features.exclude)
    except ValueError as err:
        raise UsageError(f"{path}: {err}") from err
    return config


def check_prices(cost: CostConfig, where: str) -> None:
    """Raises UsageError naming the key of a price that is not a number >= 0."""
    for field in dataclasses.fields(cost):
        value = getattr(cost, field.name)
        if field.type is float and (isinstance(value, bool) or not isinstance(value, (int, float))
                                    or not value >= 0):
            raise UsageError(f"{where}: cost.{field.name} must be a number >= 0, got {value!r}")


def check_statistics(statistics: StatisticsConfig, where: str) -> None:
    """Raises UsageError when statistics.max_examples is not an integer >= 0."""
    value = statistics.max_examples
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(
            f"{where}: statistics.max_examples must be an integer >= 0, got {value!r}")


def read_yaml_mapping(path: str) -> Dict[str, Any]:
    """The top-level mapping of a YAML config file; UsageError naming the file otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as err:
        raise UsageError(f"cannot read config file {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise UsageError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise UsageError(f"config file {path}: expected a mapping at the top level")
    return data

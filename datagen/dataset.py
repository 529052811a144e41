"""Writes a simulation as a raw-transaction dataset: one CSV partition per day.

Layout (see components.transactions):

    <out>/date=YYYY-MM-DD/transactions.csv   header row, columns in RAW_COLUMNS order,
                                             rows in (timestamp, transaction_id) order
    <out>/generation.json                    parameters, seed and row counts, written last
                                             (with the drifts, when there are any)

riskpipe's FeatureGen reads every partition at once (a card's features need its
whole history) and splits out of time. The layout also matches TFX ExampleGen's
span pattern `date={YYYY}-{MM}-{DD}/transactions.csv` (span = days since
1970-01-01), for a bank that reads the days with ExampleGen.
Everything is written into a hidden sibling directory first and renamed into
place at the end, so an interrupted run leaves nothing behind.
"""
import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from typing import Callable, Dict, Iterator, Optional

import numpy as np

from common.errors import UsageError
from components.transactions import (CHANNELS, FRAUD_SCENARIOS, MERCHANT_CATEGORIES,
                                     PARTITION_FORMAT, RAW_COLUMNS)
from datagen import drift, scenarios, simulator
from datagen.population import Population
from datagen.rows import Rows

MANIFEST = "generation.json"
EXAMPLE_GEN_PATTERN = "date={YYYY}-{MM}-{DD}/transactions.csv"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Summary:
    out: str
    rows: int
    fraud_rows: int
    days: int


class _Names:
    """Text ids and labels of the population, looked up by index when writing rows."""

    def __init__(self, pop: Population):
        self.card = np.array([f"K{i:08d}" for i in range(pop.num_cards_total)], dtype=object)
        self.customer = np.array([f"C{i:07d}" for i in range(pop.num_customers)],
                                 dtype=object)[pop.card_customer]
        self.terminal = np.array([f"T{i:07d}" for i in range(pop.num_terminals)], dtype=object)
        self.category = np.array(MERCHANT_CATEGORIES, dtype=object)[pop.terminal_category]
        self.channel = np.array(CHANNELS, dtype=object)[pop.terminal_online.astype(int)]
        self.scenario = np.array(("",) + FRAUD_SCENARIOS, dtype=object)
        self.latitude = _coordinates(pop.terminal_latitude)
        self.longitude = _coordinates(pop.terminal_longitude)


def _coordinates(values: np.ndarray) -> np.ndarray:
    return np.array(["" if np.isnan(v) else f"{v:.6f}" for v in values], dtype=object)


def day_csv(day: simulator.Day, names: _Names) -> str:
    """The CSV text of a day: header row, then one line per transaction in RAW_COLUMNS order.

    No value needs quoting: ids, categories and scenarios are fixed tokens.
    """
    rows: Rows = day.rows
    prefix = day.date.strftime("%Y%m%d") + "-"
    cents = np.round(rows.amount * 100).astype(np.int64).tolist()
    columns = {
        "transaction_id": [f"{prefix}{i:09d}" for i in range(len(rows))],
        "timestamp": rows.timestamp.astype(str).tolist(),
        "card_id": names.card[rows.card].tolist(),
        "customer_id": names.customer[rows.card].tolist(),
        "terminal_id": names.terminal[rows.terminal].tolist(),
        "amount": [f"{c // 100}.{c % 100:02d}" for c in cents],
        "merchant_category": names.category[rows.terminal].tolist(),
        "channel": names.channel[rows.terminal].tolist(),
        "latitude": names.latitude[rows.terminal].tolist(),
        "longitude": names.longitude[rows.terminal].tolist(),
        "is_fraud": (rows.scenario > 0).astype(np.int64).astype(str).tolist(),
        "fraud_scenario": names.scenario[rows.scenario].tolist(),
        "label_known_at": rows.label_known_at.astype(str).tolist(),
    }
    lines = map(",".join, zip(*(columns[name] for name in RAW_COLUMNS)))
    return "\n".join([",".join(RAW_COLUMNS), *lines]) + "\n"


def check_output_dir(out: str, overwrite: bool) -> None:
    """Raises UsageError when `out` cannot receive a new dataset."""
    if not out.strip():
        raise UsageError("--out must name a directory")
    if os.path.lexists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out):
        if not overwrite:
            raise UsageError(f"--out {out} already holds data; pass --overwrite to replace it")
        if not is_dataset(out):
            raise UsageError(f"--out {out} is not a riskpipe raw-transaction directory "
                             f"(no {MANIFEST}); refusing to overwrite it")
    parent = _existing_ancestor(os.path.dirname(os.path.abspath(out)))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out} is not writable ({parent} is not a writable directory)")


def is_dataset(path: str) -> bool:
    return os.path.isfile(os.path.join(path, MANIFEST))


def _existing_ancestor(path: str) -> str:
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


@contextlib.contextmanager
def staging_dir(out: str, overwrite: bool) -> Iterator[str]:
    """A hidden sibling of `out` that replaces `out` when the block succeeds.

    Every dataset writer (this one, datagen.credit) stages through it, so an
    interrupted run of any kind leaves nothing behind.
    """
    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    created = _missing_dirs(parent)
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)
    except OSError as err:
        _remove_dirs(created)
        raise UsageError(f"--out {out} is not writable: {err.strerror}") from err
    try:
        yield staging
        _replace(staging, out, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_dirs(created)
        raise


def _replace(staging: str, out: str, overwrite: bool) -> None:
    if not os.path.isdir(out):
        os.rename(staging, out)
        return
    if os.listdir(out) and not overwrite:
        raise UsageError(f"--out {out} already holds data; pass --overwrite to replace it")
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=os.path.dirname(out))
    os.rename(out, os.path.join(old, "data"))
    os.rename(staging, out)
    shutil.rmtree(old)


def _missing_dirs(path: str):
    """The directories of `path` that do not exist yet, deepest first."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def _remove_dirs(paths) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.rmdir(path)


def manifest(config: simulator.SimulationConfig, partitions, by_scenario: Dict[str, int]) -> dict:
    rows = sum(p["rows"] for p in partitions)
    parameters = {
        "transactions": config.transactions,
        "days": config.days,
        "customers": config.num_customers,
        "fraud_rate": config.fraud_rate,
        "seed": config.seed,
        "start_date": config.start_date,
    }
    # Only with drifts: a run without any writes the manifest it always did.
    if config.drifts:
        parameters["drift"] = [dataclasses.asdict(d) for d in config.drifts]
    return {
        "format_version": FORMAT_VERSION,
        "generator": "riskpipe generate",
        "parameters": parameters,
        "layout": PARTITION_FORMAT,
        "example_gen_pattern": EXAMPLE_GEN_PATTERN,
        "columns": list(RAW_COLUMNS),
        "rows": rows,
        "fraud_rows": sum(by_scenario.values()),
        "fraud_rows_by_scenario": by_scenario,
        "partitions": partitions,
    }


def write_dataset(config: simulator.SimulationConfig, out: str, overwrite: bool = False,
                  on_day: Optional[Callable[[simulator.Day], None]] = None) -> Summary:
    """Simulates `config` and writes it to `out`; calls `on_day` after each day is written."""
    check_output_dir(out, overwrite)
    pop = simulator.build_population(config)
    with staging_dir(out, overwrite) as staging:
        try:
            totals = _write_days(config, pop, staging, on_day)
        except OSError as err:
            raise UsageError(f"cannot write --out {out}: {err.strerror or err}") from err
    return Summary(out=out, rows=totals["rows"], fraud_rows=totals["fraud_rows"],
                   days=len(totals["partitions"]))


def _write_days(config, pop, staging, on_day) -> dict:
    """Writes every day's partition, then the manifest, which it returns."""
    names = _Names(pop)
    partitions = []
    by_scenario = dict.fromkeys(drift.fraud_scenarios(config.drifts), 0)
    for day in simulator.simulate(config, pop):
        relative = PARTITION_FORMAT.format(date=day.date.isoformat())
        path = os.path.join(staging, relative)
        os.makedirs(os.path.dirname(path))
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(day_csv(day, names))
        counts = np.bincount(day.rows.scenario, minlength=len(FRAUD_SCENARIOS) + 1)
        for name in by_scenario:
            by_scenario[name] += int(counts[scenarios.SCENARIO_CODE[name]])
        partitions.append({"date": day.date.isoformat(), "path": relative,
                           "rows": len(day.rows), "fraud_rows": int(counts[1:].sum())})
        if on_day:
            on_day(day)
    totals = manifest(config, partitions, by_scenario)
    with open(os.path.join(staging, MANIFEST), "w") as f:
        json.dump(totals, f, indent=2)
        f.write("\n")
    return totals

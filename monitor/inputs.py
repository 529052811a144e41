"""What the monitor reads: the engine's decisions, and the transactions whose labels have arrived.

Decisions are the records `riskpipe score --output` wrote (JSON lines or CSV,
one file or a directory of them). Labels come from the raw transaction data
(`is_fraud` and `label_known_at` of each transaction): a label counts as known
at a date when its `label_known_at` is at or before it. Errors name the file
and the line, and nothing is silently skipped.
"""
import csv
import dataclasses
import glob
import json
import os
from typing import Dict, Iterator, List, Optional, Tuple

from common.errors import DataError
from components.feature_gen.raw_data import list_partitions, read_transactions
from components.transactions import Transaction

DAY_SECONDS = 86400
# What a decision record must hold for the monitor.
REQUIRED_FIELDS = ("transaction_id", "timestamp", "decision", "score", "model_version")
DECISION_SUFFIXES = (".jsonl", ".json", ".csv")


@dataclasses.dataclass(frozen=True)
class Decision:
    transaction_id: str
    timestamp: int
    decision: str
    score: Optional[float]          # None when the transaction got no score
    model_version: Optional[int]
    where: str                      # "file:line", for errors

    @property
    def day(self) -> int:
        return self.timestamp // DAY_SECONDS


def _decision_files(path: str) -> List[str]:
    if os.path.isdir(path):
        files = sorted(f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True)
                       if f.endswith(DECISION_SUFFIXES))
        if not files:
            raise DataError(f"{path}: no decision files ({', '.join(DECISION_SUFFIXES)})")
        return files
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such decisions file or directory")
    return [path]


def _records(path: str) -> Iterator[Tuple[int, dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        if path.endswith(".csv"):
            for line, row in enumerate(csv.DictReader(f), start=2):
                yield line, row
            return
        for line, text in enumerate(f, start=1):
            if text.strip():
                try:
                    yield line, json.loads(text)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{line}: not a JSON record: {err}") from err


def _optional_number(value, kind, where: str, field: str):
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except (TypeError, ValueError) as err:
        raise DataError(f"{where}: field '{field}' is not a number: {value!r}") from err


def read_decisions(path: str) -> List[Decision]:
    """Every decision record under `path`, in time order."""
    decisions = []
    for file in _decision_files(path):
        for line, record in _records(file):
            where = f"{file}:{line}"
            missing = [name for name in REQUIRED_FIELDS if name not in record]
            if missing:
                raise DataError(f"{where}: decision record lacks {', '.join(missing)}")
            timestamp = _optional_number(record["timestamp"], int, where, "timestamp")
            if timestamp is None:
                raise DataError(f"{where}: field 'timestamp' is empty")
            decisions.append(Decision(
                str(record["transaction_id"]), timestamp, str(record["decision"]),
                _optional_number(record["score"], float, where, "score"),
                _optional_number(record["model_version"], int, where, "model_version"), where))
    if not decisions:
        raise DataError(f"{path}: no decision records")
    return sorted(decisions, key=lambda d: (d.timestamp, d.transaction_id))


def read_labelled_transactions(data: str, decisions: List[Decision]) -> Tuple[
        List[Transaction], Dict[str, Transaction]]:
    """(every raw transaction in time order, those of the decisions by id).

    The whole history feeds the online features; on the days the decisions
    cover, each transaction must be one the engine decided on (else the two
    inputs do not belong together), and each decision must have its transaction.
    """
    days = {d.day for d in decisions}
    decided = {d.transaction_id for d in decisions}
    history, scored = [], {}
    for _, path in list_partitions(data):
        for line, txn in enumerate(read_transactions(path), start=2):
            history.append(txn)
            if txn.timestamp // DAY_SECONDS not in days:
                continue
            if txn.transaction_id not in decided:
                raise DataError(f"{path}:{line}: transaction {txn.transaction_id} has no "
                                "decision, though its day was decided on")
            scored[txn.transaction_id] = txn
    unmatched = [d for d in decisions if d.transaction_id not in scored]
    if unmatched:
        raise DataError(f"{unmatched[0].where}: decision for transaction "
                        f"{unmatched[0].transaction_id}, which {data} does not hold "
                        f"({len(unmatched)} such decisions)")
    return sorted(history, key=lambda t: (t.timestamp, t.transaction_id)), scored

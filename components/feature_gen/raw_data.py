"""Reading the raw transaction files: daily CSV partitions of the contract in transactions.py.

Every problem is a RawDataError whose one-line message names the file, and the
line and column where there is one. Nothing is skipped silently: a row either
parses into a Transaction or stops the run.
"""
import contextlib
import csv
import datetime
import math
import posixpath
import re
from typing import Dict, Iterator, List, Sequence, Tuple

from apache_beam.io.filesystems import FileSystems

from common.errors import DataError
from components.transactions import (CHANNELS, LABEL_COLUMNS, OPTIONAL_COLUMNS, PARTITION_GLOB,
                                     RAW_COLUMNS, Transaction)

_PARTITION_RE = re.compile(r"date=([^/]*)/transactions\.csv$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# What a transaction to be scored needs: labels arrive later, coordinates may be absent.
SCORING_COLUMNS = tuple(c for c in RAW_COLUMNS
                        if c not in LABEL_COLUMNS and c not in ("latitude", "longitude"))


class RawDataError(DataError, ValueError):
    """A raw file that breaks the contract; the message names file, line and column."""


def partition_pattern(input_base: str) -> str:
    return posixpath.join(input_base.rstrip("/"), PARTITION_GLOB)


def parse_date(text: str) -> datetime.date:
    """A YYYY-MM-DD date; ValueError otherwise."""
    if not _DATE_RE.match(text):
        raise ValueError(f"'{text}' is not a YYYY-MM-DD date")
    return datetime.date.fromisoformat(text)


def list_partitions(input_base: str) -> List[Tuple[datetime.date, str]]:
    """The (date, path) of every daily partition under `input_base`, by date."""
    pattern = partition_pattern(input_base)
    matches = FileSystems.match([pattern])[0].metadata_list
    if not matches:
        raise RawDataError(f"{input_base}: no raw transaction files matching {PARTITION_GLOB}")
    partitions = []
    for meta in matches:
        found = _PARTITION_RE.search(meta.path.replace("\\", "/"))
        try:
            day = parse_date(found.group(1) if found else "")
        except ValueError as err:
            raise RawDataError(f"{meta.path}: partition directory must be date=YYYY-MM-DD "
                               f"({err})") from err
        partitions.append((day, meta.path))
    return sorted(partitions)


def column_indexes(path: str, header: Sequence[str], labelled: bool = True) -> Dict[str, int]:
    """Column name -> position in the header row.

    Training data (`labelled`) needs every contract column; data to be scored
    needs only SCORING_COLUMNS, and the other contract columns it has are read.
    """
    if not header:
        raise RawDataError(f"{path}: empty file, expected a header row")
    names = [name.strip() for name in header]
    required = RAW_COLUMNS if labelled else SCORING_COLUMNS
    missing = [name for name in required if name not in names]
    if missing:
        raise RawDataError(f"{path}: missing column(s) {', '.join(missing)} in the header row")
    return {name: names.index(name) for name in RAW_COLUMNS if name in names}


def _text_lines(path: str, raw) -> Iterator[str]:
    """The lines of a binary stream as text; a leading byte-order mark is dropped."""
    for number, line in enumerate(raw, start=1):
        try:
            yield line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise RawDataError(f"{path}:{number}: not UTF-8 text ({err.reason})") from err


@contextlib.contextmanager
def _csv_rows(path: str) -> Iterator[Iterator[List[str]]]:
    """A csv.reader over one file; a malformed row is a RawDataError naming file and line."""
    with FileSystems.open(path) as raw:
        reader = csv.reader(_text_lines(path, raw))
        try:
            yield reader
        except csv.Error as err:
            raise RawDataError(f"{path}:{reader.line_num}: malformed CSV ({err})") from err


def check_header(path: str) -> None:
    """Reads the header row of one file and checks it against the contract."""
    with _csv_rows(path) as reader:
        column_indexes(path, next(reader, []))


def read_transactions(path: str, labelled: bool = True) -> Iterator[Transaction]:
    """Parses every row of one raw CSV file; unlabelled rows may lack the label columns."""
    with _csv_rows(path) as reader:
        header = next(reader, [])
        fields = _fields(column_indexes(path, header, labelled), labelled)
        for row in reader:
            if not row:
                continue  # a blank line holds no transaction
            if len(row) != len(header):
                raise RawDataError(f"{path}:{reader.line_num}: row has {len(row)} fields, "
                                   f"the header has {len(header)}")
            yield parse_row(path, reader.line_num, row, fields)


Field = Tuple[str, int, type, bool]


def _fields(columns: Dict[str, int], labelled: bool) -> List[Field]:
    """(name, position, type, may be empty) of each column read, worked out once per file."""
    may_be_empty = OPTIONAL_COLUMNS if labelled else OPTIONAL_COLUMNS | set(LABEL_COLUMNS)
    return [(name, index, RAW_COLUMNS[name], name in may_be_empty)
            for name, index in columns.items()]


def parse_row(path: str, line: int, row: Sequence[str], fields: Sequence[Field]) -> Transaction:
    """One CSV row as a Transaction; RawDataError naming file, line and column otherwise.

    An empty optional column is left at the Transaction's default.
    """
    values = {}
    for name, index, kind, may_be_empty in fields:
        text = row[index].strip()
        if not text:
            if not may_be_empty:
                raise RawDataError(f"{path}:{line}: column '{name}': empty value")
            if kind is str:
                values[name] = ""
            continue
        try:
            value = kind(text)
        except ValueError:
            raise RawDataError(f"{path}:{line}: column '{name}': cannot parse '{text}' as "
                               f"{kind.__name__}") from None
        if kind is float and not math.isfinite(value):
            raise RawDataError(f"{path}:{line}: column '{name}': '{text}' is not a finite number")
        values[name] = value
    _check_row(path, line, values)
    return Transaction(**values)


def _check_row(path: str, line: int, values: Dict) -> None:
    def fail(column: str, problem: str):
        raise RawDataError(f"{path}:{line}: column '{column}': {problem}")

    if values["amount"] < 0:
        fail("amount", f"negative amount {values['amount']}")
    if values["channel"] not in CHANNELS:
        fail("channel", f"'{values['channel']}' is not one of {', '.join(CHANNELS)}")
    if values.get("is_fraud") not in (None, 0, 1):
        fail("is_fraud", f"{values['is_fraud']} is not 0 or 1")
    if values.get("label_known_at") is not None and values["label_known_at"] < values["timestamp"]:
        fail("label_known_at", f"{values['label_known_at']} is before the transaction's "
                               f"timestamp {values['timestamp']}")
    lat, lon = values.get("latitude"), values.get("longitude")
    if (lat is None) != (lon is None):
        fail("latitude" if lat is None else "longitude", "empty while the other coordinate is set")
    if lat is not None and not -90.0 <= lat <= 90.0:
        fail("latitude", f"{lat} is outside [-90, 90]")
    if lon is not None and not -180.0 <= lon <= 180.0:
        fail("longitude", f"{lon} is outside [-180, 180]")

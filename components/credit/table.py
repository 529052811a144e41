"""Reading and checking a bank's own credit application table, and staging it for CsvExampleGen.

`riskpipe run --task credit` calls `stage_table` before the TFX pipeline: it
reads one CSV file or a directory of them, infers each column's type, checks the
label, the numbers and the dates, and writes a clean comma-separated copy (split
by application date when the table has one) that CsvExampleGen then reads. A
problem in the data is a DataError, a problem in the `credit:` section a
UsageError; the message names the file, the row (its line number: the header is
row 1) and the column, and nothing is written then.

The files are parsed with the stdlib csv module rather than pandas.read_csv:
read_csv cannot say on which line a row starts (a quoted value may span lines,
blank lines are skipped) and pads a short row with empty cells. The cells are
then analysed as text in a pandas DataFrame.
"""
import csv
import dataclasses
import datetime
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from common.errors import DataError, UsageError
from common.files import atomic_write_text
from components.credit.config import CreditConfig

MISSING_TOKENS = ("", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "?")
NUMERIC, CATEGORICAL = "numeric", "categorical"
TRAIN_DIR, EVAL_DIR, ALL_DIR = "train", "eval", "all"
STAGED_FILE = "applications.csv"
TABLE_FILE = "table.json"
DELIMITERS = (",", ";", "\t", "|")
# Part of the staging digest and of table.json: raise it when the staged data or
# table.json change for the same input, so that no older staging is reused.
STAGING_FORMAT = 1
# Share of a column's values that must parse as numbers before the others are
# taken for typos in a numeric column rather than for categories.
NUMERIC_SHARE = 0.99

_NOT_NAME_CHARS = re.compile(r"[^a-z0-9]+")
_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}(?:$|[T ])")
_INT_TEXT = r"[+-]?\d+"


def column_name(header: str, position: int) -> str:
    """The feature name of a header: TFX feature names and the staged header must be plain identifiers.

    Lower case, each run of characters outside [a-z0-9] one "_", no "_" at either
    end, "c_" before a leading digit; `column_<position>` (1-based) when nothing
    is left, as for the unnamed index column some exports start with.
    """
    name = _NOT_NAME_CHARS.sub("_", header.lower()).strip("_")
    if not name:
        return f"column_{position}"
    return "c_" + name if name[0].isdigit() else name


@dataclasses.dataclass(frozen=True)
class Column:
    """One column as read; `log1p`: a skewed non-negative numeric feature, log1p before standardising."""
    name: str
    header: str
    kind: str
    missing: int
    distinct: int
    log1p: bool


@dataclasses.dataclass(frozen=True)
class Table:
    """What the pipeline needs to know about a checked table; names are feature-style ("" when absent).

    `columns` holds every column of the header (features, label, id, date and
    dropped ones) so that `describe` can show them all; `features` are the model
    features among them, in header order.
    """
    files: Tuple[str, ...]
    rows: int
    label: str
    id: str
    date: str
    features: Tuple[Column, ...]
    dropped: Tuple[str, ...]
    positive: str
    negative: str
    positives: int
    negatives: int
    columns: Tuple[Column, ...] = ()


@dataclasses.dataclass(frozen=True)
class StagedTable:
    """A staged table: `eval_start_date` is the split boundary used ("" without a date column)."""
    table: Table
    directory: str
    eval_start_date: str
    split_rows: Dict[str, int]


# --- reading the files -------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Source:
    """One input file's bytes, read once for both the staging digest and the parse."""
    path: str
    data: bytes
    sha256: str


@dataclasses.dataclass
class ParsedFile:
    """One file's header and rows, with the line each row starts on (for messages)."""
    path: str
    header: List[str]
    rows: List[List[str]]
    lines: List[int]


@dataclasses.dataclass
class _Raw:
    """The cells of all files as stripped text, and where each row came from."""
    path: str
    files: List[str]
    headers: List[str]
    names: List[str]
    frame: pd.DataFrame
    file_of_row: np.ndarray
    line_of_row: np.ndarray

    def header_of(self, name: str) -> str:
        return self.headers[self.names.index(name)]

    def where(self, row: int, name: str) -> str:
        """'file: row N, column 'X'' for a message about one cell."""
        file = self.files[int(self.file_of_row[row])]
        return f"{file}: row {int(self.line_of_row[row])}, column '{self.header_of(name)}'"

    def columns_text(self) -> str:
        return ", ".join(self.headers)


def _source_paths(path: str) -> List[str]:
    """The file itself, or a directory's *.csv files by name (one export split in parts)."""
    if os.path.isdir(path):
        names = sorted(name for name in os.listdir(path)
                       if name.lower().endswith(".csv") and not name.startswith(".")
                       and os.path.isfile(os.path.join(path, name)))
        if not names:
            raise DataError(f"{path}: no *.csv files in the directory")
        return [os.path.join(path, name) for name in names]
    if os.path.isfile(path):
        return [path]
    raise UsageError(f"{path}: no such file or directory")


def _read_source(file: str) -> _Source:
    try:
        with open(file, "rb") as f:
            data = f.read()
    except OSError as err:
        raise DataError(f"{file}: cannot read: {err.strerror}") from err
    return _Source(file, data, hashlib.sha256(data).hexdigest())


def _read_sources(path: str) -> List[_Source]:
    return [_read_source(file) for file in _source_paths(path)]


def read_csv(path: str) -> "ParsedFile":
    """One CSV file's header and rows, read as the table check reads a table's files
    (UTF-8, the delimiter from the header line, rows numbered by their line)."""
    return parse_file(_read_source(path))


def _text(source: _Source) -> str:
    """The file as text: UTF-8 (a byte-order mark dropped), since the staged copy is UTF-8 too."""
    try:
        text = source.data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = source.data.count(b"\n", 0, err.start) + 1
        raise DataError(f"{source.path}: row {line}: not UTF-8 text (byte {err.start}); "
                        f"export the table as UTF-8") from err
    return text[1:] if text.startswith("\ufeff") else text


def _delimiter(first_line: str) -> str:
    """The candidate delimiter that splits the header line into the most fields (',' on a tie)."""
    def fields(delimiter: str) -> int:
        return len(next(csv.reader([first_line], delimiter=delimiter), []))
    return max(DELIMITERS, key=fields)


def parse_file(source: _Source) -> ParsedFile:
    """Header and rows of one file; a row with another number of fields than the header stops the run.

    Blank lines hold no application and are skipped (their lines still count).
    """
    text = _text(source)
    if not text.strip():
        raise DataError(f"{source.path}: empty file, expected a header row")
    delimiter = _delimiter(text.lstrip("\r\n").split("\n", 1)[0].rstrip("\r"))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                        skipinitialspace=True)
    parsed = ParsedFile(source.path, [], [], [])
    last_line = 0
    try:
        for fields in reader:
            start, last_line = last_line + 1, reader.line_num
            if not fields:
                continue
            if not parsed.header:
                parsed.header = [field.strip() for field in fields]
                continue
            if len(fields) != len(parsed.header):
                raise DataError(f"{source.path}: row {start} has {len(fields)} fields, the header "
                                f"has {len(parsed.header)} (delimiter {delimiter!r})")
            parsed.rows.append(fields)
            parsed.lines.append(start)
    except csv.Error as err:
        raise DataError(f"{source.path}: row {reader.line_num}: {err}") from err
    if not parsed.rows:
        raise DataError(f"{source.path}: a header but no data rows")
    return parsed


def feature_names(path: str, header: Sequence[str]) -> List[str]:
    """column_name of every header; two headers with one name would be one feature: an error."""
    names = [column_name(text, position) for position, text in enumerate(header, start=1)]
    first: Dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            j = first[name]
            raise DataError(f"{path}: the headers '{header[j]}' (column {j + 1}) and '{header[i]}' "
                            f"(column {i + 1}) both become the feature name '{name}'; rename one")
        first[name] = i
    return names


def _check_same_header(first: ParsedFile, other: ParsedFile) -> None:
    """The files of a directory are parts of one table, so their headers must agree."""
    if other.header == first.header:
        return
    missing = [h for h in first.header if h not in other.header]
    extra = [h for h in other.header if h not in first.header]
    details = [text for text in (missing and f"missing {', '.join(missing)}",
                                 extra and f"extra {', '.join(extra)}") if text]
    detail = "; ".join(details) or "the same columns in another order"
    raise DataError(f"{other.path}: its header differs from that of {first.path} ({detail}); "
                    f"all files of a directory need the same header")


def _raw_table(path: str, sources: Sequence[_Source]) -> _Raw:
    parsed = [parse_file(source) for source in sources]
    for other in parsed[1:]:
        _check_same_header(parsed[0], other)
    names = feature_names(parsed[0].path, parsed[0].header)
    frames = [pd.DataFrame(p.rows, columns=names, dtype=object) for p in parsed]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame = pd.DataFrame({name: frame[name].str.strip() for name in names})
    file_of_row = np.concatenate([np.full(len(p.rows), i) for i, p in enumerate(parsed)])
    line_of_row = np.concatenate([np.asarray(p.lines) for p in parsed])
    return _Raw(path, [p.path for p in parsed], list(parsed[0].header), names, frame,
                file_of_row, line_of_row)


# --- the credit: section -----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Roles:
    """The config's column names resolved to feature names."""
    label: str
    id: str
    date: str
    drop: FrozenSet[str]
    categorical: FrozenSet[str]
    numeric: FrozenSet[str]

    def special(self) -> Dict[str, str]:
        """Feature name -> config key of the label, id and date columns."""
        return {name: key for key, name in (("label", self.label), ("id", self.id),
                                            ("date", self.date)) if name}


def _names_of(value) -> Tuple[str, ...]:
    """A config list; a lone string is one name, not its characters."""
    return (value,) if isinstance(value, str) else tuple(value)


def _find(name: str, raw: _Raw) -> Optional[str]:
    """The feature name of a config name given as the header or as the feature name."""
    wanted = name.strip()
    for header, feature in zip(raw.headers, raw.names):
        if wanted in (header, feature):
            return feature
    lenient = column_name(wanted, 0)
    return lenient if lenient in raw.names else None


def _required_column(key: str, name: str, raw: _Raw) -> str:
    """A label, id or date column the config names: one the data lacks is a data problem."""
    found = _find(name, raw)
    if found is None:
        raise DataError(f"{raw.path}: no column '{name}' for credit.{key} "
                        f"(columns: {raw.columns_text()})")
    return found


def _listed_columns(key: str, names: Sequence[str], raw: _Raw) -> FrozenSet[str]:
    found = set()
    for name in _names_of(names):
        feature = _find(name, raw)
        if feature is None:
            raise UsageError(f"credit.{key}: no column '{name}' (columns: {raw.columns_text()})")
        found.add(feature)
    return frozenset(found)


def _roles(config: CreditConfig, raw: _Raw) -> _Roles:
    if not config.label.strip():
        raise UsageError(f"credit.label: not set (columns: {raw.columns_text()})")
    label = _required_column("label", config.label, raw)
    id_ = _required_column("id", config.id, raw) if config.id.strip() else ""
    date = _required_column("date", config.date, raw) if config.date.strip() else ""
    for key, name, other_key, other in (("id", id_, "label", label), ("date", date, "label", label),
                                        ("date", date, "id", id_)):
        if name and name == other:
            raise UsageError(f"credit.{key} and credit.{other_key} name the same column "
                             f"'{raw.header_of(name)}'")
    roles = _Roles(label, id_, date, _listed_columns("drop", config.drop, raw),
                   _listed_columns("categorical", config.categorical, raw),
                   _listed_columns("numeric", config.numeric, raw))
    _check_lists(roles, raw)
    return roles


def _check_lists(roles: _Roles, raw: _Raw) -> None:
    """drop/categorical/numeric are about features: the label, id or date there is a config mistake."""
    special = roles.special()
    for key, names in (("drop", roles.drop), ("categorical", roles.categorical),
                       ("numeric", roles.numeric)):
        for name in sorted(names & special.keys()):
            raise UsageError(f"credit.{key}: '{raw.header_of(name)}' is the credit.{special[name]} "
                             f"column, not a feature")
    both = sorted(roles.categorical & roles.numeric)
    if both:
        raise UsageError(f"credit.categorical and credit.numeric both list "
                         f"{', '.join(raw.header_of(name) for name in both)}")


def _parse_date(text: str) -> datetime.date:
    """A YYYY-MM-DD date or the date of an ISO date-time; ValueError otherwise."""
    if not _DATE_START.match(text):
        raise ValueError(f"'{text}' is not a date")
    if len(text) == 10:
        return datetime.date.fromisoformat(text)
    stamp = text[:-1] + "+00:00" if text[-1] in "Zz" else text
    return datetime.datetime.fromisoformat(stamp).date()


def _check_config(config: CreditConfig) -> str:
    """The credit: values that need no data; returns eval_start_date as YYYY-MM-DD ("" when unset)."""
    fraction = config.eval_fraction
    if not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise UsageError(f"credit.eval_fraction: must be between 0 and 1 (got {fraction!r})")
    start = config.eval_start_date.strip()
    if not start:
        return ""
    if not config.date.strip():
        raise UsageError("credit.eval_start_date: set, but credit.date is not (the out-of-time "
                         "split needs an application date column)")
    try:
        return _parse_date(start).isoformat()
    except ValueError as err:
        raise UsageError(f"credit.eval_start_date: '{start}' is not a YYYY-MM-DD date") from err


# --- checks and inference ----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Label:
    positive: str
    negative: str
    is_positive: np.ndarray


def _first(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def _counts_text(counts: pd.Series) -> str:
    """At most 10 values with their counts, for a message."""
    shown = ", ".join(f"'{value}' ({count})" for value, count in counts.head(10).items())
    return shown + (f" and {len(counts) - 10} more" if len(counts) > 10 else "")


def _label(raw: _Raw, name: str, positive_text: str) -> _Label:
    """The binary label: no empty cell, two values, the positive one among them."""
    values = raw.frame[name]
    header = raw.header_of(name)
    missing = values.isin(MISSING_TOKENS)
    if missing.any():
        row = _first(missing)
        cell = values.iloc[row]
        raise DataError(f"{raw.where(row, name)}: the label is "
                        + (f"missing ('{cell}')" if cell else "empty"))
    counts = values.value_counts()
    if len(counts) > 2:
        raise DataError(f"{raw.path}: the label column '{header}' has {len(counts)} values, a "
                        f"binary label has 2: {_counts_text(counts)}")
    positive = positive_text.strip()
    if not positive:
        raise UsageError(f"credit.positive: not set; the label column '{header}' has the values "
                         f"{_counts_text(counts)}")
    if len(counts) == 1:
        only = counts.index[0]
        which = (f"the positive value '{positive}' (no negatives)" if only == positive
                 else f"'{only}', none the positive value '{positive}'")
        raise DataError(f"{raw.path}: the label column '{header}' has one class only: all "
                        f"{len(values)} rows are {which}; a model needs both")
    if positive not in counts.index:
        raise DataError(f"{raw.path}: credit.positive '{positive}' is not a value of the label "
                        f"column '{header}' (values: {_counts_text(counts)})")
    negative = next(value for value in counts.index if value != positive)
    return _Label(positive, negative, (values == positive).to_numpy())


def _numbers(values: pd.Series) -> pd.Series:
    """The cells as floats; NaN where missing or not a finite number (inf cannot be standardised)."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    return numbers.where(np.isfinite(numbers))


def _not_a_number(raw: _Raw, name: str, row: int, declared: bool, share: float) -> DataError:
    value = raw.frame[name].iloc[row]
    if declared:
        hint = "credit.numeric lists the column: fix the value or remove it from credit.numeric"
    else:
        hint = (f"{share:.1%} of the column's values are numbers: fix the value or list the "
                f"column in credit.categorical")
    return DataError(f"{raw.where(row, name)}: '{value}' is not a number ({hint})")


def _kind(raw: _Raw, name: str, roles: _Roles, feature: bool, missing: pd.Series,
          numbers: pd.Series) -> str:
    """numeric when declared or when all values parse; a few non-numbers among numbers are typos."""
    present = ~missing
    if name in roles.categorical or not present.any():
        return CATEGORICAL
    unparsed = present & numbers.isna()
    if not unparsed.any():
        return NUMERIC
    share = 1.0 - unparsed.sum() / present.sum()
    declared = name in roles.numeric
    if feature and (declared or share >= NUMERIC_SHARE):
        raise _not_a_number(raw, name, _first(unparsed), declared, share)
    return CATEGORICAL


def _column(raw: _Raw, name: str, roles: _Roles, feature: bool) -> Column:
    """The column's statistics; only a feature's type is checked and may take log1p."""
    values = raw.frame[name]
    missing = values.isin(MISSING_TOKENS)
    numbers = _numbers(values).where(~missing)
    kind = _kind(raw, name, roles, feature, missing, numbers)
    present = numbers[~missing]
    log1p = (feature and kind == NUMERIC and len(present) > 2 and present.min() >= 0
             and bool(present.skew() > 1.0))
    return Column(name=name, header=raw.header_of(name), kind=kind, missing=int(missing.sum()),
                  distinct=int(values[~missing].nunique()), log1p=bool(log1p))


def _dates(raw: _Raw, name: str) -> pd.Series:
    """Every row's date as YYYY-MM-DD; a missing or unreadable one stops the run (the split needs it)."""
    values = raw.frame[name]
    iso: Dict[str, str] = {}
    for value in values.unique():
        try:
            iso[value] = _parse_date(value).isoformat()
        except ValueError:
            pass
    bad = ~values.isin(iso.keys())
    if bad.any():
        row = _first(bad)
        cell = values.iloc[row]
        if cell in MISSING_TOKENS:
            problem = f"no date ('{cell}')" if cell else "no date (empty)"
        else:
            problem = f"'{cell}' is not a date (YYYY-MM-DD or an ISO date-time)"
        raise DataError(f"{raw.where(row, name)}: {problem}")
    return values.map(iso)


@dataclasses.dataclass(frozen=True)
class _Loaded:
    """A checked table and the row-wise values staging needs."""
    raw: _Raw
    table: Table
    label: _Label
    dates: Optional[pd.Series]


def _load(path: str, config: CreditConfig, sources: Sequence[_Source]) -> _Loaded:
    raw = _raw_table(path, sources)
    roles = _roles(config, raw)
    label = _label(raw, roles.label, config.positive)
    special = roles.special()
    columns = tuple(_column(raw, name, roles, feature=name not in special and name not in roles.drop)
                    for name in raw.names)
    dates = _dates(raw, roles.date) if roles.date else None
    empty = {c.name for c in columns if c.distinct == 0 and c.name not in special}
    dropped = tuple(name for name in raw.names if name in roles.drop or name in empty)
    features = tuple(c for c in columns if c.name not in special and c.name not in dropped)
    if not features:
        raise DataError(f"{path}: no feature columns left besides the label, id and date and the "
                        f"dropped ones (columns: {raw.columns_text()})")
    positives = int(label.is_positive.sum())
    table = Table(files=tuple(raw.files), rows=len(raw.frame), label=roles.label, id=roles.id,
                  date=roles.date, features=features, dropped=dropped, positive=label.positive,
                  negative=label.negative, positives=positives,
                  negatives=len(raw.frame) - positives, columns=columns)
    return _Loaded(raw, table, label, dates)


def read_table(path: str, config: CreditConfig) -> Table:
    """Reads and checks the table at `path` (a CSV file or a directory of them); writes nothing."""
    _check_config(config)
    return _load(path, config, _read_sources(path)).table


# --- what the Transform and the user see -------------------------------------

def transform_config(table: Table) -> dict:
    """The Transform's and Trainer's custom_config.

    "numeric" lists every numeric feature, "log1p" those of them that take log1p
    before standardising; JSON-able, since TFX passes custom_config as JSON.
    """
    return {
        "label": table.label,
        "numeric": [c.name for c in table.features if c.kind == NUMERIC],
        "log1p": [c.name for c in table.features if c.log1p],
        "categorical": [c.name for c in table.features if c.kind == CATEGORICAL],
    }


def _role(table: Table, column: Column) -> str:
    roles = {table.label: "label", table.id: "id", table.date: "date"}
    if column.name in roles:
        return roles[column.name]
    if column.name in table.dropped:
        return "dropped (no values)" if column.distinct == 0 else "dropped"
    return "feature"


def _describe_row(table: Table, column: Column) -> List[str]:
    role = _role(table, column)
    if role == "label":
        kind, transform = "binary", f"1 = '{table.positive}', 0 = '{table.negative}'"
    elif role == "date":
        kind, transform = "date", "-"
    else:
        kind = "empty" if column.distinct == 0 else column.kind
        transform = "-"
    if role == "feature":
        transform = ("vocabulary" if column.kind == CATEGORICAL
                     else "log1p+standardise" if column.log1p else "standardise")
    share = column.missing / table.rows if table.rows else 0.0
    return [column.name, column.header if column.header != column.name else "", kind,
            f"{column.missing} ({share:.1%})", str(column.distinct), transform, role]


def _text_table(rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows]


def describe(table: Table) -> str:
    """What riskpipe made of the table, for the user to check before training: a line per column."""
    head = ["column", "header", "type", "missing", "distinct", "transform", "role"]
    lines = _text_table([head] + [_describe_row(table, c) for c in table.columns or table.features])
    rate = table.positives / table.rows if table.rows else 0.0
    numeric = sum(c.kind == NUMERIC for c in table.features)
    lines += ["",
              f"rows: {table.rows} from {len(table.files)} file(s); features: "
              f"{len(table.features)} ({numeric} numeric, {len(table.features) - numeric} "
              f"categorical)",
              f"default rate: {rate:.2%} ({table.positives} '{table.positive}', "
              f"{table.negatives} '{table.negative}')"]
    return "\n".join(lines) + "\n"


# --- staging -----------------------------------------------------------------

def _canonical(name: str) -> str:
    """A config name as the digest sees it: the header and the feature spelling digest alike."""
    name = name.strip()
    sanitised = column_name(name, 0)
    return "" if not name else (name if sanitised == "column_0" else sanitised)


def _staging_fields(config: CreditConfig, eval_start: str) -> dict:
    """The config fields that change the staged data (reason_codes and the scale do not)."""
    fields = {
        "label": _canonical(config.label), "positive": config.positive.strip(),
        "id": _canonical(config.id), "date": _canonical(config.date),
        "drop": sorted({_canonical(n) for n in _names_of(config.drop)}),
        "categorical": sorted({_canonical(n) for n in _names_of(config.categorical)}),
        "numeric": sorted({_canonical(n) for n in _names_of(config.numeric)}),
        "eval_start_date": eval_start,
    }
    if config.date.strip() and not eval_start:
        fields["eval_fraction"] = float(config.eval_fraction)
    return fields


def _digest(sources: Sequence[_Source], config: CreditConfig, eval_start: str) -> str:
    """16 hex of a sha256 of the files' bytes and the staging fields: same input, same directory."""
    digest = hashlib.sha256(f"riskpipe credit table, format {STAGING_FORMAT}\n".encode())
    for source in sources:
        digest.update(f"{len(source.data)}:{source.sha256}\n".encode())
    digest.update(json.dumps(_staging_fields(config, eval_start), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _boundary(dates: pd.Series, eval_start: str, fraction: float) -> str:
    """eval_start_date, or the date at the (1 - eval_fraction) quantile of the rows' dates."""
    if eval_start:
        return eval_start
    counts = dates.value_counts().sort_index()
    index = min(len(dates) - 1, int(math.floor((1.0 - fraction) * len(dates) + 1e-9)))
    return str(counts.index[int(np.searchsorted(counts.cumsum().to_numpy(), index + 1))])


def _check_split(path: str, dates: pd.Series, boundary: str, is_eval: np.ndarray) -> None:
    """Both sides of an out-of-time split need applications."""
    span = f"dates {dates.min()} to {dates.max()}"
    if is_eval.all():
        raise DataError(f"{path}: no applications dated before the eval boundary {boundary} "
                        f"({span}); the train split would be empty: set credit.eval_start_date "
                        f"later")
    if not is_eval.any():
        raise DataError(f"{path}: no applications dated on or after the eval boundary {boundary} "
                        f"({span}); the eval split would be empty: set credit.eval_start_date "
                        f"earlier")


def _blank_missing(values: pd.Series) -> pd.Series:
    return values.where(~values.isin(MISSING_TOKENS), "")


def _uniform_numbers(values: pd.Series) -> pd.Series:
    """Integers written as floats ("3" -> "3.0") in a column that has a non-integer.

    CsvExampleGen infers a column's type per split: without this a split whose
    values happen to be whole numbers would be INT and the other FLOAT.
    """
    integral = values.str.fullmatch(_INT_TEXT)
    if integral[values != ""].all():
        return values
    return values.where(~integral, values + ".0")


def _staged_frame(loaded: _Loaded) -> pd.DataFrame:
    """The staged columns: id, date, label (1/0), features; missing cells empty."""
    table, frame = loaded.table, loaded.raw.frame
    out: Dict[str, object] = {}
    if table.id:
        out[table.id] = _blank_missing(frame[table.id])
    if table.date:
        out[table.date] = loaded.dates
    out[table.label] = np.where(loaded.label.is_positive, "1", "0")
    for column in table.features:
        values = _blank_missing(frame[column.name])
        out[column.name] = _uniform_numbers(values) if column.kind == NUMERIC else values
    return pd.DataFrame(out)


def _splits(loaded: _Loaded, boundary: str) -> Dict[str, pd.DataFrame]:
    """Subdirectory -> rows: train/eval by date, or all of them for CsvExampleGen's hash split."""
    staged = _staged_frame(loaded)
    if loaded.dates is None:
        return {ALL_DIR: staged}
    is_eval = (loaded.dates >= boundary).to_numpy()
    _check_split(loaded.raw.path, loaded.dates, boundary, is_eval)
    return {TRAIN_DIR: staged[~is_eval], EVAL_DIR: staged[is_eval]}


def _table_json(staged: StagedTable, digest: str, sources: Sequence[_Source]) -> dict:
    return {
        "format": STAGING_FORMAT,
        "digest": digest,
        "table": dataclasses.asdict(staged.table),
        "eval_start_date": staged.eval_start_date,
        "split_rows": staged.split_rows,
        "sources": [{"path": os.path.abspath(s.path), "bytes": len(s.data), "sha256": s.sha256}
                    for s in sources],
    }


def _write(directory: str, splits: Dict[str, pd.DataFrame], record: dict) -> None:
    """All files into a fresh temporary directory, table.json last, then renamed into place."""
    root = os.path.dirname(os.path.abspath(directory))
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.", suffix=".tmp", dir=root)
    try:
        os.chmod(tmp, 0o755)
        for subdirectory, rows in splits.items():
            os.makedirs(os.path.join(tmp, subdirectory))
            rows.to_csv(os.path.join(tmp, subdirectory, STAGED_FILE), index=False,
                        lineterminator="\n")
        atomic_write_text(os.path.join(tmp, TABLE_FILE), json.dumps(record, indent=2) + "\n")
        _move_into_place(tmp, directory)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def _move_into_place(tmp: str, directory: str) -> None:
    """Renames `tmp` to `directory`; a complete one staged meanwhile by another run is kept."""
    try:
        os.rename(tmp, directory)
    except OSError:
        if os.path.exists(os.path.join(directory, TABLE_FILE)):
            return
        shutil.rmtree(directory, ignore_errors=True)
        os.rename(tmp, directory)


def stage_table(path: str, config: CreditConfig, root: str) -> StagedTable:
    """Checks the table and writes its clean copy to root/<digest>/, or reuses a complete one.

    Reusing the same directory for the same files and config keeps the input of
    CsvExampleGen, and so TFX's cache, unchanged between runs.
    """
    eval_start = _check_config(config)
    sources = _read_sources(path)
    digest = _digest(sources, config, eval_start)
    directory = os.path.join(root, digest)
    if os.path.exists(os.path.join(directory, TABLE_FILE)):
        return read_staged(directory)
    loaded = _load(path, config, sources)
    boundary = _boundary(loaded.dates, eval_start, config.eval_fraction) if loaded.table.date else ""
    splits = _splits(loaded, boundary)
    split_rows = {name: len(rows) for name, rows in splits.items()} if boundary else {}
    staged = StagedTable(loaded.table, directory, boundary, split_rows)
    _write(directory, splits, _table_json(staged, digest, sources))
    return staged


def _table_from_json(fields: dict) -> Table:
    def columns(key: str) -> Tuple[Column, ...]:
        return tuple(Column(**column) for column in fields.get(key, ()))
    values = dict(fields, files=tuple(fields["files"]), dropped=tuple(fields["dropped"]),
                  features=columns("features"), columns=columns("columns"))
    return Table(**values)


def read_staged(directory: str) -> StagedTable:
    """The StagedTable that stage_table wrote to `directory` (from its table.json)."""
    path = os.path.join(directory, TABLE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError as err:
        raise DataError(f"{directory}: no {TABLE_FILE}; not a table staged by riskpipe") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    if record.get("format") != STAGING_FORMAT:
        raise DataError(f"{path}: staging format {record.get('format')!r}, this riskpipe reads "
                        f"{STAGING_FORMAT}; remove {directory} to stage the table again")
    try:
        table = _table_from_json(record["table"])
        return StagedTable(table, directory, record["eval_start_date"],
                           dict(record["split_rows"]))
    except (KeyError, TypeError) as err:
        raise DataError(f"{path}: not a staged table description ({err!r})") from err

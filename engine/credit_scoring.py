"""Credit scoring: applications CSV -> the served model's `explain` -> credit policy -> records.

    applications = read_applications("applications.csv", id_column="application_id")
    with RiskEngineClient(ClientOptions(addresses=("host:8500",), model_name="credit")) as client:
        records = score_applications(client, applications, load_credit_policy(path))

The file is the bank's own table (any delimiter among , ; tab |, as for
training, components/credit/table.py), possibly with the label, id and date
columns, which the model does not take: it gets exactly the inputs its
`explain` signature names, learnt from GetModelMetadata, each column named as
`table.column_name` makes it and typed by the signature (DT_FLOAT: a number,
NaN when missing; DT_STRING: the text, "" when missing). A cell in
`table.MISSING_TOKENS` is missing. Every problem in the file stops the run
before any request is sent, naming the file, the row (its line number: the
header is row 1) and the column: a numeric model column holding a non-number,
a model column absent from the file (with the columns the model needs), an
empty file. A numeric column a policy rule compares is checked the same way.

Rows go to the model in batches (BATCH_SIZE per Predict call). A batch that
gets no answer still gets decisions, by the rules and the policy's
`on_model_error`, and its records carry the error; a fleet that stays
unavailable stops the run with nothing written, as fraud scoring does.

A record is a flat dict (CREDIT_RECORD_FIELDS), one JSON line or CSV row:
id (the id column's value, else the row number), decision, score points,
probability of default, model version and, for REVIEW and DECLINE, the reasons:
the model's reason codes with a positive contribution to the log-odds of
default, strongest first, rounded to REASON_DIGITS decimals.
"""
import dataclasses
import math
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from common.errors import DataError
from common.serving_contract import (DEFAULT_PROBABILITY_KEY, EXPLAIN, REASON_CODES_KEY,
                                     REASON_CONTRIBUTIONS_KEY, SCORE_POINTS_KEY)
from components.credit import table
from components.credit.table import MISSING_TOKENS, column_name
from engine.client import RiskEngineClient, ScoringError
from engine.credit_policy import APPROVE, ACTIONS, CreditPolicy, parse_number

BATCH_SIZE = 256
# Applications in a row failing on an unreachable fleet before scoring gives up.
MAX_CONSECUTIVE_UNAVAILABLE = 20
REASON_DIGITS = 4
UNSCORED = "unscored"  # the version key of records that got no score
DT_FLOAT, DT_STRING = 1, 7  # tensorflow.DataType
REQUIRED_OUTPUTS = (DEFAULT_PROBABILITY_KEY, SCORE_POINTS_KEY, REASON_CODES_KEY,
                    REASON_CONTRIBUTIONS_KEY)

# Record fields in output order (the CSV header).
CREDIT_RECORD_FIELDS = (
    "id", "row", "decision", "score_points", "default_probability", "model_version",
    "version_label", "rules_fired", "reasons", "explanation", "error", "server",
)


class ModelContractError(ValueError):
    """The served model is not a credit model with the `explain` contract."""


# --- the applications file -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Application:
    # The line the application starts on (the header is row 1), as in messages.
    row: int
    # The id column's value, else the row number.
    id: Union[str, int]
    # Column name -> stripped cell text; None when missing (a MISSING_TOKENS cell).
    cells: Mapping[str, Optional[str]]


@dataclasses.dataclass(frozen=True)
class Applications:
    path: str
    headers: Tuple[str, ...]
    # column_name of each header, in header order.
    names: Tuple[str, ...]
    rows: Tuple[Application, ...]
    id_column: str = ""

    def header_of(self, name: str) -> str:
        return self.headers[self.names.index(name)]

    def where(self, application: Application, name: str) -> str:
        """'file: row N, column 'X'' for a message about one cell."""
        return f"{self.path}: row {application.row}, column '{self.header_of(name)}'"


def _find_column(wanted: str, headers: Sequence[str], names: Sequence[str]) -> Optional[str]:
    """The column name of a header given as the header or as the column name."""
    wanted = wanted.strip()
    for header, name in zip(headers, names):
        if wanted in (header, name):
            return name
    lenient = column_name(wanted, 0)
    return lenient if lenient in names else None


def read_applications(path: str, id_column: Optional[str] = None) -> Applications:
    """Every application of a CSV file; DataError names the file, row and column of a problem.

    `id_column` (a header or its column name) gives each application's id; it
    must be in the file, with a distinct value in every row. Without it the id
    is the row number.
    """
    parsed = table.read_csv(path)
    headers = tuple(parsed.header)
    names = tuple(table.feature_names(path, headers))
    id_name = ""
    if id_column:
        id_name = _find_column(id_column, headers, names) or ""
        if not id_name:
            raise DataError(f"{path}: no id column '{id_column}' (columns: "
                            f"{', '.join(headers)})")
    applications = []
    seen_ids: Dict[str, int] = {}
    for row, fields in zip(parsed.lines, parsed.rows):
        cells = {}
        for name, field in zip(names, fields):
            value = field.strip()
            cells[name] = None if value in MISSING_TOKENS else value
        app_id: Union[str, int] = row
        if id_name:
            app_id = cells[id_name] or ""
            where = f"{path}: row {row}, column '{headers[names.index(id_name)]}'"
            if not app_id:
                raise DataError(f"{where}: the application id is missing")
            if app_id in seen_ids:
                raise DataError(f"{where}: id '{app_id}' appears more than once (also in row "
                                f"{seen_ids[app_id]})")
            seen_ids[app_id] = row
        applications.append(Application(row=row, id=app_id, cells=cells))
    return Applications(path=path, headers=headers, names=names, rows=tuple(applications),
                        id_column=id_name)


# --- the model's contract ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """The `explain` inputs of one served version: column names by kind, in name order."""

    model_name: str
    version: int
    numeric: Tuple[str, ...]
    categorical: Tuple[str, ...]

    @property
    def columns(self) -> Tuple[str, ...]:
        return tuple(sorted(self.numeric + self.categorical))

    def describe(self) -> str:
        return f"model '{self.model_name}' version {self.version}"


def model_inputs(client: RiskEngineClient, label: Optional[str] = None) -> ModelInputs:
    """The columns and kinds of the served model's `explain` signature (GetModelMetadata).

    ScoringError when the metadata cannot be had; ModelContractError when the
    model has no `explain` signature of the credit contract.
    """
    version, signatures = client.signature_defs(label=label)
    name = client.options.model_name
    where = f"model '{name}' version {version}"
    if EXPLAIN not in signatures:
        raise ModelContractError(f"{where} has no '{EXPLAIN}' signature (it has "
                                 f"{', '.join(sorted(signatures)) or 'none'}); is it a credit "
                                 f"model?")
    signature = signatures[EXPLAIN]
    missing = [key for key in REQUIRED_OUTPUTS if key not in signature.outputs]
    if missing:
        raise ModelContractError(f"{where}: the '{EXPLAIN}' signature lacks the output(s) "
                                 f"{', '.join(missing)} (it has "
                                 f"{', '.join(sorted(signature.outputs))})")
    numeric, categorical = [], []
    for column, info in sorted(signature.inputs.items()):
        if info.dtype == DT_FLOAT:
            numeric.append(column)
        elif info.dtype == DT_STRING:
            categorical.append(column)
        else:
            raise ModelContractError(f"{where}: '{EXPLAIN}' input '{column}' has dtype "
                                     f"{info.dtype}; credit scoring sends DT_FLOAT (numeric "
                                     f"columns) or DT_STRING (categorical ones)")
    if not numeric and not categorical:
        raise ModelContractError(f"{where}: the '{EXPLAIN}' signature has no inputs")
    return ModelInputs(name, version, tuple(numeric), tuple(categorical))


def check_applications(applications: Applications, inputs: ModelInputs,
                       policy: Optional[CreditPolicy] = None,
                       rows: Optional[Sequence[Application]] = None) -> None:
    """DataError for a model column absent from the file or a non-number in a numeric column.

    The numeric columns are the model's and those the policy's rules compare
    (the latter only when the file has them: a rule on an absent column does
    not fire).
    """
    path = applications.path
    absent = [column for column in inputs.columns if column not in applications.names]
    if absent:
        raise DataError(f"{path}: no column {', '.join(absent)}, which {inputs.describe()} "
                        f"takes; it needs the columns {', '.join(inputs.columns)} (the file "
                        f"has {', '.join(applications.headers)})")
    numeric = {column: f"{inputs.describe()} takes '{column}' as a number"
               for column in inputs.numeric}
    if policy is not None:
        for rule in policy.rules:
            if rule.numeric and rule.column in applications.names:
                numeric.setdefault(rule.column, f"policy rule {rule.name} compares it as a "
                                                f"number")
    for application in applications.rows if rows is None else rows:
        for column, why in numeric.items():
            text = application.cells[column]
            if text is not None and parse_number(text) is None:
                raise DataError(f"{applications.where(application, column)}: '{text}' is not "
                                f"a number ({why}; a missing value is an empty cell or one of "
                                f"{', '.join(t for t in MISSING_TOKENS if t)})")


def input_tensors(batch: Sequence[Application], inputs: ModelInputs) -> Dict[str, Any]:
    """One TensorProto per `explain` input, shape [batch]: float32 (NaN = missing) or string."""
    from tensorflow.core.framework import (  # pylint: disable=import-outside-toplevel
        tensor_pb2, tensor_shape_pb2)

    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(batch))])
    tensors = {}
    for column in inputs.numeric:
        values = [application.cells[column] for application in batch]
        tensors[column] = tensor_pb2.TensorProto(
            dtype=DT_FLOAT, tensor_shape=shape,
            float_val=[float("nan") if v is None else parse_number(v) for v in values])
    for column in inputs.categorical:
        tensors[column] = tensor_pb2.TensorProto(
            dtype=DT_STRING, tensor_shape=shape,
            string_val=[(application.cells[column] or "").encode("utf-8")
                        for application in batch])
    return tensors


# --- scoring -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Scores:
    """One application's share of a batch answer; all None when the batch failed."""

    points: Optional[float] = None
    probability: Optional[float] = None
    reasons: Tuple[Tuple[str, float], ...] = ()
    version: Optional[int] = None
    server: Optional[str] = None
    error: str = ""


def _rounded_reasons(codes, contributions) -> Tuple[Tuple[str, float], ...]:
    """The adverse reasons: codes whose contribution, rounded, is positive, in the model's
    order (strongest push toward default first)."""
    reasons = []
    for code, contribution in zip(codes, contributions):
        value = round(float(contribution), REASON_DIGITS)
        name = code.decode("utf-8") if isinstance(code, bytes) else str(code)
        if name and value > 0:
            reasons.append((name, value))
    return tuple(reasons)


def _batch_scores(outputs: Mapping[str, Any], size: int, version: int,
                  server: str) -> List[_Scores]:
    for key in REQUIRED_OUTPUTS:
        if key not in outputs:
            raise ModelContractError(f"the '{EXPLAIN}' response lacks the output '{key}' (it "
                                     f"has {', '.join(sorted(outputs))})")
    points = outputs[SCORE_POINTS_KEY].reshape(-1)
    probability = outputs[DEFAULT_PROBABILITY_KEY].reshape(-1)
    codes, contributions = outputs[REASON_CODES_KEY], outputs[REASON_CONTRIBUTIONS_KEY]
    if (len(points) != size or len(probability) != size or codes.shape[:1] != (size,)
            or contributions.shape != codes.shape):
        raise ModelContractError(
            f"the '{EXPLAIN}' response does not hold one answer per application: {size} sent, "
            f"shapes {SCORE_POINTS_KEY} {list(points.shape)}, {REASON_CODES_KEY} "
            f"{list(codes.shape)}, {REASON_CONTRIBUTIONS_KEY} {list(contributions.shape)}")
    codes = codes.reshape(size, -1)
    contributions = contributions.reshape(size, -1)
    scores = []
    for i in range(size):
        if not math.isfinite(points[i]):
            scores.append(_Scores(version=version, server=server,
                                  error=f"INVALID_OUTPUT: the model returned {points[i]} points"))
            continue
        scores.append(_Scores(points=float(points[i]), probability=float(probability[i]),
                              reasons=_rounded_reasons(codes[i], contributions[i]),
                              version=version, server=server))
    return scores


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _significant(value: Optional[float], digits: int = 6) -> Optional[float]:
    return None if value is None else float(f"{value:.{digits}g}")


def decision_record(application: Application, policy: CreditPolicy, scores: _Scores,
                    label: Optional[str]) -> Dict[str, Any]:
    """The record of one application from its model answer (or error) and the policy."""
    decision = policy.decide(application.cells, scores.points, scores.probability,
                             scores.version, model_error=scores.error)
    adverse = decision.action != APPROVE and decision.score_points is not None
    return {
        "id": application.id,
        "row": application.row,
        "decision": decision.action,
        "score_points": (None if decision.score_points is None
                         else round(decision.score_points, 4)),
        "default_probability": _significant(decision.default_probability),
        "model_version": decision.model_version,
        "version_label": label,
        "rules_fired": list(decision.rules_fired),
        "reasons": [{"code": code, "contribution": value}
                    for code, value in scores.reasons] if adverse else [],
        "explanation": list(decision.explanation),
        "error": scores.error,
        "server": scores.server,
    }


def score_applications(client: RiskEngineClient, applications: Applications,
                       policy: CreditPolicy, router=None,
                       batch_size: int = BATCH_SIZE) -> List[Dict[str, Any]]:
    """The decision records of every application, in file order.

    `router` (engine.routing.Router) picks each application's version label by
    its id, as fraud routes cards; without it no label is sent. The whole file
    is checked against each label's model before any application is scored:
    DataError for the file, ModelContractError or ScoringError for the model.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    by_label: Dict[Optional[str], List[Application]] = {}
    for application in applications.rows:
        label = router.label_for(str(application.id)) if router is not None else None
        by_label.setdefault(label, []).append(application)
    inputs = {}
    for label, group in by_label.items():
        inputs[label] = model_inputs(client, label)
        check_applications(applications, inputs[label], policy, rows=group)
    records: Dict[int, Dict[str, Any]] = {}
    unavailable_run = 0
    for label, group in by_label.items():
        for batch in _batches(group, batch_size):
            try:
                result = client.predict_outputs(input_tensors(batch, inputs[label]), EXPLAIN,
                                                label=label)
            except ScoringError as err:
                scores = [_Scores(error=f"{err.code}: {err}")] * len(batch)
                unavailable_run = unavailable_run + len(batch) if err.code == "UNAVAILABLE" \
                    else 0
                if unavailable_run >= MAX_CONSECUTIVE_UNAVAILABLE:
                    raise DataError(f"the servers were unavailable for {unavailable_run} "
                                    f"applications in a row (last: {err.code}: {err}); stopped "
                                    f"after {len(records) + len(batch)} of "
                                    f"{len(applications.rows)}, nothing written") from err
            else:
                unavailable_run = 0
                scores = _batch_scores(result.outputs, len(batch), result.model_version,
                                       result.address)
            for application, score in zip(batch, scores):
                records[application.row] = decision_record(application, policy, score, label)
    return [records[application.row] for application in applications.rows]


def summarize(records: Sequence[Mapping[str, Any]]) -> Dict[str, Dict[str, int]]:
    """Per model version ("unscored" without one, "all" last): decision counts and errors."""
    summary: Dict[str, Dict[str, int]] = {}
    for record in records:
        version = UNSCORED if record["model_version"] is None else str(record["model_version"])
        for key in (version, "all"):
            counts = summary.setdefault(key, {"applications": 0, "errors": 0,
                                              **{action: 0 for action in ACTIONS}})
            counts["applications"] += 1
            counts[record["decision"]] += 1
            counts["errors"] += bool(record["error"])
    if "all" in summary:
        summary["all"] = summary.pop("all")
    return summary

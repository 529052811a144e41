"""`riskpipe score --task credit`: the credit policy, reading applications, and scoring on a server.

The end-to-end tests run a real in-process `riskpipe serve` on a tiny credit
SavedModel with the contract of components/credit/export.py: an `explain`
signature taking one tensor per column (float32, NaN = missing; string, "" =
missing) and returning default_probability, score_points, raw_score,
reason_codes and reason_contributions. The model is linear in per-column
contributions, so every score and reason is known here exactly.
"""
import csv
import json
import math
import os

import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from common.errors import DataError, UsageError
from common.serving_contract import (DEFAULT_PROBABILITY_KEY, EXAMPLES_INPUT, EXPLAIN,
                                     RAW_SCORE_KEY, REASON_CODES_KEY, REASON_CONTRIBUTIONS_KEY,
                                     SCORE_POINTS_KEY, SERVING_DEFAULT)
from engine.credit_policy import (APPROVE, DECLINE, REVIEW, default_credit_policy_path,
                                  load_credit_policy, parse_credit_policy)
from engine.client import ClientOptions, ScoringError
from engine.credit_scoring import (ModelContractError, ModelInputs, check_applications,
                                   input_tensors, model_inputs, read_applications,
                                   score_applications)
from engine.routing import CANARY, STABLE, ModelRouting, Router, route, write_model_routing
from engine.policy import PolicyError
from serving.options import ServerOptions
from serving.server import ModelServer

from engine_helpers import run_score

MODEL_NAME = "credit"
MODEL_VERSION = 3
# The scorecard scale: 600 points at 50:1, 20 points to double the odds.
FACTOR = 20 / math.log(2)
OFFSET = 600 - FACTOR * math.log(50)
BASE_LOGIT = -math.log(50)  # a baseline applicant scores exactly 600 points
K = 2


def policy_of(**overrides):
    data = {"thresholds": {"decline_below": 540, "review_below": 580},
            "rules": [{"name": "minimum_age", "type": "below", "column": "age", "limit": 18,
                       "action": "DECLINE"},
                      {"type": "above", "column": "debt_to_income", "limit": 0.6,
                       "action": "REVIEW"},
                      {"type": "in", "column": "employment_type", "values": ["unemployed"],
                       "action": "REVIEW"}]}
    data.update(overrides)
    return parse_credit_policy(data)


# --- the policy ----------------------------------------------------------------------------


def test_the_default_policy_loads_with_its_documented_thresholds():
    policy = load_credit_policy(default_credit_policy_path())
    assert (policy.thresholds.decline_below, policy.thresholds.review_below) == (540, 580)
    assert policy.on_model_error == REVIEW
    assert [rule.name for rule in policy.rules] == ["minimum_age", "high_debt_to_income",
                                                   "unemployed"]
    # The YAML's arithmetic: 580 points are odds of 25:1, 540 of 6.25:1.
    odds = lambda points: 50 * 2 ** ((points - 600) / 20)  # noqa: E731
    assert 1 / (1 + odds(580)) == pytest.approx(0.0385, abs=1e-4)
    assert 1 / (1 + odds(540)) == pytest.approx(0.1379, abs=1e-4)


@pytest.mark.parametrize("points, action", [
    (539.99, DECLINE), (540.0, REVIEW), (579.99, REVIEW), (580.0, APPROVE), (700.0, APPROVE),
    (-10.0, DECLINE),
])
def test_points_thresholds_are_strictly_below(points, action):
    decision = policy_of(rules=[]).decide({}, points, 0.05, MODEL_VERSION)
    assert decision.action == action
    assert decision.model_version == MODEL_VERSION and decision.rules_fired == ()


@pytest.mark.parametrize("cells, fired", [
    ({"age": "18"}, []),
    ({"age": "17.99"}, ["minimum_age"]),
    ({"debt_to_income": "0.6"}, []),
    ({"debt_to_income": "0.6001"}, ["debt_to_income_above_0.6"]),
    ({"employment_type": "Unemployed"}, ["employment_type_in"]),  # case-insensitive
    ({"employment_type": "salaried"}, []),
    # A column the application lacks or has missing fires no rule.
    ({}, []),
    ({"age": None, "debt_to_income": None, "employment_type": None}, []),
])
def test_rule_boundaries_are_exact_and_missing_columns_fire_nothing(cells, fired):
    decision = policy_of().decide(cells, 650.0, 0.01, MODEL_VERSION)
    assert list(decision.rules_fired) == fired
    assert decision.action == (APPROVE if not fired else
                               DECLINE if fired == ["minimum_age"] else REVIEW)


@pytest.mark.parametrize("cells, points, action", [
    ({"age": "16"}, 650.0, DECLINE),                 # a DECLINE rule beats an APPROVE score
    ({"debt_to_income": "0.9"}, 500.0, DECLINE),     # a DECLINE score beats a REVIEW rule
    ({"debt_to_income": "0.9"}, 650.0, REVIEW),
    ({"age": "30"}, 560.0, REVIEW),
])
def test_the_decision_is_the_most_severe_of_rules_and_score(cells, points, action):
    assert policy_of().decide(cells, points, 0.1, MODEL_VERSION).action == action


@pytest.mark.parametrize("points", [None, float("nan")])
def test_no_score_is_decided_by_on_model_error_and_the_rules(points):
    decision = policy_of().decide({"age": "30"}, points, None, None, model_error="UNAVAILABLE")
    assert decision.action == REVIEW and decision.score_points is None
    assert policy_of(on_model_error="DECLINE").decide({}, points, None, None).action == DECLINE
    assert policy_of().decide({"age": "12"}, points, None, None).action == DECLINE


def test_rule_columns_may_be_given_as_headers():
    policy = policy_of(rules=[{"name": "dti", "type": "above", "column": "Debt To Income",
                               "limit": 0.5, "action": "REVIEW"}])
    assert policy.rules[0].column == "debt_to_income"
    assert policy.numeric_columns == {"debt_to_income"}
    assert policy.decide({"debt_to_income": "0.7"}, 650.0, 0.01, 1).rules_fired == ("dti",)


@pytest.mark.parametrize("overrides, message", [
    ({"thresholds": {"decline_below": 600, "review_below": 580}},
     r"policy\.thresholds\.decline_below: 600 is above review_below \(580\)"),
    ({"thresholds": {"decline_below": 540}}, r"policy\.thresholds\.review_below: required"),
    ({"thresholds": {"decline_below": 540, "review_below": 580, "review": 0.1}},
     r"policy\.thresholds\.review: unknown field"),
    ({"rules": [{"type": "between", "column": "age", "action": "REVIEW"}]},
     r"policy\.rules\[0\]\.type: 'between' is not one of above, below, in"),
    ({"rules": [{"type": "below", "column": "age", "limit": 18, "action": "BLOCK"}]},
     r"policy\.rules\[0\]\.action: 'BLOCK' is not one of REVIEW, DECLINE"),
    ({"rules": [{"type": "below", "column": "age", "limit": "18", "action": "DECLINE"}]},
     r"policy\.rules\[0\]\.limit: expected a number"),
    ({"rules": [{"type": "in", "column": "employment_type", "values": [], "action": "REVIEW"}]},
     r"policy\.rules\[0\]\.values: expected a non-empty list"),
    ({"rules": [{"type": "below", "limit": 18, "action": "DECLINE"}]},
     r"policy\.rules\[0\]\.column: required"),
    ({"rules": [{"name": "a", "type": "below", "column": "age", "limit": 1, "action": "REVIEW"},
                {"name": "a", "type": "above", "column": "age", "limit": 99,
                 "action": "REVIEW"}]},
     r"policy\.rules\[1\]\.name: duplicate rule name 'a'"),
    ({"on_model_error": "BLOCK"}, r"policy\.on_model_error: 'BLOCK' is not one of"),
])
def test_invalid_policies_name_the_field(overrides, message):
    with pytest.raises(PolicyError, match=message):
        policy_of(**overrides)


# --- reading applications ------------------------------------------------------------------

INPUTS = ModelInputs(MODEL_NAME, MODEL_VERSION, numeric=("age", "debt_to_income", "income"),
                     categorical=("employment_type",))
HEADER = "Application ID;Age;Income;Debt-to-Income;Employment Type;Defaulted;Applied On"


def write(path, text):
    path.write_text(text)
    return str(path)


def test_applications_are_read_with_the_training_tables_conventions(tmp_path):
    path = write(tmp_path / "a.csv", HEADER + "\n"
                 "A1; 34; 52000; 0.31; salaried; 0; 2024-01-02\n"
                 "\n"
                 "A2;NA;;0.7;unemployed;1;2024-01-03\n")
    applications = read_applications(path, id_column="Application ID")
    assert applications.names == ("application_id", "age", "income", "debt_to_income",
                                  "employment_type", "defaulted", "applied_on")
    first, second = applications.rows
    assert (first.row, first.id, first.cells["age"]) == (2, "A1", "34")
    assert (second.row, second.id) == (4, "A2")  # the blank line still counts
    assert second.cells["age"] is None and second.cells["income"] is None
    check_applications(applications, INPUTS, policy_of())
    tensors = input_tensors(applications.rows, INPUTS)
    assert set(tensors) == set(INPUTS.columns)  # no label, id or date column is sent
    assert tensors["age"].dtype == tf.float32.as_datatype_enum
    assert tensors["age"].float_val[0] == 34.0 and math.isnan(tensors["age"].float_val[1])
    assert list(tensors["employment_type"].string_val) == [b"salaried", b"unemployed"]
    assert [a.id for a in read_applications(path).rows] == [2, 4]  # no --id: the row number


@pytest.mark.parametrize("text, id_column, message", [
    ("", None, r"a\.csv: empty file"),
    ("\n  \n", None, r"a\.csv: empty file"),
    (HEADER + "\n", None, r"a\.csv: a header but no data rows"),
    (HEADER + "\nA1;34;52000\n", None, r"a\.csv: row 2 has 3 fields, the header has 7"),
    ("Age,age,income\n1,2,3\n", None,
     r"a\.csv: the headers 'Age' \(column 1\) and 'age' \(column 2\) both become"),
    (HEADER + "\nA1;34;1;0.1;x;0;d\n", "customer",
     r"a\.csv: no id column 'customer' \(columns: Application ID, Age,"),
    (HEADER + "\nA1;34;1;0.1;x;0;d\nA1;35;1;0.1;x;0;d\n", "application_id",
     r"a\.csv: row 3, column 'Application ID': id 'A1' appears more than once \(also in row 2\)"),
    (HEADER + "\n;34;1;0.1;x;0;d\n", "application_id",
     r"a\.csv: row 2, column 'Application ID': the application id is missing"),
])
def test_unreadable_files_name_the_file_and_row(tmp_path, text, id_column, message):
    with pytest.raises(DataError, match=message):
        read_applications(write(tmp_path / "a.csv", text), id_column=id_column)


def test_a_non_number_in_a_numeric_model_column_names_row_and_column(tmp_path):
    path = write(tmp_path / "a.csv", HEADER + "\nA1;34;52000;0.3;x;0;d\n"
                 "A2;34;52 000 EUR;0.3;x;0;d\n")
    with pytest.raises(DataError, match=r"a\.csv: row 3, column 'Income': '52 000 EUR' is not "
                                        r"a number \(model 'credit' version 3 takes 'income'"):
        check_applications(read_applications(path), INPUTS)


def test_a_model_column_absent_from_the_file_says_which_columns_the_model_needs(tmp_path):
    path = write(tmp_path / "a.csv", "Age,Income,Employment Type\n34,52000,salaried\n")
    with pytest.raises(DataError, match=r"a\.csv: no column debt_to_income, which model "
                                        r"'credit' version 3 takes; it needs the columns age, "
                                        r"debt_to_income, employment_type, income"):
        check_applications(read_applications(path), INPUTS)


def test_a_number_a_rule_compares_is_checked_too(tmp_path):
    inputs = ModelInputs(MODEL_NAME, 1, numeric=("income",), categorical=())
    path = write(tmp_path / "a.csv", "age,income\nunder eighteen,100\n")
    with pytest.raises(DataError, match=r"row 2, column 'age': 'under eighteen' is not a "
                                        r"number \(policy rule minimum_age compares it"):
        check_applications(read_applications(path), inputs, policy_of())
    check_applications(read_applications(path), inputs, policy_of(rules=[]))


# --- end to end on a served tiny credit model ----------------------------------------------

EMPLOYMENT = ("unemployed", "self_employed", "salaried")
EMPLOYMENT_WEIGHTS = (1.5, 0.3, 0.0)
COLUMNS = ("age", "debt_to_income", "employment_type", "income")


def contributions(age, debt_to_income, employment_type, income):
    """Per-column contributions to the log-odds of default, missing = baseline (0)."""
    def numeric(value, centre, weight):
        return 0.0 if value is None else weight * (value - centre)
    employment = dict(zip(EMPLOYMENT, EMPLOYMENT_WEIGHTS)).get(employment_type or "", 0.0)
    return {"age": numeric(age, 40.0, -0.05), "debt_to_income": numeric(debt_to_income, 0.3, 4.0),
            "employment_type": employment, "income": numeric(income, 50000.0, -0.00002)}


def expected_points(**cells):
    return OFFSET - FACTOR * (BASE_LOGIT + sum(contributions(**cells).values()))


class TinyCreditModel(tf.Module):
    """A linear credit model with the explain contract: logit = BASE_LOGIT + sum of column terms."""

    def __init__(self):
        super().__init__()
        self.weights = tf.Variable([-0.05, 4.0, -0.00002])
        self.centres = tf.constant([40.0, 0.3, 50000.0])
        self.employment = tf.constant(EMPLOYMENT)
        self.employment_weights = tf.Variable(EMPLOYMENT_WEIGHTS)

    def _contributions(self, age, debt_to_income, employment_type, income):
        numbers = tf.stack([age, debt_to_income, income], axis=1)
        terms = self.weights[None, :] * (numbers - self.centres[None, :])
        terms = tf.where(tf.math.is_nan(terms), tf.zeros_like(terms), terms)
        matches = tf.cast(tf.equal(employment_type[:, None], self.employment[None, :]),
                          tf.float32)
        employment = tf.reduce_sum(matches * self.employment_weights[None, :], axis=1)
        # Columns in COLUMNS order: age, debt_to_income, employment_type, income.
        return tf.stack([terms[:, 0], terms[:, 1], employment, terms[:, 2]], axis=1)

    def _outputs(self, contribution):
        logit = BASE_LOGIT + tf.reduce_sum(contribution, axis=1)
        return {DEFAULT_PROBABILITY_KEY: tf.sigmoid(logit),
                SCORE_POINTS_KEY: OFFSET - FACTOR * logit,
                RAW_SCORE_KEY: tf.sigmoid(logit)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="age"),
                                  tf.TensorSpec([None], tf.float32, name="debt_to_income"),
                                  tf.TensorSpec([None], tf.string, name="employment_type"),
                                  tf.TensorSpec([None], tf.float32, name="income")])
    def explain(self, age, debt_to_income, employment_type, income):
        contribution = self._contributions(age, debt_to_income, employment_type, income)
        top = tf.math.top_k(contribution, k=K)
        return {**self._outputs(contribution),
                REASON_CODES_KEY: tf.gather(tf.constant(COLUMNS), top.indices),
                REASON_CONTRIBUTIONS_KEY: top.values}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(self, examples):
        nan = float("nan")
        parsed = tf.io.parse_example(examples, {
            "age": tf.io.FixedLenFeature([], tf.float32, default_value=nan),
            "debt_to_income": tf.io.FixedLenFeature([], tf.float32, default_value=nan),
            "employment_type": tf.io.FixedLenFeature([], tf.string, default_value=""),
            "income": tf.io.FixedLenFeature([], tf.float32, default_value=nan)})
        return self._outputs(self._contributions(**parsed))


@pytest.fixture(name="credit_server", scope="module")
def fixture_credit_server(tmp_path_factory):
    """(address, base path) of an in-process `riskpipe serve` with the tiny credit model."""
    base = tmp_path_factory.mktemp("credit-models") / MODEL_NAME
    model = TinyCreditModel()
    tf.saved_model.save(model, str(base / str(MODEL_VERSION)), signatures={
        SERVING_DEFAULT: model.serve_examples, EXPLAIN: model.explain})
    server = ModelServer(ServerOptions(model_name=MODEL_NAME, model_base_path=str(base), port=0,
                                       bind_address="127.0.0.1", shutdown_grace_seconds=2.0))
    port = server.start()
    try:
        assert server.wait_until_available(60), "the credit model did not become available"
        yield f"127.0.0.1:{port}", str(base)
    finally:
        server.stop(grace=2.0)


APPLICATIONS = (
    "application_id,age,income,debt_to_income,employment_type,defaulted\n"
    "A1,45,80000,0.2,salaried,0\n"          # safe: APPROVE
    "A2,30,30000,0.45,self_employed,0\n"    # middling: REVIEW by score
    "A3,25,15000,0.8,unemployed,1\n"        # DECLINE by score, two rules fire
    "A4,16,80000,0.2,salaried,0\n"          # a minor: DECLINE by rule, the score is fine
    "A5,,50000,NA,salaried,0\n"             # missing values are scored
)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_application_gets_a_decision_from_the_served_model(tmp_path, credit_server,
                                                                  capsys):
    address, _ = credit_server
    path = write(tmp_path / "applications.csv", APPLICATIONS)
    out = tmp_path / "decisions.jsonl"
    assert run_score(["--task", "credit", "--server", address, "--input", path,
                      "--id", "application_id", "--output", str(out)]) == 0
    records = {r["id"]: r for r in read_jsonl(out)}
    assert list(records) == ["A1", "A2", "A3", "A4", "A5"]
    assert {r["decision"] for r in records.values()} == {APPROVE, REVIEW, DECLINE}
    assert [records[i]["decision"] for i in records] == [APPROVE, REVIEW, DECLINE, DECLINE,
                                                         APPROVE]
    for record in records.values():
        assert record["model_version"] == MODEL_VERSION and record["error"] == ""
        assert record["server"] == address
        # Reasons only for REVIEW and DECLINE, and only positive contributions.
        if record["decision"] == APPROVE:
            assert record["reasons"] == []
        assert all(reason["contribution"] > 0 for reason in record["reasons"])
    a1 = records["A1"]
    assert a1["score_points"] == pytest.approx(
        expected_points(age=45, debt_to_income=0.2, employment_type="salaried", income=80000),
        abs=1e-3)
    a3 = records["A3"]
    assert a3["rules_fired"] == ["high_debt_to_income", "unemployed"]  # the default policy
    expected = contributions(age=25, debt_to_income=0.8, employment_type="unemployed",
                             income=15000)
    assert [r["code"] for r in a3["reasons"]] == ["debt_to_income", "employment_type"]
    assert a3["reasons"][0]["contribution"] == round(expected["debt_to_income"], 4)
    assert a3["default_probability"] == pytest.approx(
        1 / (1 + math.exp(-(BASE_LOGIT + sum(expected.values())))), rel=1e-5)
    a4 = records["A4"]
    assert a4["rules_fired"] == ["minimum_age"] and a4["score_points"] > 580
    # The minor's only positive contribution is age's.
    assert [r["code"] for r in a4["reasons"]] == ["age"]
    a5 = records["A5"]  # age and debt_to_income missing: the baseline's contributions
    assert a5["score_points"] == pytest.approx(
        expected_points(age=None, debt_to_income=None, employment_type="salaried",
                        income=50000), abs=1e-3)
    err = capsys.readouterr().err
    assert "APPROVE" in err and "DECLINE" in err
    summary_line = next(line for line in err.splitlines() if line.startswith(str(MODEL_VERSION)))
    assert summary_line.split() == [str(MODEL_VERSION), "5", "2", "1", "2", "0"]


def test_csv_output_and_row_number_ids(tmp_path, credit_server):
    address, _ = credit_server
    path = write(tmp_path / "applications.csv", APPLICATIONS.replace(",", "|"))
    out = tmp_path / "decisions.csv"
    assert run_score(["--task", "credit", "--server", address, "--input", path,
                      "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == ["2", "3", "4", "5", "6"]
    assert rows[2]["decision"] == DECLINE
    assert rows[2]["reasons"].startswith("debt_to_income=")
    assert rows[0]["reasons"] == ""


def test_batches_cover_every_row(tmp_path, credit_server):
    from engine.client import RiskEngineClient  # pylint: disable=import-outside-toplevel

    address, _ = credit_server
    lines = ["age,income,debt_to_income,employment_type"]
    lines += [f"{20 + i},{20000 + 1000 * i},{(i % 10) / 10},salaried" for i in range(23)]
    applications = read_applications(write(tmp_path / "a.csv", "\n".join(lines) + "\n"))
    with RiskEngineClient(ClientOptions(addresses=(address,), model_name=MODEL_NAME,
                                        deadline_seconds=30.0)) as client:
        records = score_applications(client, applications, policy_of(), batch_size=5)
    assert [r["row"] for r in records] == list(range(2, 25))
    for record, application in zip(records, applications.rows):
        cells = {k: float(application.cells[k]) for k in ("age", "income", "debt_to_income")}
        assert record["score_points"] == pytest.approx(
            expected_points(employment_type="salaried", **cells), abs=1e-3)


def test_a_bad_value_names_row_and_column_and_sends_nothing(tmp_path, credit_server):
    address, _ = credit_server
    path = write(tmp_path / "applications.csv",
                 APPLICATIONS + "A6,forty,50000,0.3,salaried,0\n")
    out = tmp_path / "decisions.jsonl"
    with pytest.raises(DataError, match=r"applications\.csv: row 7, column 'age': 'forty' is "
                                        r"not a number"):
        run_score(["--task", "credit", "--server", address, "--input", path,
                   "--output", str(out)])
    assert not out.exists()


def test_a_file_without_a_model_column_lists_what_the_model_needs(tmp_path, credit_server):
    address, _ = credit_server
    path = write(tmp_path / "applications.csv", "age,income\n30,1000\n")
    with pytest.raises(DataError, match=r"no column debt_to_income, employment_type, which "
                                        r"model 'credit' version 3 takes"):
        run_score(["--task", "credit", "--server", address, "--input", path])


def test_an_unknown_model_name_is_a_usage_error(tmp_path, credit_server):
    address, _ = credit_server
    path = write(tmp_path / "applications.csv", APPLICATIONS)
    with pytest.raises(UsageError, match=r"--model-name: cannot read the signatures of model "
                                         r"'nope': NOT_FOUND"):
        run_score(["--task", "credit", "--server", address, "--input", path,
                   "--model-name", "nope"])


class FakeMetadataClient:
    """What model_inputs reads of a client: its model name and the served signatures."""

    def __init__(self, signatures):
        self.options = ClientOptions(addresses=("127.0.0.1:1",), model_name="fraud")
        self.signatures = signatures

    def signature_defs(self, label=None):
        return 7, self.signatures


def explain_signature():
    explain = meta_graph_pb2.SignatureDef()
    for key in (DEFAULT_PROBABILITY_KEY, SCORE_POINTS_KEY, REASON_CODES_KEY,
                REASON_CONTRIBUTIONS_KEY):
        explain.outputs[key].dtype = 1
    explain.inputs["age"].dtype = 1
    return explain


class FailingClient(FakeMetadataClient):
    """Serves the explain signature's metadata; every Predict fails with `code`."""

    def __init__(self, code):
        super().__init__({EXPLAIN: explain_signature()})
        self.code = code
        self.labels = []

    def predict_outputs(self, inputs, signature, label=None):
        self.labels.append(label)
        raise ScoringError("127.0.0.1:1: cannot score", code=self.code)


def test_a_batch_without_an_answer_is_decided_by_on_model_error(tmp_path):
    applications = read_applications(write(tmp_path / "a.csv", "age\n30\n16\n"))
    records = score_applications(FailingClient("INVALID_ARGUMENT"), applications, policy_of())
    assert [r["decision"] for r in records] == [REVIEW, DECLINE]  # on_model_error; the rule
    assert all(r["error"] == "INVALID_ARGUMENT: 127.0.0.1:1: cannot score" for r in records)
    assert all(r["score_points"] is None and r["reasons"] == [] for r in records)


def test_a_fleet_that_stays_unavailable_stops_the_run(tmp_path):
    applications = read_applications(write(tmp_path / "a.csv", "age\n" + "30\n" * 25))
    with pytest.raises(DataError, match=r"unavailable for 20 applications in a row .* "
                                        r"stopped after 20 of 25, nothing written"):
        score_applications(FailingClient("UNAVAILABLE"), applications, policy_of(),
                           batch_size=10)


def test_a_routing_file_routes_applications_by_id(tmp_path):
    routing = tmp_path / "models.config.routing.json"
    write_model_routing(str(routing), "fraud", ModelRouting(canary_version=9, canary_share=0.5))
    applications = read_applications(
        write(tmp_path / "a.csv", "id,age\n" + "".join(f"a{i},30\n" for i in range(40))),
        id_column="id")
    client = FailingClient("INVALID_ARGUMENT")
    records = score_applications(client, applications, policy_of(),
                                 router=Router("fraud", str(routing)))
    assert {r["version_label"] for r in records} == {STABLE, CANARY}
    assert all(r["version_label"] == route(r["id"], 0.5) for r in records)
    assert set(client.labels) == {STABLE, CANARY}


def test_a_model_without_the_explain_contract_is_refused():
    explain = meta_graph_pb2.SignatureDef()
    with pytest.raises(ModelContractError, match=r"model 'fraud' version 7 has no 'explain' "
                                                 r"signature \(it has serving_default\)"):
        model_inputs(FakeMetadataClient({SERVING_DEFAULT: explain}))
    for key in (DEFAULT_PROBABILITY_KEY, SCORE_POINTS_KEY, REASON_CODES_KEY,
                REASON_CONTRIBUTIONS_KEY):
        explain.outputs[key].dtype = 1
    explain.inputs["age"].dtype = 1
    explain.inputs["employment_type"].dtype = 7
    inputs = model_inputs(FakeMetadataClient({EXPLAIN: explain}))
    assert (inputs.numeric, inputs.categorical, inputs.version) == (("age",),
                                                                    ("employment_type",), 7)
    explain.inputs["count"].dtype = 9  # DT_INT64
    with pytest.raises(ModelContractError, match=r"input 'count' has dtype 9"):
        model_inputs(FakeMetadataClient({EXPLAIN: explain}))


@pytest.mark.parametrize("flag", [["--history", "h"], ["--shadow"],
                                  ["--signature", "serving_raw"], ["--output-key", "x"]])
def test_fraud_only_flags_are_a_usage_error_with_credit(tmp_path, flag):
    path = write(tmp_path / "applications.csv", APPLICATIONS)
    with pytest.raises(UsageError, match=f"{flag[0]} is for --task fraud"):
        run_score(["--task", "credit", "--server", "127.0.0.1:1", "--input", path] + flag)


def test_id_is_a_usage_error_with_fraud(tmp_path):
    with pytest.raises(UsageError, match=r"--id is for --task credit"):
        run_score(["--server", "127.0.0.1:1", "--input", str(tmp_path), "--id", "x"])


def test_an_unreachable_fleet_is_a_one_line_usage_error(tmp_path, free_port):
    path = write(tmp_path / "applications.csv", APPLICATIONS)
    with pytest.raises(UsageError, match=r"--server: no server is reachable"):
        run_score(["--task", "credit", "--server", f"127.0.0.1:{free_port()}", "--input", path])
    assert os.path.isfile(path)

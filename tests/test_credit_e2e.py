"""End to end on small simulated application tables: `riskpipe run --task credit`.

One run on 2,000 applications with an id and a date (the `credit_run`
fixture), whose MLMD records, pushed model and summary the tests read; one run
on 1,000 applications without an id or a date, with a single-valued column;
and the bad tables of the table check, which stop the run before anything is
pushed.
"""
import csv
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from common.serving_contract import (DEFAULT_PROBABILITY_KEY, EXPLAIN, REASON_CODES_KEY,
                                     REASON_CONTRIBUTIONS_KEY, SCORE_POINTS_KEY, SERVING_DEFAULT,
                                     SERVING_RAW, read_warmup_requests)
from components.credit import scorecard, table
from components.credit.config import ScorecardScale
from components.metric_names import BRIER, GINI, KS, PR_AUC, ROC_AUC
from components.trainer import COMPRESSION_FILE
from datagen import credit as credit_data
from pipeline import mlmd_queries
from pipeline import pipeline as dag
from pipeline import schema_update
from pipeline.configs import CREDIT_PIPELINE_NAME
from serving import tls
from serving.options import ServerOptions
from serving.server import ModelServer

pytestmark = pytest.mark.e2e

CREDIT_NODES = {dag.EXAMPLE_GEN, dag.STATISTICS_GEN, dag.SCHEMA_GEN, dag.EXAMPLE_VALIDATOR,
                dag.PREVIOUS_STATISTICS_RESOLVER, dag.ANOMALY_GATE, dag.TRANSFORM, dag.TRAINER,
                dag.BLESSED_MODEL_RESOLVER, dag.EVALUATOR, dag.PUSHER}
DRIVER, IGNORED = "past_delinquencies", credit_data.IGNORED_BY_GROUND_TRUTH[0]


def _run_args(data: str, root, *extra) -> list:
    return ["run", "--task", "credit", "--data", data, "--label", "default", "--positive", "1",
            "--pipeline-root", str(root / "pipeline"), "--serving-root", str(root / "serving"),
            *extra]


@pytest.fixture(scope="module")
def credit_run(tmp_path_factory, run_riskpipe):
    root = tmp_path_factory.mktemp("credit")
    credit_data.write_credit_table(str(root / "data"), rows=2000, default_rate=0.1, seed=3,
                                   start_date="2024-01-01")
    result = run_riskpipe(_run_args(str(root / "data" / credit_data.TABLE), root,
                                    "--id", "application_id", "--date", "application_date"))
    return root, result


@pytest.fixture(scope="module")
def version_dir(credit_run):
    root, result = credit_run
    assert result.exit_code == 0, result.stderr
    versions = glob.glob(str(root / "serving" / "credit" / "*"))
    assert len(versions) == 1, versions
    return versions[0]


@pytest.fixture(scope="module")
def loaded(version_dir):
    return tf.saved_model.load(version_dir)


@pytest.fixture(scope="module")
def eval_rows(credit_run):
    """The eval split's applications as the table check staged them."""
    root, _ = credit_run
    path, = glob.glob(str(root / "pipeline" / "credit_tables" / "*" / table.EVAL_DIR /
                          table.STAGED_FILE))
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _raw_inputs(signature, rows):
    """serving_raw / explain inputs: NaN or "" for a missing cell."""
    inputs = {}
    for name, spec in signature.structured_input_signature[1].items():
        if spec.dtype == tf.string:
            inputs[name] = tf.constant([row[name] for row in rows])
        else:
            inputs[name] = tf.constant([float(row[name]) if row[name] else np.nan for row in rows],
                                       tf.float32)
    return inputs


def _examples(version_dir, limit=64):
    """Serialized eval tf.Examples of CsvExampleGen's output, through the warmup records."""
    records = read_warmup_requests(version_dir)
    return [value for record in records
            for value in tf.make_ndarray(record.predict_log.request.inputs["examples"])][:limit]


def test_run_blesses_pushes_and_summarizes(credit_run, version_dir):
    root, result = credit_run
    assert "BLESSED" in result.stdout
    for expected in ("logistic_regression", "gradient_boosting", "KS by score decile",
                     "score PSI, train vs eval", "application_date", "log1p+standardise",
                     "network: "):
        assert expected in result.stdout
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
    png = root / "pipeline" / "roc_ks.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The schema SchemaGen inferred is kept for the next runs to import.
    assert (root / "pipeline" / "schema.pbtxt").is_file()


def test_every_component_is_in_mlmd(credit_run, version_dir):
    root, _ = credit_run
    store = mlmd_queries.open_store(str(root / "pipeline" / "metadata.sqlite"))
    nodes = {node for node, _ in mlmd_queries.latest_run_executions(store, CREDIT_PIPELINE_NAME)}
    assert nodes == CREDIT_NODES


def test_score_points_follow_the_scorecard_formula(loaded, version_dir):
    outputs = loaded.signatures[SERVING_DEFAULT](examples=tf.constant(_examples(version_dir)))
    probability = outputs[DEFAULT_PROBABILITY_KEY].numpy()
    assert 0 < probability.min() and probability.max() < 1 and probability.std() > 0
    np.testing.assert_allclose(outputs[SCORE_POINTS_KEY].numpy(),
                               scorecard.points(probability, ScorecardScale()), atol=0.05)


def test_raw_and_explain_score_as_the_default_signature(loaded, eval_rows):
    rows = eval_rows[:100]
    raw = loaded.signatures[SERVING_RAW](**_raw_inputs(loaded.signatures[SERVING_RAW], rows))
    explained = loaded.signatures[EXPLAIN](**_raw_inputs(loaded.signatures[EXPLAIN], rows))
    np.testing.assert_allclose(raw[DEFAULT_PROBABILITY_KEY].numpy(),
                               explained[DEFAULT_PROBABILITY_KEY].numpy(), rtol=1e-5)
    assert any(not row["income"] for row in eval_rows)  # missing values are scored too


def test_reason_codes_rank_a_driver_above_an_ignored_column(loaded, eval_rows):
    explain = loaded.signatures[EXPLAIN]
    outputs = explain(**_raw_inputs(explain, eval_rows))
    codes = outputs[REASON_CODES_KEY].numpy().astype(str)
    contributions = outputs[REASON_CONTRIBUTIONS_KEY].numpy()
    assert codes.shape == (len(eval_rows), 4) and contributions.shape == codes.shape
    assert np.all(np.diff(contributions, axis=1) <= 1e-6)  # strongest first
    # Four reasons are listed for every application, however small; the weight
    # the model gives a column is the contribution it carries when listed.
    weight = {name: contributions[codes == name].clip(min=0).sum() for name in (DRIVER, IGNORED)}
    assert weight[DRIVER] > weight[IGNORED], weight


def test_the_fleet_serves_the_same_reasons_as_the_batch_call(loaded, version_dir, eval_rows):
    rows = eval_rows[:50]
    batch = loaded.signatures[EXPLAIN](**_raw_inputs(loaded.signatures[EXPLAIN], rows))
    base_path = os.path.dirname(version_dir)
    server = ModelServer(ServerOptions(model_name="credit", model_base_path=base_path, port=0,
                                       bind_address="127.0.0.1", shutdown_grace_seconds=1.0))
    server.start()
    try:
        assert server.wait_until_available(60)
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "credit", EXPLAIN
        for name, value in _raw_inputs(loaded.signatures[EXPLAIN], rows).items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            tls.channel(f"127.0.0.1:{server.port}", None))
        response = stub.Predict(request, timeout=30)
    finally:
        server.stop(grace=1.0)
    served = tf.make_ndarray(response.outputs[REASON_CODES_KEY]).astype(str)
    np.testing.assert_array_equal(served, batch[REASON_CODES_KEY].numpy().astype(str))
    assert response.model_spec.version.value == int(os.path.basename(version_dir))


def test_a_small_table_without_id_or_date_runs(tmp_path, run_riskpipe):
    frame = credit_data.simulate_applications(rows=1000, default_rate=0.15, seed=5,
                                              start_date="2024-01-01")
    frame = frame.drop(columns=["application_id", "application_date"])
    frame["product"] = "personal_loan"  # a categorical column of one value
    path = tmp_path / "applications.csv"
    frame.to_csv(path, index=False)
    # Pruning is off by default for credit; the machinery still prunes when asked.
    config = tmp_path / "pruned.yaml"
    config.write_text("trainer:\n  target_sparsity: 0.5\n")
    result = run_riskpipe(_run_args(str(path), tmp_path, "--config", str(config)))
    assert result.exit_code == 0, result.stderr
    assert "hash of each row" in result.stdout
    assert "Evaluator" in result.stdout and "Pusher" in result.stdout
    (report,) = glob.glob(str(tmp_path / "pipeline" / "Trainer" / "model_run" / "*" /
                              COMPRESSION_FILE))
    with open(report) as f:
        assert json.load(f)["min_dense_kernel_sparsity"] >= 0.5


BAD_TABLES = {
    "three label values": ("a,default\n1,0\n2,1\n3,2\n", "has 3 values"),
    "a word in a numeric column": (
        "a,default\n" + "".join(f"{i},{i % 2}\n" for i in range(200)) + "x7,0\n",
        "row 202, column 'a'"),
    "no label column": ("a,b\n1,2\n", "no column 'default'"),
    "an empty file": ("", "empty"),
    "one class": ("a,default\n1,0\n2,0\n", "only"),
    "a row without label": ("a,default\n1,0\n2,\n3,1\n", "row 3"),
}


@pytest.mark.parametrize("name", sorted(BAD_TABLES))
def test_a_bad_table_names_the_problem_and_pushes_nothing(name, tmp_path, run_riskpipe):
    content, message = BAD_TABLES[name]
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = run_riskpipe(_run_args(str(path), tmp_path))
    assert result.exit_code == 1
    assert str(path) in result.stderr and message in result.stderr, result.stderr
    assert not (tmp_path / "serving").exists()


def test_the_cost_report_covers_credit_versions(credit_run, version_dir, run_riskpipe):
    root, _ = credit_run
    out = root / "report.json"
    result = run_riskpipe(["report", "--pipeline-root", str(root / "pipeline"),
                           "--json", str(out), "--no-measure"])
    assert result.exit_code == 0, result.stderr
    model, = json.loads(out.read_text())["models"]
    assert model["version"] == int(os.path.basename(version_dir))
    for name in (ROC_AUC, KS, GINI, PR_AUC, BRIER):
        assert 0 <= model["metrics"][name] <= 1
        for baseline in ("logistic_regression", "gradient_boosting"):
            assert 0 <= model["baselines"][baseline][name] <= 1
    assert model["metrics"][GINI] == pytest.approx(2 * model["metrics"][ROC_AUC] - 1, abs=1e-3)


def test_schema_bootstraps_a_reviewable_credit_schema(credit_run, run_riskpipe, tmp_path):
    root, _ = credit_run
    out = tmp_path / "credit_schema.pbtxt"
    result = run_riskpipe(["schema", "--task", "credit", "--data",
                           str(root / "data" / credit_data.TABLE), "--label", "default",
                           "--positive", "1", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    schema = schema_update.load_schema(str(out))
    names = {feature.name for feature in schema.feature}
    assert {"income", "purpose", "default"} <= names
    assert not any(feature.HasField("shape") for feature in schema.feature)

"""End to end on tiny data: `riskpipe run` trains, evaluates, blesses and pushes a model.

One pipeline run per session (the `pipeline_run` fixture); these tests read
what it recorded in MLMD and what it pushed.
"""
import glob
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from components import features
from pipeline import pipeline as dag
from pipeline import mlmd_queries

pytestmark = pytest.mark.e2e

ALL_NODES = {dag.FEATURE_GEN, dag.STATISTICS_GEN, dag.SCHEMA_IMPORTER, dag.EXAMPLE_VALIDATOR,
             dag.PREVIOUS_STATISTICS_RESOLVER, dag.ANOMALY_GATE, dag.TRANSFORM, dag.TRAINER,
             dag.BLESSED_MODEL_RESOLVER, dag.EVALUATOR, dag.PUSHER}
# Everything up to the model depends only on the data, the schema and the config; the
# gate compares with the statistics the previous run passed, new in every run.
DATA_TO_MODEL_NODES = ALL_NODES - {dag.BLESSED_MODEL_RESOLVER, dag.EVALUATOR, dag.PUSHER,
                                   dag.PREVIOUS_STATISTICS_RESOLVER, dag.ANOMALY_GATE}
TARGET_SPARSITY = 0.5  # conftest.TINY_CONFIG trainer.target_sparsity


@pytest.fixture(scope="module")
def version_dir(pushed_model):
    versions = os.listdir(pushed_model)
    assert len(versions) == 1, versions
    return os.path.join(pushed_model, versions[0])


@pytest.fixture(scope="module")
def loaded(version_dir):
    return tf.saved_model.load(version_dir)


def _eval_examples(pipeline_run, limit=200):
    """Serialized tf.Examples of the eval split FeatureGen wrote in the e2e run."""
    store = mlmd_queries.open_store(pipeline_run.metadata_path)
    feature_gen = next(e for node, _, e in pipeline_run.executions(
        0, pipeline_run.last_execution) if node == dag.FEATURE_GEN)
    examples = mlmd_queries.output_artifacts(store, feature_gen.id)["examples"][0]
    files = sorted(glob.glob(os.path.join(examples.uri, "Split-eval", "*")))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit)
    return [record.numpy() for record in dataset]


def test_run_succeeds_and_prints_the_summary(pipeline_run):
    result = pipeline_run.result
    assert result.exit_code == 0, result.stderr
    assert "BLESSED" in result.stdout
    assert os.path.join(pipeline_run.serving_root, pipeline_run.model_name) in result.stdout


def test_every_component_executed(pipeline_run):
    runs = pipeline_run.executions(0, pipeline_run.last_execution)
    assert {node for node, _, _ in runs} == ALL_NODES
    # On the first run there are no earlier statistics: TFX records that resolver as
    # failed, and the run goes on.
    states = {node: state for node, state, _ in runs}
    assert states.pop(dag.PREVIOUS_STATISTICS_RESOLVER) == "failed"
    assert re.search(rf"{dag.PREVIOUS_STATISTICS_RESOLVER}\s+no earlier run",
                     pipeline_run.result.stdout)
    assert set(states.values()) == {"ran"}, runs


def test_a_blessed_model_was_pushed(pushed_model, version_dir):
    assert os.path.basename(version_dir).isdigit()
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
    assert os.path.isdir(os.path.join(version_dir, "variables"))


def test_both_signatures_give_the_same_scores(pipeline_run, loaded):
    serialized = _eval_examples(pipeline_run)
    assert serialized
    by_examples = loaded.signatures["serving_default"](
        examples=tf.constant(serialized))["fraud_probability"].numpy()

    rows = [features.from_example(tf.train.Example.FromString(s)) for s in serialized]
    raw = {}
    for name, kind in features.MODEL_FEATURES.items():
        if kind == "float":
            raw[name] = tf.constant([row.get(name, np.nan) for row in rows], tf.float32)
        elif kind == "int":
            raw[name] = tf.constant([row[name] for row in rows], tf.int64)
        else:
            raw[name] = tf.constant([row[name] for row in rows], tf.string)
    by_features = loaded.signatures["serving_raw"](**raw)["fraud_probability"].numpy()

    assert by_examples.shape == (len(serialized),)
    assert np.all((by_examples >= 0) & (by_examples <= 1))
    np.testing.assert_allclose(by_features, by_examples, rtol=1e-5, atol=1e-6)
    assert by_examples.std() > 0  # the scores depend on the transaction


def test_warmup_records_parse_and_replay(version_dir, loaded):
    path = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
    records = [r.numpy() for r in tf.data.TFRecordDataset(path)]
    assert 0 < len(records) <= 1000
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        signature = loaded.signatures[request.model_spec.signature_name or "serving_default"]
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        scores = signature(**{k: tf.constant(v) for k, v in inputs.items()})
        assert all(np.all(np.isfinite(v.numpy())) for v in scores.values())


def test_dense_kernels_reach_the_target_sparsity(loaded):
    # The variables the served signature computes with; Dense layers own the kernels.
    variables = loaded.signatures["serving_default"].variables
    kernels = {v.name: v.numpy() for v in variables if v.name.endswith("/kernel:0")}
    assert kernels
    for name, kernel in kernels.items():
        zeros = float(np.mean(kernel == 0.0))
        # Pruning keeps round(n * (1 - s)) weights: allow one weight of rounding.
        assert zeros >= TARGET_SPARSITY - 1.0 / kernel.size, (name, zeros)


def test_rerun_on_unchanged_data_hits_the_cache(pipeline_run, pushed_model, run_riskpipe):
    versions = pipeline_run.versions()
    before = mlmd_queries.last_execution_id(pipeline_run.metadata_path)
    result = run_riskpipe(pipeline_run.run_args())
    assert result.exit_code == 0, result.stderr

    states = {node: state for node, state, _ in pipeline_run.executions(before)}
    assert set(states) == ALL_NODES
    assert {node for node in DATA_TO_MODEL_NODES if states[node] != "cached"} == set()
    # The same model is served: no new version appears.
    assert pipeline_run.versions() == versions


def test_tensorboard_finds_the_latest_trainer_logs(pipeline_run):
    logdir = mlmd_queries.latest_model_run(pipeline_run.metadata_path)
    assert logdir and logdir.startswith(pipeline_run.pipeline_root)
    assert glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True)


def test_tensorboard_without_a_pipeline_run_is_a_usage_error(run_riskpipe, tmp_path):
    result = run_riskpipe(["tensorboard", "--pipeline-root", str(tmp_path)])
    assert result.exit_code == 2
    assert "run `riskpipe run` first" in result.stderr

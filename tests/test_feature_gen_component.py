"""FeatureGen as a TFX component: its Examples artifact, StatisticsGen reading it, caching."""
import json
import os

import pytest

from common.errors import UsageError
from components.feature_gen.component import FeatureGen

import synthetic_transactions as synthetic


def build_pipeline(root, data):
    from tfx import v1 as tfx

    feature_gen = FeatureGen(input_base=data, eval_days=3)
    statistics_gen = tfx.components.StatisticsGen(examples=feature_gen.outputs["examples"])
    return tfx.dsl.Pipeline(
        pipeline_name="feature_gen_test",
        pipeline_root=os.path.join(root, "pipeline"),
        components=[feature_gen, statistics_gen],
        enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.sqlite")))


def executions(root, component_class):
    """(state name, execution) of a component's executions, oldest first."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = os.path.join(root, "metadata.sqlite")
    store = metadata_store.MetadataStore(config)
    found = store.get_executions_by_type(f"{component_class.__module__}.{component_class.__name__}")
    states = metadata_store_pb2.Execution.State
    return store, [(states.Name(e.last_known_state), e) for e in sorted(found, key=lambda e: e.id)]


def output_examples(store, execution):
    events = [e for e in store.get_events_by_execution_ids([execution.id])
              if e.type == e.OUTPUT]
    return store.get_artifacts_by_id([e.artifact_id for e in events])


def test_second_run_on_unchanged_data_is_cached_and_a_changed_file_reruns(tmp_path):
    from tfx import v1 as tfx
    from tfx.components.statistics_gen.component import StatisticsGen
    from tfx.types import artifact_utils
    import tensorflow_data_validation as tfdv

    root, data = str(tmp_path), str(tmp_path / "raw")
    paths = synthetic.write_partitions(synthetic.random_stream(600, days=8), data)
    runner = tfx.orchestration.LocalDagRunner()

    runner.run(build_pipeline(root, data))
    store, runs = executions(root, FeatureGen)
    assert [state for state, _ in runs] == ["COMPLETE"]
    examples, = output_examples(store, runs[0][1])
    props = examples.custom_properties
    assert artifact_utils.decode_split_names(examples.properties["split_names"].string_value) == [
        "train", "eval"]
    assert props["payload_format"].string_value == "FORMAT_TF_EXAMPLE"
    assert props["file_format"].string_value == "tfrecords_gzip"
    assert props["span"].int_value == 0 and props["input_fingerprint"].string_value
    assert props["num_examples_train"].int_value + props["num_examples_eval"].int_value == 600
    for split in ("train", "eval"):
        assert os.listdir(os.path.join(examples.uri, f"Split-{split}"))

    # StatisticsGen reads the artifact like any ExampleGen output.
    _, stats_runs = executions(root, StatisticsGen)
    statistics, = output_examples(store, stats_runs[0][1])
    eval_stats = tfdv.load_stats_binary(
        os.path.join(statistics.uri, "Split-eval", "FeatureStats.pb"))
    assert eval_stats.datasets[0].num_examples == props["num_examples_eval"].int_value

    runner.run(build_pipeline(root, data))
    _, runs = executions(root, FeatureGen)
    assert [state for state, _ in runs] == ["COMPLETE", "CACHED"]

    with open(paths[-1], "a") as f:
        last = open(paths[-1]).read().splitlines()[-1].split(",")
        last[0] += "-copy"
        f.write(",".join(last) + "\n")
    runner.run(build_pipeline(root, data))
    _, runs = executions(root, FeatureGen)
    assert [state for state, _ in runs] == ["COMPLETE", "CACHED", "COMPLETE"]
    _, stats_runs = executions(root, StatisticsGen)
    assert [state for state, _ in stats_runs] == ["COMPLETE", "CACHED", "COMPLETE"]
    rerun, = output_examples(store, runs[-1][1])
    assert rerun.custom_properties["num_examples_eval"].int_value == (
        props["num_examples_eval"].int_value + 1)


def test_component_carries_its_execution_properties():
    component = FeatureGen(input_base="/data/raw", eval_start_date="2024-03-01", eval_days=2)
    params = component.exec_properties
    assert params["input_base"] == "/data/raw"
    assert params["eval_start_date"] == "2024-03-01" and params["eval_days"] == 2
    # The FileBasedDriver fingerprints the files this pattern matches.
    assert json.loads(params["input_config"])["splits"] == [
        {"name": "raw", "pattern": "date=*/transactions.csv"}]


@pytest.mark.parametrize("kwargs, message", [
    ({"eval_start_date": "2024-3-1"}, "eval_start_date: '2024-3-1' is not a YYYY-MM-DD date"),
    ({"eval_days": 0}, "eval_days must be at least 1"),
])
def test_bad_split_settings_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        FeatureGen(input_base="/data/raw", **kwargs)

"""create_pipeline builds the riskpipe DAG from a config, without running anything."""
import dataclasses
import json

import pytest

from pipeline import pipeline as dag
from common.errors import UsageError
from pipeline.configs import (EvalConfig, FeatureGenConfig, PipelineConfig, TrainerConfig,
                              ValidationConfig)

CONFIG = PipelineConfig(
    pipeline_name="fraud-test", model_name="fraud_v2", data_root="/data/raw",
    pipeline_root="/runs/pipeline", serving_root="/srv/models", schema_path="/cfg/schema.pbtxt",
    beam_args=["--direct_num_workers=2"], enable_cache=False,
    feature_gen=FeatureGenConfig(eval_start_date="2026-02-01", eval_days=3),
    trainer=TrainerConfig(hidden_units=(8, 4), epochs=2, target_sparsity=0.7),
    evaluation=EvalConfig(threshold=0.8, min_precision=0.3, min_recall=0.4, max_drop=0.02,
                          slice_features=("merchant_category", "channel")),
    validation=ValidationConfig(drift_action="stop", psi_threshold=0.2,
                                serving_statistics="/cfg/serving_stats.tfrecord"),
)


@pytest.fixture(scope="module")
def built():
    pipeline = dag.create_pipeline(CONFIG)
    return pipeline, {component.id: component for component in pipeline.components}


def test_every_component_is_in_the_dag(built):
    _, nodes = built
    assert set(nodes) == {
        dag.FEATURE_GEN, dag.STATISTICS_GEN, dag.SCHEMA_IMPORTER, dag.EXAMPLE_VALIDATOR,
        dag.PREVIOUS_STATISTICS_RESOLVER, dag.ANOMALY_GATE, dag.TRANSFORM, dag.TRAINER,
        dag.BLESSED_MODEL_RESOLVER, dag.EVALUATOR, dag.PUSHER}


@pytest.mark.parametrize("before, after", [
    (dag.FEATURE_GEN, dag.STATISTICS_GEN),
    (dag.STATISTICS_GEN, dag.EXAMPLE_VALIDATOR),
    (dag.SCHEMA_IMPORTER, dag.EXAMPLE_VALIDATOR),
    (dag.EXAMPLE_VALIDATOR, dag.ANOMALY_GATE),
    (dag.STATISTICS_GEN, dag.ANOMALY_GATE),
    (dag.SCHEMA_IMPORTER, dag.ANOMALY_GATE),
    (dag.PREVIOUS_STATISTICS_RESOLVER, dag.ANOMALY_GATE),
    (dag.ANOMALY_GATE, dag.TRANSFORM),
    (dag.TRANSFORM, dag.TRAINER),
    (dag.TRAINER, dag.EVALUATOR),
    (dag.BLESSED_MODEL_RESOLVER, dag.EVALUATOR),
    (dag.EVALUATOR, dag.PUSHER),
])
def test_components_run_in_dependency_order(built, before, after):
    pipeline, nodes = built
    order = [component.id for component in pipeline.components]
    assert before in {node.id for node in nodes[after].upstream_nodes}
    assert order.index(before) < order.index(after)


def test_transform_waits_for_the_anomaly_gate(built):
    _, nodes = built
    # Bad data must stop the run before anything is fitted to it.
    assert dag.ANOMALY_GATE in {node.id for node in nodes[dag.TRANSFORM].upstream_nodes}


def test_the_gate_compares_with_the_statistics_an_earlier_gate_passed(built):
    _, nodes = built
    gate = nodes[dag.ANOMALY_GATE]
    assert gate.inputs["previous_statistics"].producer_component_id == \
        dag.PREVIOUS_STATISTICS_RESOLVER
    resolver = nodes[dag.PREVIOUS_STATISTICS_RESOLVER]
    assert resolver.exec_properties["resolver_class"].__name__ == "LatestArtifactStrategy"
    # Its channel is a query of MLMD (the gate's outputs of earlier runs), not an edge.
    channel = resolver.raw_inputs["statistics"]
    assert (channel.producer_component_id, channel.output_key) == (
        dag.ANOMALY_GATE, "validated_statistics")
    assert not resolver.upstream_nodes


def test_validation_settings_reach_the_gate(built):
    _, nodes = built
    props = nodes[dag.ANOMALY_GATE].exec_properties
    assert props["drift_action"] == "stop"
    assert props["psi_threshold"] == 0.2
    assert props["serving_statistics"] == "/cfg/serving_stats.tfrecord"
    stats_options = json.loads(nodes[dag.STATISTICS_GEN].exec_properties["stats_options_json"])
    assert stats_options["_num_quantiles_histogram_buckets"] == 100


@pytest.mark.parametrize("validation, message", [
    (ValidationConfig(drift_action="halt"), "validation.drift_action must be one of warn, stop"),
    (ValidationConfig(psi_threshold=0), "validation.psi_threshold must be a number > 0"),
])
def test_bad_validation_settings_are_usage_errors(validation, message):
    with pytest.raises(UsageError, match=message):
        dag.create_pipeline(dataclasses.replace(CONFIG, validation=validation))


def test_pipeline_settings_come_from_the_config(built):
    pipeline, _ = built
    assert pipeline.pipeline_info.pipeline_name == "fraud-test"
    assert pipeline.pipeline_info.pipeline_root == "/runs/pipeline"
    assert pipeline.enable_cache is False
    assert pipeline.beam_pipeline_args == ["--direct_num_workers=2"]
    # The runner, not create_pipeline, decides where metadata lives.
    assert pipeline.metadata_connection_config is None


def test_feature_gen_and_schema_settings_flow_in(built):
    _, nodes = built
    props = nodes[dag.FEATURE_GEN].exec_properties
    assert props["input_base"] == "/data/raw"
    assert props["eval_start_date"] == "2026-02-01"
    assert props["eval_days"] == 3
    assert nodes[dag.SCHEMA_IMPORTER].exec_properties["schema_file"] == "/cfg/schema.pbtxt"


def test_default_schema_is_the_curated_file():
    pipeline = dag.create_pipeline(dataclasses.replace(CONFIG, schema_path=""))
    importer = next(c for c in pipeline.components if c.id == dag.SCHEMA_IMPORTER)
    assert importer.exec_properties["schema_file"].endswith("schema/schema.pbtxt")


def test_trainer_gets_the_trainer_config_and_raw_examples(built):
    _, nodes = built
    trainer = nodes[dag.TRAINER]
    assert json.loads(trainer.exec_properties["custom_config"]) == json.loads(
        json.dumps(dataclasses.asdict(CONFIG.trainer)))
    assert trainer.exec_properties["run_fn"] == dag.RUN_FN
    assert trainer.inputs["examples"].producer_component_id == dag.FEATURE_GEN
    assert trainer.inputs["transform_graph"].producer_component_id == dag.TRANSFORM


def test_evaluator_blesses_with_the_configured_bounds(built):
    _, nodes = built
    eval_config = json.loads(nodes[dag.EVALUATOR].exec_properties["eval_config"])
    spec = eval_config["model_specs"][0]
    assert spec["signature_name"] == "serving_default"
    assert spec["label_key"] == "is_fraud"
    metrics = {m["config"] and json.loads(m["config"])["name"]: m
               for m in eval_config["metrics_specs"][0]["metrics"]}
    precision = metrics["precision"]
    assert json.loads(precision["config"])["thresholds"] == [0.8]
    threshold = precision["per_slice_thresholds"][0]["threshold"]
    assert threshold["value_threshold"]["lower_bound"] == 0.3
    assert threshold["change_threshold"]["absolute"] == -0.02
    assert threshold["change_threshold"]["direction"] == "HIGHER_IS_BETTER"
    recall = metrics["recall"]["per_slice_thresholds"][0]["threshold"]
    assert recall["value_threshold"]["lower_bound"] == 0.4
    slices = [s.get("feature_keys", []) for s in eval_config["slicing_specs"]]
    assert slices == [[], ["merchant_category"], ["channel"]]


def test_evaluator_compares_with_the_latest_blessed_model(built):
    _, nodes = built
    baseline = nodes[dag.EVALUATOR].inputs["baseline_model"]
    assert baseline.producer_component_id == dag.BLESSED_MODEL_RESOLVER
    strategy = nodes[dag.BLESSED_MODEL_RESOLVER].exec_properties["resolver_class"]
    assert strategy.__name__ == "LatestBlessedModelStrategy"


def test_pusher_pushes_under_serving_root_model_name_only_when_blessed(built):
    _, nodes = built
    pusher = nodes[dag.PUSHER]
    destination = json.loads(pusher.exec_properties["push_destination"])
    assert destination["filesystem"]["base_directory"] == "/srv/models/fraud_v2"
    assert pusher.inputs["model_blessing"].producer_component_id == dag.EVALUATOR


def test_create_pipeline_reads_no_files(tmp_path):
    # A pipeline over paths that do not exist builds fine: nothing is read or created.
    missing = tmp_path / "nowhere"
    config = dataclasses.replace(CONFIG, data_root=str(missing / "raw"),
                                 pipeline_root=str(missing / "root"),
                                 serving_root=str(missing / "srv"),
                                 schema_path=str(missing / "schema.pbtxt"))
    dag.create_pipeline(config)
    assert not missing.exists()

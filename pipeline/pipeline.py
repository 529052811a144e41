"""The riskpipe TFX pipeline, built from a PipelineConfig.

`create_pipeline` only assembles components: it reads no file and touches no
store, so the same DAG runs locally (pipeline/local_runner.py) and compiles
for Kubeflow.

    FeatureGen --> StatisticsGen --> ExampleValidator --> AnomalyGate
    ImportSchemaGen (schema.pbtxt) -----^                     ^   | must pass
    Resolver (statistics an earlier AnomalyGate passed) ------+   |
    FeatureGen + schema --> Transform <---------------------------+
    FeatureGen + Transform graph --> Trainer --> Evaluator --> Pusher
    Resolver (latest blessed model) -------------^ baseline

AnomalyGate measures drift against the statistics the latest earlier run's gate
passed, so a run stopped on drift never becomes the reference. On a first run
there are none: TFX 1.16's LatestArtifactStrategy then finds nothing, its
resolver execution is recorded as failed (an InputResolutionError the local
runner logs and goes past) and the gate compares with nothing. On Kubeflow,
TFX compiles that strategy into a query by artifact type alone, so there the
reference is the latest ExampleStatistics of any producer.
"""
import dataclasses
import os
from typing import Optional

import tensorflow_data_validation as tfdv
from tfx import v1 as tfx

from components.anomaly_gate.component import AnomalyGate
from components.anomaly_gate.drift import QUANTILES_BUCKETS
from components.anomaly_gate.executor import VALIDATED_STATISTICS_KEY
from components.feature_gen.component import FeatureGen
from components.pusher.component import Pusher
from pipeline.configs import PipelineConfig
from pipeline.eval_config import build_eval_config
from pipeline.schema_update import DEFAULT_SCHEMA_PATH

PREPROCESSING_FN = "components.preprocessing.preprocessing_fn"
RUN_FN = "components.trainer.run_fn"

# Node ids, as they appear in MLMD and in error messages.
FEATURE_GEN = "FeatureGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_IMPORTER = "ImportSchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
ANOMALY_GATE = "AnomalyGate"
TRANSFORM = "Transform"
TRAINER = "Trainer"
PREVIOUS_STATISTICS_RESOLVER = "previous_statistics_resolver"
BLESSED_MODEL_RESOLVER = "latest_blessed_model_resolver"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"


def serving_model_dir(config: PipelineConfig) -> str:
    """Where versions of the model are pushed: <serving_root>/<model_name>."""
    return os.path.join(config.serving_root, config.model_name)


def _data_components(config: PipelineConfig):
    feature_gen = FeatureGen(
        input_base=config.data_root,
        eval_start_date=config.feature_gen.eval_start_date,
        eval_days=config.feature_gen.eval_days,
    ).with_id(FEATURE_GEN)
    statistics_gen = tfx.components.StatisticsGen(
        examples=feature_gen.outputs["examples"],
        # Fine quantiles: AnomalyGate's PSI interpolates within them.
        stats_options=tfdv.StatsOptions(num_quantiles_histogram_buckets=QUANTILES_BUCKETS),
    ).with_id(STATISTICS_GEN)
    schema_importer = tfx.components.ImportSchemaGen(
        schema_file=config.schema_path or DEFAULT_SCHEMA_PATH).with_id(SCHEMA_IMPORTER)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_importer.outputs["schema"]).with_id(EXAMPLE_VALIDATOR)
    previous_statistics = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        statistics=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ExampleStatistics,
                                   producer_component_id=ANOMALY_GATE,
                                   output_key=VALIDATED_STATISTICS_KEY),
    ).with_id(PREVIOUS_STATISTICS_RESOLVER)
    gate = AnomalyGate(
        anomalies=example_validator.outputs["anomalies"],
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_importer.outputs["schema"],
        previous_statistics=previous_statistics.outputs["statistics"],
        drift_action=config.validation.drift_action,
        psi_threshold=config.validation.psi_threshold,
        serving_statistics=config.validation.serving_statistics,
    ).with_id(ANOMALY_GATE)
    return [feature_gen, statistics_gen, schema_importer, example_validator,
            previous_statistics, gate]


def _model_components(config: PipelineConfig, feature_gen, schema_importer, gate):
    examples = feature_gen.outputs["examples"]
    schema = schema_importer.outputs["schema"]
    # The Trainer applies the Transform graph to the raw examples itself (the
    # same path the serving signatures take), so nothing is materialized; and
    # StatisticsGen already described the data.
    transform = tfx.components.Transform(
        examples=examples, schema=schema, preprocessing_fn=PREPROCESSING_FN,
        materialize=False, disable_statistics=True,
    ).with_id(TRANSFORM)
    # Bad data must stop the run before anything is fitted to it.
    transform.add_upstream_node(gate)
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=dataclasses.asdict(config.trainer),
    ).with_id(TRAINER)
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(BLESSED_MODEL_RESOLVER)
    evaluator = tfx.components.Evaluator(
        examples=examples,
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        example_splits=["eval"],
        eval_config=build_eval_config(config.evaluation),
    ).with_id(EVALUATOR)
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=serving_model_dir(config))),
    ).with_id(PUSHER)
    return [transform, trainer, baseline, evaluator, pusher]


def create_pipeline(config: PipelineConfig,
                    metadata_connection_config: Optional[object] = None) -> tfx.dsl.Pipeline:
    """The riskpipe DAG for `config`; the runner supplies the metadata connection."""
    data = _data_components(config)
    feature_gen, _, schema_importer, _, _, gate = data
    model = _model_components(config, feature_gen, schema_importer, gate)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=data + model,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_args),
    )

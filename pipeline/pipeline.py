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

A credit run (config.task "credit") takes the same DAG with CsvExampleGen over
the staged application table in place of FeatureGen, SchemaGen (infer on the
first run) in place of ImportSchemaGen unless a schema is given, and the
credit preprocessing_fn, run_fn and EvalConfig.

StatisticsGen (components/statistics_gen/) describes a FeatureGen split of
more than statistics.max_examples examples by a random sample of that many.

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

from common.errors import UsageError
from components.anomaly_gate.component import AnomalyGate
from components.anomaly_gate.drift import QUANTILES_BUCKETS
from components.anomaly_gate.executor import VALIDATED_STATISTICS_KEY
from components.credit.table import (ALL_DIR, EVAL_DIR, STAGED_FILE, TRAIN_DIR, StagedTable,
                                     transform_config)
from components.evaluator.component import Evaluator
from components.feature_gen.component import FeatureGen
from components.pusher.component import Pusher
from components.statistics_gen.component import StatisticsGen
from pipeline.configs import TASKS, PipelineConfig
from pipeline.eval_config import build_credit_eval_config, build_eval_config
from pipeline.schema_update import DEFAULT_SCHEMA_PATH

PREPROCESSING_FN = "components.preprocessing.preprocessing_fn"
RUN_FN = "components.trainer.run_fn"
CREDIT_PREPROCESSING_FN = "components.credit.preprocessing.preprocessing_fn"
CREDIT_RUN_FN = "components.credit.trainer.run_fn"

# Node ids, as they appear in MLMD and in error messages.
FEATURE_GEN = "FeatureGen"
EXAMPLE_GEN = "CsvExampleGen"
# The node that produced a run's examples: fraud's FeatureGen or credit's CsvExampleGen.
EXAMPLE_SOURCES = (FEATURE_GEN, EXAMPLE_GEN)
STATISTICS_GEN = "StatisticsGen"
SCHEMA_IMPORTER = "ImportSchemaGen"
SCHEMA_GEN = "SchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
ANOMALY_GATE = "AnomalyGate"
TRANSFORM = "Transform"
TRAINER = "Trainer"
PREVIOUS_STATISTICS_RESOLVER = "previous_statistics_resolver"
BLESSED_MODEL_RESOLVER = "latest_blessed_model_resolver"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"


# The hash split of a credit table without dates: eval_fraction of these buckets.
HASH_BUCKETS = 100


def serving_model_dir(config: PipelineConfig) -> str:
    """Where versions of the model are pushed: <serving_root>/<model_name>."""
    return os.path.join(config.serving_root, config.model_name)


def _credit_example_gen(config: PipelineConfig, table: StagedTable):
    """CsvExampleGen over the staged table: its train/eval files, or a hash split of it."""
    if table.eval_start_date:
        input_config = tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name=split, pattern=f"{split}/{STAGED_FILE}")
            for split in (TRAIN_DIR, EVAL_DIR)])
        return tfx.components.CsvExampleGen(input_base=table.directory,
                                            input_config=input_config)
    eval_buckets = max(1, round(HASH_BUCKETS * config.credit.eval_fraction))
    split_config = tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=HASH_BUCKETS - eval_buckets),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=eval_buckets)])
    if table.table.id:  # else the hash of the whole example
        split_config.partition_feature_name = table.table.id
    output_config = tfx.proto.Output(split_config=split_config)
    input_config = tfx.proto.Input(splits=[
        tfx.proto.Input.Split(name="single_split", pattern=f"{ALL_DIR}/{STAGED_FILE}")])
    return tfx.components.CsvExampleGen(input_base=table.directory, input_config=input_config,
                                        output_config=output_config)


def _examples_and_schema(config: PipelineConfig, table: Optional[StagedTable]):
    """The example source, StatisticsGen and the schema node of the task."""
    if config.task == "credit":
        example_gen = _credit_example_gen(config, table).with_id(EXAMPLE_GEN)
    else:
        example_gen = FeatureGen(
            input_base=config.data_root,
            eval_start_date=config.feature_gen.eval_start_date,
            eval_days=config.feature_gen.eval_days,
        ).with_id(FEATURE_GEN)
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"],
        # Fine quantiles: AnomalyGate's PSI interpolates within them.
        stats_options=tfdv.StatsOptions(num_quantiles_histogram_buckets=QUANTILES_BUCKETS),
        # Only FeatureGen records its split sizes: credit tables are read whole.
        max_examples=config.statistics.max_examples,
    ).with_id(STATISTICS_GEN)
    if config.task == "credit" and not config.schema_path:
        # Every column variable-length: any of a bank's columns may be missing
        # in an application, and the Transform imputes it.
        schema = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=False).with_id(SCHEMA_GEN)
    else:
        schema = tfx.components.ImportSchemaGen(
            schema_file=config.schema_path or DEFAULT_SCHEMA_PATH).with_id(SCHEMA_IMPORTER)
    return example_gen, statistics_gen, schema


def _data_components(config: PipelineConfig, table: Optional[StagedTable]):
    example_gen, statistics_gen, schema_node = _examples_and_schema(config, table)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_node.outputs["schema"]).with_id(EXAMPLE_VALIDATOR)
    previous_statistics = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        statistics=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ExampleStatistics,
                                   producer_component_id=ANOMALY_GATE,
                                   output_key=VALIDATED_STATISTICS_KEY),
    ).with_id(PREVIOUS_STATISTICS_RESOLVER)
    gate = AnomalyGate(
        anomalies=example_validator.outputs["anomalies"],
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_node.outputs["schema"],
        previous_statistics=previous_statistics.outputs["statistics"],
        drift_action=config.validation.drift_action,
        psi_threshold=config.validation.psi_threshold,
        serving_statistics=config.validation.serving_statistics,
    ).with_id(ANOMALY_GATE)
    return [example_gen, statistics_gen, schema_node, example_validator,
            previous_statistics, gate]


def _trainer_modules(config: PipelineConfig, table: Optional[StagedTable]):
    """(preprocessing_fn, its custom_config, run_fn, its custom_config) of the task."""
    trainer = dataclasses.asdict(config.trainer)
    if config.task != "credit":
        return (PREPROCESSING_FN, {"exclude_features": list(config.features.exclude)}, RUN_FN,
                trainer)
    columns = transform_config(table.table)
    return CREDIT_PREPROCESSING_FN, columns, CREDIT_RUN_FN, {
        "trainer": trainer, "columns": columns,
        "scale": dataclasses.asdict(config.credit.scale),
        "reason_codes": config.credit.reason_codes}


def _eval_config(config: PipelineConfig, table: Optional[StagedTable]):
    if config.task == "credit":
        return build_credit_eval_config(config.credit.blessing, table.table.label)
    return build_eval_config(config.evaluation)


def _model_components(config: PipelineConfig, table: Optional[StagedTable], example_gen,
                      schema_node, gate):
    examples = example_gen.outputs["examples"]
    schema = schema_node.outputs["schema"]
    # The Trainer applies the Transform graph to the raw examples itself (the
    # same path the serving signatures take), so nothing is materialized; and
    # StatisticsGen already described the data. The analysis runs as a TF1 graph
    # (force_tf_compat_v1): about an eighth less CPU than tracing it as a tf.function.
    preprocessing_fn, transform_config_, run_fn, trainer_config = _trainer_modules(config, table)
    transform = tfx.components.Transform(
        examples=examples, schema=schema, preprocessing_fn=preprocessing_fn,
        materialize=False, disable_statistics=True, custom_config=transform_config_,
        force_tf_compat_v1=True,
    ).with_id(TRANSFORM)
    # Bad data must stop the run before anything is fitted to it.
    transform.add_upstream_node(gate)
    trainer = tfx.components.Trainer(
        run_fn=run_fn,
        examples=examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=trainer_config,
    ).with_id(TRAINER)
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(BLESSED_MODEL_RESOLVER)
    evaluator = Evaluator(
        examples=examples,
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        example_splits=["eval"],
        eval_config=_eval_config(config, table),
    ).with_id(EVALUATOR)
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=serving_model_dir(config))),
    ).with_id(PUSHER)
    return [transform, trainer, baseline, evaluator, pusher]


def create_pipeline(config: PipelineConfig, metadata_connection_config: Optional[object] = None,
                    credit_table: Optional[StagedTable] = None) -> tfx.dsl.Pipeline:
    """The riskpipe DAG for `config`; the runner supplies the metadata connection.

    A credit run (config.task "credit") also needs the staged table
    (components/credit/table.py): its layout and the roles of its columns.
    """
    if config.task not in TASKS:
        raise UsageError(f"task must be one of {', '.join(TASKS)}, got {config.task!r}")
    if config.task == "credit" and credit_table is None:
        raise UsageError("a credit pipeline needs the staged application table")
    data = _data_components(config, credit_table)
    example_gen, _, schema_node, _, _, gate = data
    model = _model_components(config, credit_table, example_gen, schema_node, gate)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=data + model,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_args),
    )

"""FeatureGen: the pipeline's example source, a custom TFX component.

It reads the raw daily transaction partitions under `input_base`
(`date=YYYY-MM-DD/transactions.csv`), computes the features of
components/features.py for every transaction and emits a standard Examples
artifact with the splits 'train' (earlier days) and 'eval' (later days).

It reuses ExampleGen's FileBasedDriver, which runs before the cache check and
records a fingerprint of the raw files (count, size, modification time) among
the execution properties: an unchanged input directory reuses the cached
output, a changed file re-runs the component.
"""
from tfx import types
from tfx.components.example_gen import driver
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from common.errors import UsageError
from components.feature_gen import executor
from components.feature_gen.raw_data import parse_date
from components.transactions import PARTITION_GLOB

RAW_SPLIT_NAME = "raw"


class FeatureGenSpec(ComponentSpec):
    """FeatureGen's parameters and output."""

    PARAMETERS = {
        standard_component_specs.INPUT_BASE_KEY: ExecutionParameter(type=str),
        # Read by the FileBasedDriver: which files the input fingerprint covers.
        standard_component_specs.INPUT_CONFIG_KEY: ExecutionParameter(type=example_gen_pb2.Input),
        executor.EVAL_START_DATE_KEY: ExecutionParameter(type=str),
        executor.EVAL_DAYS_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {}
    OUTPUTS = {
        standard_component_specs.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }


class FeatureGen(base_beam_component.BaseBeamComponent):
    """Raw transactions -> featurized tf.Examples, split out of time.

    Args:
      input_base: the directory of the raw daily partitions.
      eval_start_date: 'YYYY-MM-DD' (UTC); transactions on or after it form the
        eval split. Empty: the last `eval_days` days of the data do.
      eval_days: the length of the eval period when `eval_start_date` is empty.
    """

    SPEC_CLASS = FeatureGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = driver.FileBasedDriver

    def __init__(self, input_base: str, eval_start_date: str = "", eval_days: int = 7):
        if eval_start_date:
            try:
                parse_date(eval_start_date)
            except ValueError as err:
                raise UsageError(f"feature_gen.eval_start_date: {err}") from err
        if eval_days < 1:
            raise UsageError(f"feature_gen.eval_days must be at least 1, got {eval_days}")
        input_config = example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name=RAW_SPLIT_NAME, pattern=PARTITION_GLOB)])
        spec = FeatureGenSpec(
            input_base=input_base,
            input_config=input_config,
            eval_start_date=eval_start_date,
            eval_days=eval_days,
            examples=types.Channel(type=standard_artifacts.Examples))
        super().__init__(spec=spec)

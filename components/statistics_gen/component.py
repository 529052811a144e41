"""StatisticsGen: the standard TFX StatisticsGen with a cap on the examples it reads per split.

Same inputs, outputs and parameters as tfx.components.StatisticsGen, plus
`max_examples`: a split known to hold more rows is described from a random
sample of about that many records, drawn before decoding (executor.py
explains why that is enough).
"""
from typing import List, Optional

import tensorflow_data_validation as tfdv
from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils

from components.statistics_gen import executor


class StatisticsGenSpec(standard_component_specs.StatisticsGenSpec):
    """TFX's StatisticsGen spec and the row cap."""

    PARAMETERS = {
        **standard_component_specs.StatisticsGenSpec.PARAMETERS,
        executor.MAX_EXAMPLES_KEY: ExecutionParameter(type=int),
    }


class StatisticsGen(base_beam_component.BaseBeamComponent):
    """tfx.components.StatisticsGen on at most about `max_examples` examples per split.

    Args:
      examples, schema, stats_options, exclude_splits: as for TFX's StatisticsGen.
      max_examples: splits recorded as larger are sampled down to about this
        many examples; 0 computes every split on all of its examples.
    """

    SPEC_CLASS = StatisticsGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, schema: Optional[types.BaseChannel] = None,
                 stats_options: Optional[tfdv.StatsOptions] = None,
                 exclude_splits: Optional[List[str]] = None, max_examples: int = 0):
        super().__init__(spec=StatisticsGenSpec(
            examples=examples,
            schema=schema,
            stats_options_json=stats_options.to_json() if stats_options else None,
            exclude_splits=json_utils.dumps(exclude_splits or []),
            max_examples=max_examples,
            statistics=types.Channel(type=standard_artifacts.ExampleStatistics)))

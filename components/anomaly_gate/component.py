"""AnomalyGate: a TFX component that fails on ExampleValidator's anomalies or on drift.

TFX 1.16's ExampleValidator records anomalies but never fails, so nothing
downstream would stop on bad data. Transform depends on this gate; a failed
gate ends the run before any model is trained or pushed.

The gate also measures drift: this run's statistics against the statistics an
earlier run's gate passed (`previous_statistics`, none on a first run), and
the train split against serving statistics when given (skew); see drift.py.
Drift beyond the thresholds fails the gate when `drift_action` is 'stop' and
is only reported when it is 'warn'. The statistics it passes are its output,
with the drift report (drift.json), so a run that stopped never becomes the
reference of the next.
"""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from common.errors import UsageError
from components.anomaly_gate import DRIFT_ACTIONS, executor


class AnomalyGateSpec(ComponentSpec):
    """Inputs: the anomalies, statistics and schema; an earlier run's validated statistics."""

    PARAMETERS = {
        executor.DRIFT_ACTION_KEY: ExecutionParameter(type=str),
        executor.PSI_THRESHOLD_KEY: ExecutionParameter(type=float),
        executor.SERVING_STATISTICS_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        executor.ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        executor.STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
        executor.SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
        executor.PREVIOUS_STATISTICS_KEY: ChannelParameter(
            type=standard_artifacts.ExampleStatistics, optional=True),
    }
    OUTPUTS = {
        executor.VALIDATED_STATISTICS_KEY: ChannelParameter(
            type=standard_artifacts.ExampleStatistics),
    }


class AnomalyGate(base_component.BaseComponent):
    """Fails on any anomaly, naming the feature and why, and on drift when told to stop.

    Args:
      anomalies, statistics, schema: ExampleValidator's, StatisticsGen's and
        ImportSchemaGen's outputs.
      previous_statistics: the validated statistics of an earlier run (a
        resolver's output, empty on a first run), or None.
      drift_action: 'warn' or 'stop' on drift beyond the thresholds.
      psi_threshold: the PSI above which a feature has drifted.
      serving_statistics: a statistics file of serving data, or '' for none.
    """

    SPEC_CLASS = AnomalyGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, anomalies: types.BaseChannel, statistics: types.BaseChannel,
                 schema: types.BaseChannel, previous_statistics: Optional[types.BaseChannel],
                 drift_action: str, psi_threshold: float, serving_statistics: str = ""):
        if drift_action not in DRIFT_ACTIONS:
            raise UsageError(f"validation.drift_action must be one of {', '.join(DRIFT_ACTIONS)}, "
                             f"got {drift_action!r}")
        if isinstance(psi_threshold, bool) or not isinstance(psi_threshold, (int, float)) \
                or not psi_threshold > 0:
            raise UsageError(
                f"validation.psi_threshold must be a number > 0, got {psi_threshold!r}")
        super().__init__(spec=AnomalyGateSpec(
            anomalies=anomalies, statistics=statistics, schema=schema,
            previous_statistics=previous_statistics, drift_action=drift_action,
            psi_threshold=float(psi_threshold), serving_statistics=serving_statistics,
            validated_statistics=types.Channel(type=standard_artifacts.ExampleStatistics)))

"""Evaluator: tfx.components.Evaluator (same spec, inputs, outputs and parameters) run by
riskpipe's executor, which keeps TFMA's scoring calls from printing their batches
(executor.py says why that costs)."""
from tfx.components.evaluator import component as tfx_evaluator
from tfx.dsl.components.base import executor_spec

from components.evaluator import executor


class Evaluator(tfx_evaluator.Evaluator):
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

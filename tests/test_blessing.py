"""The blessing gate: a model is pushed only when it clears the bounds and does not regress.

Both tests rerun the e2e pipeline with a changed config on its pipeline root;
the data components come from the cache.
"""
import pytest

from pipeline import pipeline as dag
from pipeline import mlmd_queries, run_summary

pytestmark = pytest.mark.e2e


def _rerun(pipeline_run, run_riskpipe, tiny_config, tmp_path, overrides):
    """Reruns with the tiny config + overrides; returns (result, summary, node states)."""
    assert pipeline_run.result.exit_code == 0, pipeline_run.result.stderr
    versions = pipeline_run.versions()
    before = mlmd_queries.last_execution_id(pipeline_run.metadata_path)
    config = tiny_config(str(tmp_path / "config.yaml"), overrides)
    result = run_riskpipe(pipeline_run.run_args(config_file=config))
    assert result.exit_code == 0, result.stderr
    assert pipeline_run.versions() == versions, "a model was pushed"
    states = {node: state for node, state, _ in pipeline_run.executions(before)}
    summary = run_summary.summarize(pipeline_run.metadata_path, "riskpipe")
    return result, summary, states


def test_bounds_out_of_reach_push_nothing(pipeline_run, run_riskpipe, tiny_config, tmp_path):
    result, summary, states = _rerun(pipeline_run, run_riskpipe, tiny_config, tmp_path, {
        "evaluation": {"min_precision": 1.0, "min_recall": 1.0}})
    # The model is the cached one; only its evaluation against the new bounds ran.
    assert states[dag.TRAINER] == "cached"
    assert states[dag.EVALUATOR] == "ran"
    assert summary.blessed is False
    assert summary.pushed_to is None
    assert summary.metrics["precision"] < 1.0 or summary.metrics["recall"] < 1.0
    failed = " ".join(summary.validation_failures)
    assert "below the lower bound 1" in failed
    assert "NOT blessed" in result.stdout and "nothing pushed" in result.stdout


def test_model_worse_than_the_blessed_baseline_is_not_pushed(pipeline_run, run_riskpipe,
                                                              tiny_config, tmp_path):
    # A model that barely trains: the learning rate leaves it near its initialization.
    # Lower bounds of 0 leave the comparison with the blessed model as the only gate.
    result, summary, states = _rerun(pipeline_run, run_riskpipe, tiny_config, tmp_path, {
        "trainer": {"learning_rate": 1e-9, "epochs": 1},
        "evaluation": {"min_precision": 0.0, "min_recall": 0.0, "max_drop": 0.01}})
    assert states[dag.TRAINER] == "ran"
    assert summary.baseline_metrics, "the Evaluator had no blessed baseline to compare with"
    assert summary.blessed is False
    assert summary.pushed_to is None
    assert any("versus the baseline" in line for line in summary.validation_failures), \
        summary.validation_failures
    assert "NOT blessed" in result.stdout

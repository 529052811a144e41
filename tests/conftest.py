"""Session fixtures shared by riskpipe's tests: one end-to-end pipeline run on tiny data.

    def test_something(pushed_model):      # <serving_root>/<model_name>
        version = sorted(os.listdir(pushed_model))[-1]
        tf.saved_model.load(os.path.join(pushed_model, version))

`pipeline_run` runs `riskpipe run` once per session (about a minute and a half
on 2 cores) and is reused by every test that needs a trained, evaluated and
pushed model; tests that rerun the pipeline share its pipeline root, so they
only re-execute what their change affects. `riskpipe` runs in process through
`run_riskpipe`.
"""
import sys

from common import runtime

# Before any TensorFlow import: Transform and tfmot need Keras 2 (tf-keras).
runtime.use_keras_2()
runtime.quiet_startup(verbose=False)
sys.unraisablehook = runtime.skip_tensorflow_teardown_errors

import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
from typing import Callable, List, Optional, Tuple  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

# 5,000 transactions over 20 days (the last 5 are the eval split), ~6% fraud:
# enough frauds for a model that clearly learns (eval ROC-AUC ~0.95).
TINY_DATA = {"transactions": 5000, "days": 20, "fraud_rate": 0.06, "seed": 3}
# A small model trained in well under a minute, and bounds it clears with room
# (it reaches precision ~0.4 and recall ~0.8 at 0.05: the raw 0.5 of balanced
# weights is the training fraud share, 5.3%, on the calibrated scale; without
# synthetic frauds, which would halve that share).
TINY_CONFIG = {
    "feature_gen": {"eval_days": 5},
    "trainer": {"hidden_units": [32, 16], "epochs": 10, "class_weight_scheme": "balanced", "batch_size": 64,
                "learning_rate": 0.003, "target_sparsity": 0.5, "warmup_examples": 8,
                "synthetic_fraud_ratio": 0.0},
    "evaluation": {"threshold": 0.05, "min_precision": 0.1, "min_recall": 0.1,
                   "max_drop": 0.1},
}


@dataclasses.dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@dataclasses.dataclass(frozen=True)
class PipelineRun:
    """The session's end-to-end run: its directories, config and output."""

    data_root: str
    pipeline_root: str
    serving_root: str
    config_file: str
    model_name: str
    result: CliResult
    # Executions with ids up to this one belong to this (first) run.
    last_execution: int

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.pipeline_root, "metadata.sqlite")

    def versions(self) -> List[str]:
        """The version directories pushed under <serving_root>/<model_name>, sorted."""
        base = os.path.join(self.serving_root, self.model_name)
        return sorted(os.listdir(base)) if os.path.isdir(base) else []

    def executions(self, after: int, until: Optional[int] = None) -> List[Tuple[str, str, object]]:
        """(node id, state, MLMD execution) of executions with ids in (after, until]."""
        from pipeline import mlmd_queries  # pylint: disable=import-outside-toplevel

        store = mlmd_queries.open_store(self.metadata_path)
        chosen = [e for e in store.get_executions()
                  if e.id > after and (until is None or e.id <= until)]
        return [(mlmd_queries.node_of(store, e.id), mlmd_queries.state_name(e), e)
                for e in sorted(chosen, key=lambda e: e.id)]

    def run_args(self, data_root: Optional[str] = None, config_file: Optional[str] = None,
                 serving_root: Optional[str] = None) -> List[str]:
        """`riskpipe run` arguments on this run's roots, with other data, config or serving root."""
        return ["run", "--data", data_root or self.data_root,
                "--pipeline-root", self.pipeline_root,
                "--serving-root", serving_root or self.serving_root,
                "--config", config_file or self.config_file]


def write_config(path: str, overrides: dict) -> str:
    """Writes TINY_CONFIG updated section by section with `overrides`; returns `path`."""
    config = {section: {**values, **overrides.get(section, {})}
              for section, values in TINY_CONFIG.items()}
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    return path


def _run_riskpipe(argv: List[str]) -> CliResult:
    from cli import main as cli  # pylint: disable=import-outside-toplevel

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def run_riskpipe() -> Callable[[List[str]], CliResult]:
    """Runs `riskpipe ARGV...` in process; returns exit code, stdout and stderr."""
    return _run_riskpipe


@pytest.fixture(scope="session")
def tiny_config() -> Callable[[str, dict], str]:
    """write_config(path, overrides): a `--config` file of TINY_CONFIG with overrides."""
    return write_config


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> str:
    """A simulated raw dataset (TINY_DATA) in the partition layout; do not modify it."""
    from datagen.dataset import write_dataset  # pylint: disable=import-outside-toplevel
    from datagen.simulator import SimulationConfig  # pylint: disable=import-outside-toplevel

    out = str(tmp_path_factory.mktemp("tiny") / "raw")
    write_dataset(SimulationConfig(**TINY_DATA), out)
    return out


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory, tiny_data) -> PipelineRun:
    """`riskpipe run` on tiny_data, once per session. Assert on its result before relying on it."""
    from pipeline.mlmd_queries import last_execution_id  # pylint: disable=import-outside-toplevel

    root = tmp_path_factory.mktemp("e2e")
    config_file = write_config(str(root / "config.yaml"), {})
    pipeline_root, serving_root = str(root / "pipeline"), str(root / "serving")
    result = _run_riskpipe(["run", "--data", tiny_data, "--pipeline-root", pipeline_root,
                            "--serving-root", serving_root, "--config", config_file])
    return PipelineRun(
        data_root=tiny_data, pipeline_root=pipeline_root, serving_root=serving_root,
        config_file=config_file, model_name="fraud", result=result,
        last_execution=last_execution_id(os.path.join(pipeline_root, "metadata.sqlite")))


@pytest.fixture(scope="session")
def pushed_model(pipeline_run) -> str:
    """<serving_root>/<model_name> of the e2e run: a TF Serving base path holding one pushed,
    blessed version (a Unix-timestamp directory with the SavedModel and its warmup file)."""
    assert pipeline_run.result.exit_code == 0, pipeline_run.result.stderr
    path = os.path.join(pipeline_run.serving_root, pipeline_run.model_name)
    assert os.path.isdir(path) and os.listdir(path), f"nothing was pushed to {path}"
    return path

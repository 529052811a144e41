"""`riskpipe serve` runs TensorFlow's own CPU kernels, not oneDNN's (common/runtime.py says why)."""
import os
import subprocess
import sys

import pytest

from common import runtime

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What TensorFlow logs at import when oneDNN's kernels are on.
ONEDNN_ON = "oneDNN custom operations are on"


def _serve_stderr(**env) -> str:
    """stderr of `riskpipe serve` failing on its options, after it imported TensorFlow."""
    environment = {k: v for k, v in os.environ.items() if k != runtime.ONEDNN_VARIABLE}
    result = subprocess.run([sys.executable, "-m", "cli.main", "serve", "--port=0"], cwd=REPO,
                            capture_output=True, text=True, timeout=300,
                            env=dict(environment, TF_CPP_MIN_LOG_LEVEL="0", **env))
    assert result.returncode == 2 and "--model_base_path" in result.stderr, result.stderr
    return result.stderr


def test_riskpipe_serve_imports_tensorflow_without_onednn():
    assert ONEDNN_ON not in _serve_stderr()


def test_a_onednn_setting_of_the_users_own_wins():
    assert ONEDNN_ON in _serve_stderr(**{runtime.ONEDNN_VARIABLE: "1"})


@pytest.mark.parametrize("before, after", [(None, "0"), ("1", "1")])
def test_use_eigen_kernels_keeps_a_value_already_set(monkeypatch, before, after):
    monkeypatch.setenv(runtime.ONEDNN_VARIABLE, before or "")  # restored afterwards
    if before is None:
        monkeypatch.delenv(runtime.ONEDNN_VARIABLE)
    runtime.use_eigen_kernels()
    assert os.environ[runtime.ONEDNN_VARIABLE] == after

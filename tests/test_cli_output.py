"""What a person sees from a riskpipe command: riskpipe's output, not TensorFlow's start-up noise."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISE = ("Unable to register", "cuda", "FutureWarning", "oneDNN")


def _compile(tmp_path, **env):
    """`riskpipe compile` (it imports TensorFlow and TFX) in a fresh process; its stderr."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")}
    result = subprocess.run([sys.executable, "-m", "cli.main", "compile", "--output",
                             str(tmp_path / "pipeline.json")], cwd=REPO, capture_output=True,
                            text=True, timeout=300, env=dict(environment, **env))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    return result.stderr


def test_a_command_is_quiet_by_default(tmp_path):
    stderr = _compile(tmp_path)
    assert not [line for line in stderr.splitlines() if any(n in line for n in NOISE)], stderr


def test_a_log_level_of_the_users_own_shows_everything(tmp_path):
    stderr = _compile(tmp_path, TF_CPP_MIN_LOG_LEVEL="0")
    assert "FutureWarning" in stderr and "oneDNN" in stderr

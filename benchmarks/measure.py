"""Wall time and peak memory of a riskpipe child process and all its workers."""
import subprocess
import sys
import time
from typing import List, Mapping, Optional, Sequence, Tuple

from pipeline.cost_ledger import process_tree_rss


def riskpipe_command(*args: str) -> List[str]:
    """`riskpipe ARGS...` run with this interpreter, from the repository."""
    return [sys.executable, "-m", "cli.main", *args]


def run_measured(command: Sequence[str], cwd: str, sample_seconds: float,
                 env: Optional[Mapping[str, str]] = None) -> Tuple[int, float, int]:
    """Runs `command`; returns (exit code, wall seconds, peak tree RSS bytes)."""
    import psutil  # pylint: disable=import-outside-toplevel

    start = time.monotonic()
    child = subprocess.Popen(list(command), cwd=cwd, env=env)
    process, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            peak = max(peak, process_tree_rss(process))
        except psutil.NoSuchProcess:
            break
        time.sleep(sample_seconds)
    return child.wait(), time.monotonic() - start, peak

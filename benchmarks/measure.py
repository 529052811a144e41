"""What the benchmarks share: wall time and peak memory of a riskpipe child process and all
its workers, their work directory, the run configs they write."""
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Iterator, List, Mapping, Optional, Sequence, Tuple

from pipeline.cost_ledger import process_tree_rss


@contextlib.contextmanager
def work_directory(work_dir: Optional[str], prefix: str) -> Iterator[str]:
    """`work_dir` as an absolute path, kept; without one, a new temporary directory removed on exit."""
    if work_dir:
        yield os.path.abspath(work_dir)
        return
    work = tempfile.mkdtemp(prefix=prefix)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def fresh_work_directory(work_dir: Optional[str], prefix: str) -> Iterator[str]:
    """`work_directory`, refused when it already holds a benchmark's pipeline root: a second
    run there would read the first one's cached components as its own."""
    with work_directory(work_dir, prefix) as work:
        if os.path.exists(os.path.join(work, "pipeline")):
            raise SystemExit(f"--work-dir {work} already holds a benchmark; use another")
        os.makedirs(work, exist_ok=True)
        yield work


def write_yaml(path: str, config: dict) -> str:
    """Writes a `riskpipe run --config` file; returns its path."""
    import yaml  # pylint: disable=import-outside-toplevel

    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f)
    return path


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

"""Credit benchmark: the credit default pipeline on 1 k, 30 k and 300 k simulated applications.

    .venv/bin/python benchmarks/credit.py [--sizes 1000,30000,300000] [--default-rate 0.1]
        [--seed 0] [--workdir DIR] [--config FILE]

For each size: `riskpipe generate --kind credit` writes the applications
(reused when DIR/n<rows>/data already holds the same ones), then `riskpipe run
--task credit` runs the pipeline on them (out-of-time split on
application_date) in a child process, in a fresh pipeline root (an earlier
one under DIR/n<rows> is removed first, so every run is a first run: nothing
cached, no earlier blessed model to compare with). Its output goes to
DIR/n<rows>/run.log. Wall time and peak memory are those of the `riskpipe run`
process tree, measured from outside (resident memory of the process and its
children, sampled every 0.5 s). The rows per split, the metrics and the
blessing are read back from MLMD (pipeline/run_summary.py): the DNN's ROC-AUC,
KS and Gini are the Evaluator's (TFMA, the figures that bless); the
logistic-regression and gradient-boosted baselines' are from the Trainer's
credit_evaluation.json, fitted on the same transformed train split and scored
on the same eval split. The Trainer's own figures for the DNN (exact KS, on
the same rows) are shown beside the Evaluator's.

Targets, per size: DNN ROC-AUC >= best baseline ROC-AUC - 0.02 and DNN KS >=
best baseline KS - 0.03. A benchmark reports: the exit code is 0 whether or
not the targets are met, 1 only when a run fails. Not a test: the 300 k run
takes minutes. The work directory is kept (its path is printed).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from measure import riskpipe_command, run_measured  # pylint: disable=wrong-import-position  # benchmarks/ is on sys.path
from common import runtime  # noqa: E402  # before TensorFlow is imported

runtime.use_keras_2()
runtime.quiet_startup(verbose=False)

# pylint: disable=wrong-import-position
from components.credit.baselines import BASELINE_MODELS as BASELINES  # noqa: E402
from components.credit.trainer import DNN  # noqa: E402
from datagen.credit import LABEL  # noqa: E402
from pipeline.configs import CREDIT_PIPELINE_NAME as PIPELINE_NAME  # noqa: E402

POSITIVE, ID, DATE = "1", "application_id", "application_date"
MAX_ROC_AUC_GAP = 0.02
MAX_KS_GAP = 0.03
SAMPLE_SECONDS = 0.5
LOG_TAIL_LINES = 30


def _sizes(text: str) -> List[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text}") \
            from err
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers")
    return sizes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=[1_000, 30_000, 300_000],
                        help="rows of each simulated table, comma-separated "
                             "(default: 1000,30000,300000)")
    parser.add_argument("--default-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", help="a `riskpipe run --config` YAML file (e.g. other "
                                         "trainer settings), passed to every run")
    parser.add_argument("--workdir", help="data, pipeline roots and logs, one n<rows> "
                                          "directory per size (default: a new temporary "
                                          "directory, kept)")
    return parser.parse_args(argv)


# --- running -------------------------------------------------------------------------------

def _same_data(data: str, rows: int, default_rate: float, seed: int) -> bool:
    try:
        with open(os.path.join(data, "generation.json")) as f:
            have = json.load(f)["parameters"]
    except (OSError, ValueError, KeyError):
        return False
    return (have.get("rows"), have.get("default_rate"), have.get("seed")) == \
        (rows, default_rate, seed)


def generate(args, rows: int, data: str) -> None:
    if _same_data(data, rows, args.default_rate, args.seed):
        print(f"  using the {rows:,} applications in {data}", flush=True)
        return
    code, seconds, _ = run_measured(
        riskpipe_command("generate", "--kind", "credit", "--rows", str(rows), "--default-rate",
                         str(args.default_rate), "--seed", str(args.seed), "--out", data,
                         *(["--overwrite"] if os.path.exists(data) else [])),
        REPO, SAMPLE_SECONDS)
    if code != 0:
        raise SystemExit(f"riskpipe generate failed for {rows:,} rows (exit {code})")
    print(f"  generated {rows:,} applications in {seconds:.1f} s", flush=True)


def _run_logged(command: List[str], log_path: str):
    """run_measured with the child's stdout and stderr going to `log_path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(log_path, "w") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            return run_measured(command, REPO, SAMPLE_SECONDS)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def bench_size(args, rows: int, work: str) -> dict:
    """Generates `rows` applications, runs the credit pipeline on them, measures and reads it."""
    from pipeline import run_summary  # pylint: disable=import-outside-toplevel

    root = os.path.join(work, f"n{rows}")
    data, pipeline_root, serving_root = (os.path.join(root, name)
                                         for name in ("data", "pipeline", "serving"))
    log_path = os.path.join(root, "run.log")
    print(f"{rows:,} rows:", flush=True)
    generate(args, rows, data)
    for stale in (pipeline_root, serving_root):
        shutil.rmtree(stale, ignore_errors=True)
    command = riskpipe_command(
        "run", "--task", "credit", "--data", os.path.join(data, "applications.csv"),
        "--label", LABEL, "--positive", POSITIVE, "--id", ID, "--date", DATE,
        "--pipeline-root", pipeline_root, "--serving-root", serving_root, "--no-cache",
        *(["--config", os.path.abspath(args.config)] if args.config else []))
    print(f"  running the pipeline (log: {log_path}) ...", flush=True)
    code, wall, peak = _run_logged(command, log_path)
    result = {"rows": rows, "code": code, "wall_s": wall, "peak_mb": peak / 2 ** 20,
              "log": log_path, "summary": None}
    if code != 0:
        print(f"  riskpipe run FAILED (exit {code}) after {wall:.1f} s; the end of its log:\n"
              + _tail(log_path), flush=True)
        return result
    print(f"  done in {wall:.1f} s, peak {peak / 2 ** 20:.0f} MB", flush=True)
    result["summary"] = run_summary.summarize(os.path.join(pipeline_root, "metadata.sqlite"),
                                              PIPELINE_NAME, label=LABEL)
    return result


# --- report --------------------------------------------------------------------------------

def _f(value: Optional[float], digits: int = 4, width: int = 9) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def quality(summary) -> Dict[str, Dict[str, Optional[float]]]:
    """model -> {roc_auc, ks, gini}: the Evaluator's DNN, the Trainer's DNN and baselines."""
    keys = ("roc_auc", "ks", "gini")
    models = (summary.credit_evaluation or {}).get("models", {})
    out = {"dnn (Evaluator)": {key: summary.metrics.get(key) for key in keys},
           "dnn (Trainer)": {key: models.get(DNN, {}).get(key) for key in keys}}
    for name in BASELINES:
        out[name] = {key: models.get(name, {}).get(key) for key in keys}
    return out


def _best(q: dict, key: str):
    """(value, model) of the best baseline on `key`; (None, None) when none was measured."""
    scored = [(q[name][key], name) for name in BASELINES if q[name][key] is not None]
    return max(scored) if scored else (None, None)


def targets(q: dict) -> List[tuple]:
    """(metric, DNN value, best baseline value, its model, bound, met) per target."""
    rows = []
    for key, label, gap in (("roc_auc", "ROC-AUC", MAX_ROC_AUC_GAP), ("ks", "KS", MAX_KS_GAP)):
        dnn = q["dnn (Evaluator)"][key]
        best, model = _best(q, key)
        bound = None if best is None else best - gap
        met = None if dnn is None or bound is None else dnn >= bound
        rows.append((label, dnn, best, model, bound, met, gap))
    return rows


def _verdict(met: Optional[bool]) -> str:
    return {True: "MET", False: "NOT MET", None: "not measured"}[met]


def print_report(args, results: List[dict]) -> None:
    ok = [r for r in results if r["summary"] is not None]
    print(f"\ncredit benchmark: default rate {args.default_rate}, seed {args.seed}, "
          f"{os.cpu_count()} cores; out-of-time split on {DATE}; every run a first run "
          "(--no-cache, fresh pipeline root)"
          + (f"; --config {args.config}" if args.config else ""))

    print("\nrun (the `riskpipe run` process tree, measured from outside)")
    print(f"{'rows':>9} {'status':>8} {'wall s':>8} {'peak MB':>8} {'train rows':>11} "
          f"{'eval rows':>10} {'train dr':>9} {'eval dr':>8} {'blessed':>8}")
    for r in results:
        s = r["summary"]
        if s is None:
            print(f"{r['rows']:>9,} {'FAILED':>8} {r['wall_s']:>8.1f} {r['peak_mb']:>8.0f}  "
                  f"exit {r['code']}, see {r['log']}")
            continue
        blessed = {None: "-", True: "yes", False: "NO"}[s.blessed]
        print(f"{r['rows']:>9,} {'ok':>8} {r['wall_s']:>8.1f} {r['peak_mb']:>8.0f} "
              f"{s.examples.get('train', 0):>11,} {s.examples.get('eval', 0):>10,} "
              f"{_f(s.fraud_rate.get('train'), 4, 9)} {_f(s.fraud_rate.get('eval'), 4, 8)} "
              f"{blessed:>8}")

    if ok:
        nodes = [c.node for c in ok[0]["summary"].components]
        print("\nwall time per component (s, from the run's cost ledger / MLMD)")
        print(f"{'component':<30}" + "".join(f"{r['rows']:>10,}" for r in ok))
        for node in nodes:
            cells = []
            for r in ok:
                seconds = {c.node: c.seconds for c in r["summary"].components}.get(node)
                cells.append(f"{'-':>10}" if seconds is None else f"{seconds:>10.1f}")
            print(f"{node:<30}" + "".join(cells))

    print("\nquality on the eval split (the same rows for every model)")
    print(f"{'rows':>9}  {'model':<22}{'ROC-AUC':>9}{'KS':>9}{'Gini':>9}")
    for r in ok:
        for i, (model, values) in enumerate(quality(r["summary"]).items()):
            rows = f"{r['rows']:>9,}" if i == 0 else f"{'':>9}"
            print(f"{rows}  {model:<22}{_f(values['roc_auc'])}{_f(values['ks'])}"
                  f"{_f(values['gini'])}")

    print("\ntargets (DNN = the Evaluator's figure; best baseline of logistic_regression and "
          "gradient_boosting)")
    print(f"{'rows':>9}  {'metric':<8}{'DNN':>8}{'best baseline':>15}  {'model':<20}"
          f"{'target':>16}{'margin':>9}  verdict")
    for r in ok:
        for i, (label, dnn, best, model, bound, met, gap) in enumerate(targets(quality(
                r["summary"]))):
            rows = f"{r['rows']:>9,}" if i == 0 else f"{'':>9}"
            target = "-" if bound is None else f">= {bound:.4f}"
            margin = None if dnn is None or bound is None else dnn - bound
            print(f"{rows}  {label:<8}{_f(dnn, 4, 8)}{_f(best, 4, 15)}  {model or '-':<20}"
                  f"{target:>16}{'-' if margin is None else f'{margin:+.4f}':>9}  "
                  f"{_verdict(met)} (best - {gap:g})")
    for r in ok:
        s = r["summary"]
        if s.validation_failures:
            print(f"{r['rows']:,}: not blessed: " + "; ".join(s.validation_failures))


def main(argv=None) -> int:
    args = parse_args(argv)
    work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="riskpipe-credit-bench-"))
    os.makedirs(work, exist_ok=True)
    results = [bench_size(args, rows, work) for rows in args.sizes]
    print_report(args, results)
    print(f"\nwork directory (data, pipeline roots, run logs): {work}")
    return 0 if all(r["code"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Pipeline cost benchmark: the training bill of today's defaults beside the earlier settings.

    .venv/bin/python benchmarks/pipeline_cost.py [--transactions 1000000] [--work-dir DIR]

Simulates the data once, then runs `riskpipe run` on it twice, each into a
fresh pipeline root and seeded alike (trainer.seed): with the settings kept
in benchmarks/pipeline_cost_baseline.yaml (the defaults before the cost cuts)
and with today's defaults, alternating the order with `--repeats`. Prints the
cost ledger's CPU seconds per component of each run side by side, and the
quality of both models on the same eval split beside a LightGBM baseline
trained on the same train split (benchmarks/pipeline_scale.py's scoring).

Targets: today's run costs at most half the baseline run's CPU seconds
(the ledger's total); its DNN's PR-AUC is within 0.01 of the baseline run's
and above LightGBM's. Exits 1 when a target is missed. Not a test: at 1 M
transactions it takes about half an hour.
"""
import argparse
import json
import os
import shutil
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import pipeline_scale  # noqa: E402  # pylint: disable=wrong-import-position  # benchmarks/ is on sys.path
from measure import riskpipe_command, run_measured, work_directory, write_yaml  # noqa: E402  # pylint: disable=wrong-import-position
from components.metric_names import PR_AUC, RECALL_AT_FPR, ROC_AUC  # noqa: E402  # pylint: disable=wrong-import-position

BASELINE_CONFIG = os.path.join(REPO, "benchmarks", "pipeline_cost_baseline.yaml")
SETTINGS = ("baseline", "today")
MAX_CPU_RATIO = 0.5
MAX_PR_AUC_LOSS = 0.01
SAMPLE_SECONDS = 0.5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--fraud-rate", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0, help="simulation and training seed")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per setting, alternating baseline and today")
    parser.add_argument("--work-dir", help="keeps data and pipeline roots here "
                                           "(default: a temporary directory, removed)")
    return parser.parse_args(argv)


def write_config(setting: str, seed: int, path: str) -> str:
    """The run's YAML config: the setting's (baseline file or none) with the training seed."""
    from pipeline.configs import read_yaml_mapping  # pylint: disable=import-outside-toplevel

    config = read_yaml_mapping(BASELINE_CONFIG) if setting == "baseline" else {}
    config.setdefault("trainer", {})["seed"] = seed
    return write_yaml(path, config)


def ledger(pipeline_root: str) -> dict:
    """The cost ledger of the root's only run (pipeline/cost_ledger.py's cost.json)."""
    from pipeline.cost_ledger import COST_FILE  # pylint: disable=import-outside-toplevel

    (run,) = os.listdir(os.path.join(pipeline_root, "runs"))
    with open(os.path.join(pipeline_root, "runs", run, COST_FILE), encoding="utf-8") as f:
        return json.load(f)


def run_setting(args, setting: str, data: str, root: str) -> dict:
    config = write_config(setting, args.seed, os.path.join(root, "config.yaml"))
    command = riskpipe_command("run", "--data", data, "--pipeline-root",
                               os.path.join(root, "pipeline"), "--serving-root",
                               os.path.join(root, "serving"), "--no-cache", "--config", config)
    print(f"running the pipeline with the {setting} settings ...", flush=True)
    code, wall, peak = run_measured(command, REPO, SAMPLE_SECONDS)
    if code != 0:
        raise SystemExit(f"riskpipe run with the {setting} settings failed (exit {code})")
    metadata = os.path.join(root, "pipeline", "metadata.sqlite")
    return {"setting": setting, "wall_s": wall, "peak_mb": peak / 2**20,
            "ledger": ledger(os.path.join(root, "pipeline")),
            "quality": pipeline_scale.quality(metadata, args.seed)}


def _cpu(result) -> dict:
    return {c["name"]: c["cpu_seconds"] for c in result["ledger"]["components"]}


def print_report(args, runs) -> bool:
    """Prints the tables (medians over repeats); returns whether every target was met."""
    by_setting = {s: [r for r in runs if r["setting"] == s] for s in SETTINGS}
    cpu = {s: [_cpu(r) for r in rs] for s, rs in by_setting.items()}
    names = [n for n in cpu["baseline"][0] if max(cpu["baseline"][0][n], cpu["today"][0][n]) >= 0.5]
    print(f"\npipeline cost benchmark: {args.transactions:,} transactions, {args.days} days, "
          f"seed {args.seed}, {os.cpu_count()} cores, {args.repeats} run(s) per setting "
          "(medians)\n")
    print(f"{'component':<16} {'baseline CPU s':>15} {'today CPU s':>12} {'ratio':>7}")
    for name in names:
        before = statistics.median([c[name] for c in cpu["baseline"]])
        after = statistics.median([c[name] for c in cpu["today"]])
        print(f"{name:<16} {before:>15.1f} {after:>12.1f} {after / before:>7.2f}")
    totals = {s: statistics.median([r["ledger"]["total_cpu_seconds"] for r in rs])
              for s, rs in by_setting.items()}
    walls = {s: statistics.median([r["wall_s"] for r in rs]) for s, rs in by_setting.items()}
    ratio = totals["today"] / totals["baseline"]
    print(f"{'total':<16} {totals['baseline']:>15.1f} {totals['today']:>12.1f} {ratio:>7.2f}")
    print(f"{'wall (run)':<16} {walls['baseline']:>15.1f} {walls['today']:>12.1f} "
          f"{walls['today'] / walls['baseline']:>7.2f}")
    met = ratio <= MAX_CPU_RATIO
    print(f"  target: total CPU ratio <= {MAX_CPU_RATIO} {pipeline_scale.verdict(met)}")

    print(f"\n{'setting':<10} {'run':>4} {'DNN PR-AUC':>11} {'ROC-AUC':>8} {'recall@1%FPR':>13} "
          f"{'GBM PR-AUC':>11}")
    for setting, results in by_setting.items():
        for i, result in enumerate(results):
            q = result["quality"]
            print(f"{setting:<10} {i:>4} {q['dnn'][PR_AUC]:>11.4f} {q['dnn'][ROC_AUC]:>8.4f} "
                  f"{q['dnn'][RECALL_AT_FPR]:>13.4f} {q['baseline'][PR_AUC]:>11.4f}")
    pr_auc = {s: statistics.median([r["quality"]["dnn"][PR_AUC] for r in rs])
              for s, rs in by_setting.items()}
    gbm = by_setting["today"][0]["quality"]["baseline"][PR_AUC]
    kept = pr_auc["today"] >= pr_auc["baseline"] - MAX_PR_AUC_LOSS
    above = pr_auc["today"] > gbm
    print(f"  target: PR-AUC {pr_auc['today']:.4f} within {MAX_PR_AUC_LOSS} of "
          f"{pr_auc['baseline']:.4f} {pipeline_scale.verdict(kept)}; above LightGBM's "
          f"{gbm:.4f} {pipeline_scale.verdict(above)}")
    return met and kept and above


def main(argv=None) -> int:
    args = parse_args(argv)
    with work_directory(args.work_dir, "riskpipe-pipeline-cost-") as work:
        data = os.path.join(work, "raw")
        if not os.path.isdir(data):
            print(f"simulating {args.transactions:,} transactions ...", flush=True)
            pipeline_scale.simulate(args, args.transactions, data)
        runs = []
        for repeat in range(args.repeats):
            order = SETTINGS if repeat % 2 == 0 else SETTINGS[::-1]
            for setting in order:
                root = os.path.join(work, f"{setting}-{repeat}")
                shutil.rmtree(root, ignore_errors=True)
                os.makedirs(root)
                runs.append(run_setting(args, setting, data, root))
        met = print_report(args, runs)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

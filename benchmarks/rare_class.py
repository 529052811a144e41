"""Rare-class benchmark: class weights, balanced resampling and synthetic frauds on one split.

    .venv/bin/python benchmarks/rare_class.py [--transactions 100000] [--work-dir DIR]

Simulates the transactions once, then runs `riskpipe run` once per mode (MODES)
on one pipeline root with TFX caching on. Only the `trainer:` section of the
config differs between modes (the seed is the same), so every mode trains on
the same split through the same Transform graph. FeatureGen, StatisticsGen and
Transform run once beforehand, with a one-epoch Trainer that is not reported,
so that every mode's Trainer runs in a process where they were cached.
Each mode's trained model (blessed or not) is scored through serving_default on
the eval split: PR-AUC, ROC-AUC and recall at 1% FPR (benchmarks/scoring.py),
the Trainer's wall and CPU time from the run's cost ledger (on a shared
machine the CPU time is the steadier of the two), and PR-AUC per fraud
scenario (that scenario's frauds against all legitimate eval rows, as
benchmarks/foundation.py reports them).

Not a test: about a minute per mode at 100 k transactions on 2 cores.
"""
import argparse
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

# pylint: disable=wrong-import-position  # benchmarks/ is on sys.path
from measure import fresh_work_directory, riskpipe_command
from pipeline_scale import model_scores, node_execution, node_outputs, read_split, simulate
from scoring import pr_auc_by_scenario, quality
from pipeline import pipeline as dag  # noqa: E402  # after pipeline_scale chose Keras 2

# Each mode sets every rare-class knob, so a change of the defaults cannot move it.
MODES = (
    ("class weights (sqrt)", {"class_weight_scheme": "sqrt"}),
    ("balanced resampling", {"balanced_resampling": True}),
    ("synthetic 1x", {"class_weight_scheme": "none", "synthetic_fraud_ratio": 1.0}),
    ("synthetic 4x", {"class_weight_scheme": "none", "synthetic_fraud_ratio": 4.0}),
    ("synthetic 1x + sqrt weights", {"class_weight_scheme": "sqrt",
                                     "synthetic_fraud_ratio": 1.0}),
)
NEUTRAL = {"class_weight_scheme": "none", "balanced_resampling": False,
           "synthetic_fraud_ratio": 0.0}
# Computed once, before the modes, by a quick Trainer that is not reported.
UPSTREAM = (dag.FEATURE_GEN, dag.STATISTICS_GEN, dag.TRANSFORM)
UPSTREAM_TRAINER = {"epochs": 1, "target_sparsity": 0.0}
SCENARIO = "fraud_scenario"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--eval-days", type=int, default=15,
                        help="the last N days are the eval split (default 15)")
    parser.add_argument("--fraud-rate", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the simulation and every mode's training")
    parser.add_argument("--work-dir", help="keeps data and the pipeline root here "
                                           "(default: a temporary directory, removed)")
    return parser.parse_args(argv)


def _config(args, path: str, trainer: dict) -> str:
    """A `riskpipe run --config` file (JSON is YAML) for one mode."""
    with open(path, "w") as f:
        json.dump({"feature_gen": {"eval_days": args.eval_days},
                   "trainer": {"seed": args.seed, **NEUTRAL, **trainer}}, f)
    return path


def run_mode(args, work: str, name: str, trainer: dict) -> dict:
    """Runs the pipeline with one mode's trainer config; its components' runs, the Trainer's
    ledger entry and outputs."""
    # pylint: disable=import-outside-toplevel
    from pipeline import run_summary
    from pipeline.cost_ledger import stored_cost

    print(f"\n{name}: trainer {trainer}", flush=True)
    root = os.path.join(work, "pipeline")
    config = _config(args, os.path.join(work, re.sub(r"\W+", "-", name) + ".yaml"), trainer)
    subprocess.run(riskpipe_command(
        "run", "--data", os.path.join(work, "raw"), "--pipeline-root", root,
        "--serving-root", os.path.join(work, "serving"), "--config", config),
        cwd=REPO, check=True)
    metadata = os.path.join(root, "metadata.sqlite")
    runs = {c.node: c for c in run_summary.summarize(metadata, "riskpipe").components}
    if runs[dag.TRAINER].state != "ran":
        raise SystemExit(f"{name}: the Trainer was {runs[dag.TRAINER].state}; use a fresh "
                         "--work-dir")
    return {"runs": runs, "outputs": node_outputs(metadata, dag.TRAINER),
            "cost": stored_cost(node_execution(metadata, dag.TRAINER)[1], dag.TRAINER)}


def evaluate(trained: dict, evaluation) -> dict:
    """The mode's model scored on the eval split, its Trainer's cost and reports."""
    # pylint: disable=import-outside-toplevel
    from components.trainer import CLASS_BALANCE_FILE
    from pipeline.run_summary import SERVING_MODEL_DIR, read_model_run_json

    serialized, columns, labels = evaluation
    outputs = trained["outputs"]
    scores = model_scores(os.path.join(outputs["model"][0].uri, SERVING_MODEL_DIR), serialized)
    return {**quality(labels, scores),
            "by_scenario": pr_auc_by_scenario(labels, scores, columns[SCENARIO]),
            "trainer_s": trained["cost"].wall_seconds,
            "trainer_cpu_s": trained["cost"].cpu_seconds,
            "runs": trained["runs"],
            "balance": read_model_run_json(outputs["model_run"][0].uri, CLASS_BALANCE_FILE)}


def print_report(args, results, evaluation) -> None:
    # pylint: disable=import-outside-toplevel
    import numpy as np

    from components.metric_names import PR_AUC, RECALL_AT_FPR, ROC_AUC

    _, columns, labels = evaluation
    balance = results[0][1]["balance"]["label_counts"]
    scenarios = sorted(set(columns[SCENARIO][labels == 1]))
    print(f"\nrare-class benchmark: {args.transactions:,} transactions over {args.days} days, "
          f"fraud rate {args.fraud_rate}, seed {args.seed}, {os.cpu_count()} cores")
    print(f"train {balance['0'] + balance['1']:,} rows ({balance['1']} frauds); eval "
          f"(last {args.eval_days} days) {len(labels):,} rows ({int(labels.sum())} frauds: "
          + ", ".join(f"{s} {int(np.sum(columns[SCENARIO] == s))}" for s in scenarios) + ")")
    states = {result["runs"][node].state for _, result in results for node in UPSTREAM}
    print(f"{', '.join(UPSTREAM)} in the modes' runs: {', '.join(sorted(states))}")
    head = (f"{'mode':<28} {'synthetic':>9} {'PR-AUC':>7} {'ROC-AUC':>7} {'R@1%FPR':>7} "
            f"{'Trainer s':>9} {'CPU s':>6}  ")
    print("\n" + head + "  ".join(f"{s:>{max(len(s), 6)}}" for s in scenarios))
    for name, result in results:
        row = (f"{name:<28} {result['balance']['synthetic_frauds']:>9} "
               f"{result[PR_AUC]:>7.3f} {result[ROC_AUC]:>7.3f} {result[RECALL_AT_FPR]:>7.3f} "
               f"{result['trainer_s']:>9.1f} {result['trainer_cpu_s']:>6.1f}  ")
        print(row + "  ".join(f"{result['by_scenario'].get(s, float('nan')):>{max(len(s), 6)}.3f}"
                              for s in scenarios))
    print("(PR-AUC: average precision; per scenario: its frauds against all legitimate eval "
          "rows; Trainer s and CPU s: the Trainer component's wall and CPU time)")


def main(argv=None) -> int:
    args = parse_args(argv)
    with fresh_work_directory(args.work_dir, "riskpipe-rare-") as work:
        print(f"simulating {args.transactions:,} transactions ...", flush=True)
        simulate(args, args.transactions, os.path.join(work, "raw"))
        run_mode(args, work, "upstream", UPSTREAM_TRAINER)
        trained = [(name, run_mode(args, work, name, trainer)) for name, trainer in MODES]
        examples = node_outputs(os.path.join(work, "pipeline", "metadata.sqlite"),
                                dag.FEATURE_GEN)["examples"][0].uri
        evaluation = read_split(examples, "eval", passthrough=(SCENARIO,))
        results = [(name, evaluate(result, evaluation)) for name, result in trained]
        print_report(args, results, evaluation)
    return 0


if __name__ == "__main__":
    sys.exit(main())

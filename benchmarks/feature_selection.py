"""Feature selection benchmark: the fraud model with every feature, then with those worth little dropped.

    .venv/bin/python benchmarks/feature_selection.py [--transactions 1000000]
        [--min-value-share 0.02[,0.01...]] [--exclude FEATURE,FEATURE... ...]
        [--training-seed 0] [--work-dir DIR]

1. `riskpipe generate` simulates the transactions (kept in DIR/data and
   reused when the same ones are there).
2. `riskpipe run` trains the model on every feature; `riskpipe report --json`
   measures its serving cost and its feature table (cost and permutation value).
3. For each --min-value-share, `riskpipe select-features` turns the table into
   `features.exclude` (value share below it), and `riskpipe run --config`
   trains again in the same pipeline root: FeatureGen and the statistics come from the cache,
   Transform, Trainer, Evaluator and Pusher run with the selection. Each
   --exclude list (a selection read off the feature table by hand) trains
   the same way. Every run is seeded alike (--training-seed), so runs differ
   only by their features. A last `riskpipe report` measures the new
   versions' serving cost.
4. For each version, on the same eval transactions: the number of model
   features; the online feature cost (OnlineFeatureBuilder with the version's
   features, microseconds per transaction over the first raw transactions,
   best of REPEATS, both builders timed in this one process); the mean bytes of
   a request as the risk engine sends it; the server CPU per transaction (the
   report's, 8 concurrent clients with the fleet's batching); PR-AUC, ROC-AUC,
   KS and recall at 1% FPR of the served model on the eval split.

Target: at least 30% fewer model features for at most 0.01 PR-AUC loss, with
the online feature cost per transaction measured lower. A benchmark reports:
the exit code is 0 whether or not the target is met, 1 only when a step fails.
Not a test: at 1 M transactions it takes about half an hour on 2 cores.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from measure import riskpipe_command, write_yaml  # pylint: disable=wrong-import-position  # benchmarks/ is on sys.path
from common import runtime  # noqa: E402  # before TensorFlow is imported

runtime.use_keras_2()
runtime.quiet_startup(verbose=False)

MIN_FEATURE_CUT = 0.30
MAX_PR_AUC_LOSS = 0.01
ONLINE_TRANSACTIONS = 50_000
REPEATS = 3
# Eval transactions whose request size is averaged.
REQUEST_SAMPLE = 5000


def _shares(text: str) -> list:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of shares: {text}") from err


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--fraud-rate", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-value-share", type=_shares, default=[0.02], metavar="SHARES",
                        help="exclude features whose value share is below this; a comma-"
                             "separated list trains one selection per share (default: 0.02, "
                             "the report's cut threshold)")
    parser.add_argument("--exclude", type=_names, action="append", default=[],
                        metavar="FEATURES",
                        help="a selection made by hand from the feature table: a comma-"
                             "separated list of features to exclude; repeatable, each trains "
                             "one selection beside the --min-value-share ones")
    parser.add_argument("--training-seed", type=int, default=0,
                        help="trainer.seed of every run, so that runs differ only by their "
                             "features")
    parser.add_argument("--work-dir", help="data, pipeline root and reports (default: a new "
                                           "temporary directory, kept)")
    return parser.parse_args(argv)


def _names(text: str) -> list:
    return sorted(part.strip() for part in text.split(",") if part.strip())


def _riskpipe(*args: str) -> None:
    subprocess.run(riskpipe_command(*args), cwd=REPO, check=True)


def _report(root: str, path: str) -> dict:
    _riskpipe("report", "--pipeline-root", root, "--json", path)
    with open(path) as f:
        return json.load(f)


def _generate(args, data: str) -> None:
    marker = os.path.join(data, "generation.json")
    wanted = {"transactions": args.transactions, "days": args.days,
              "fraud_rate": args.fraud_rate, "seed": args.seed}
    if os.path.exists(marker):
        with open(marker) as f:
            parameters = json.load(f).get("parameters", {})
        if all(parameters.get(k) == v for k, v in wanted.items()):
            return
    _riskpipe("generate", "--transactions", str(args.transactions), "--days", str(args.days),
              "--fraud-rate", str(args.fraud_rate), "--seed", str(args.seed), "--out", data)


def _online_us(stream, names) -> float:
    """Microseconds per transaction of OnlineFeatureBuilder(names).update, best of REPEATS."""
    from components.features import OnlineFeatureBuilder  # pylint: disable=import-outside-toplevel

    best = float("inf")
    for _ in range(REPEATS):
        builder = OnlineFeatureBuilder(names)
        start = time.perf_counter()
        for txn in stream:
            builder.update(txn)
        best = min(best, time.perf_counter() - start)
    return best / len(stream) * 1e6


def _quality(version_dir: str, columns, labels) -> dict:
    # pylint: disable=import-outside-toplevel
    from common.distribution_stats import ks_statistic
    from ledger.feature_values import model_scorer
    from scoring import quality  # benchmarks/ is on sys.path

    scores = model_scorer(version_dir)(columns)
    return {**quality(labels, scores), "ks": ks_statistic(scores, labels)}


def measure_versions(report: dict, root: str, serving_root: str, data: str) -> list:
    """One row per pushed version: features, online cost, request bytes, server CPU, quality."""
    # pylint: disable=import-outside-toplevel
    from components import features
    from components.feature_gen.raw_data import read_transactions
    from ledger.feature_costs import first_partitions
    from ledger.feature_values import as_requests, read_eval_split, served_inputs, split_records

    stream = sorted((txn for path in first_partitions(data, ONLINE_TRANSACTIONS)
                     for txn in read_transactions(path)), key=features.sort_key)
    # Both runs read the one FeatureGen output (the second from the cache).
    (examples_uri,) = glob.glob(os.path.join(root, "FeatureGen", "examples", "*"))
    columns, labels = read_eval_split(examples_uri, 10 ** 9)
    records = split_records(examples_uri, "eval", REQUEST_SAMPLE)
    rows = []
    for model in report["models"]:
        version_dir = os.path.join(serving_root, "fraud", str(model["version"]))
        inputs = served_inputs(version_dir)
        requests = as_requests(records, inputs)
        rows.append({"version": model["version"], "features": len(inputs),
                     "online_us": _online_us(stream, inputs),
                     "request_bytes": sum(map(len, requests)) / len(requests),
                     "server_cpu_ms": model["metrics"]["serving_cpu_ms_per_txn"],
                     **_quality(version_dir, columns, labels)})
    return rows


def print_table(rows, selections) -> None:
    """The table, then the target's verdict for each selection against all features."""
    head = ("version", "selection", "model features", "online us/txn",
            "request bytes", "server CPU ms/txn", "PR-AUC", "ROC-AUC", "KS", "recall@1%FPR")
    print("\n| " + " | ".join(head) + " |")
    for row, (rule, _) in zip(rows, [("all features", [])] + selections):
        print(f"| {row['version']} | {rule} | {row['features']} | "
              f"{row['online_us']:.1f} | {row['request_bytes']:.0f} | {row['server_cpu_ms']:.3f} | "
              f"{row['pr_auc']:.4f} | {row['roc_auc']:.4f} | {row['ks']:.4f} | "
              f"{row['recall_at_1pct_fpr']:.4f} |")
    before = rows[0]
    for after, (rule, excluded) in zip(rows[1:], selections):
        cut = 1 - after["features"] / before["features"]
        loss = before["pr_auc"] - after["pr_auc"]
        met = (cut >= MIN_FEATURE_CUT and loss <= MAX_PR_AUC_LOSS
               and after["online_us"] < before["online_us"])
        print(f"\n{rule}: excluded ({len(excluded)}) {', '.join(excluded)}")
        print(f"  features cut {cut:.0%} (target >= {MIN_FEATURE_CUT:.0%}), PR-AUC loss "
              f"{loss:+.4f} (target <= {MAX_PR_AUC_LOSS}), online cost {after['online_us']:.1f} "
              f"vs {before['online_us']:.1f} us/txn: {'MET' if met else 'NOT MET'}")


def main(argv=None) -> int:
    args = parse_args(argv)
    work = args.work_dir or tempfile.mkdtemp(prefix="riskpipe-feature-selection-")
    data, root = os.path.join(work, "data"), os.path.join(work, "pipeline")
    serving = os.path.join(work, "serving")
    _generate(args, data)
    seeded = {"trainer": {"seed": args.training_seed}}
    base = write_yaml(os.path.join(work, "seed.yaml"), seeded)
    _riskpipe("run", "--data", data, "--pipeline-root", root, "--serving-root", serving,
              "--config", base)
    first_report = os.path.join(work, "report_all_features.json")
    first = _report(root, first_report)
    selections = []
    for share in args.min_value_share:
        selected = os.path.join(work, f"selected_{share}.yaml")
        _riskpipe("select-features", "--report", first_report, "--min-value-share", str(share),
                  "--config", base, "--out", selected)
        _riskpipe("run", "--data", data, "--pipeline-root", root, "--serving-root", serving,
                  "--config", selected)
        selections.append((f"value share < {share}",
                           sorted(row["name"] for row in first["features"]
                                  if row["value_share"] < share)))
    for i, excluded in enumerate(args.exclude):
        selected = write_yaml(os.path.join(work, f"selected_by_hand_{i}.yaml"),
                              {**seeded, "features": {"exclude": excluded}})
        _riskpipe("run", "--data", data, "--pipeline-root", root, "--serving-root", serving,
                  "--config", selected)
        selections.append(("by hand", excluded))
    last = _report(root, os.path.join(work, "report_selected.json"))
    if len(last["models"]) < 1 + len(selections):
        print("a run with selected features pushed no model (not blessed): see "
              f"{root}", file=sys.stderr)
        return 1
    print_table(measure_versions(last, root, serving, data), selections)
    print(f"\nwork directory: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

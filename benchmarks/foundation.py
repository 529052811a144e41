"""Foundation benchmark: generate raw transactions, featurize them, train a baseline.

    .venv/bin/python benchmarks/foundation.py [--transactions 1000000]

Steps, each in its own process so that its wall time and peak memory are its own:
  generate   `riskpipe generate` (the simulator) into <work>/raw
  featurize  FeatureGen's Beam pipeline (components.feature_gen.executor.featurize) into
             <work>/features/Split-{train,eval}: earlier days train, the last --eval-days eval
  baseline   LightGBM on the FeatureGen tf.Examples of the train split, scored on the eval split

Peak memory is the largest sum of the resident memory of the step's process and
its children, sampled every 0.1 s. Prints a table of the steps against the
targets (generate + featurize 1 M transactions in under 5 minutes with under
4 GB), the fraud rate per scenario, and the baseline's PR-AUC and ROC-AUC
against the 0.3-0.9 band (above 0.9 the scenarios are too easy). Exits 1 when a
target is missed.
"""
import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from measure import run_measured, work_directory  # pylint: disable=wrong-import-position  # benchmarks/ is on sys.path
from common import runtime  # noqa: E402  # before TensorFlow is imported

runtime.use_keras_2()
runtime.quiet_startup(verbose=False)

TARGET_SECONDS_PER_MILLION = 300.0
TARGET_PEAK_MB = 4096.0
PR_AUC_BAND = (0.3, 0.9)
SAMPLE_SECONDS = 0.1


# --- steps (run in a child process) -------------------------------------------------------

def step_generate(args) -> dict:
    from cli import main as cli  # pylint: disable=import-outside-toplevel

    code = cli.main(["generate", "--transactions", str(args.transactions), "--days",
                     str(args.days), "--seed", str(args.seed),
                     "--out", os.path.join(args.work_dir, "raw")])
    if code:
        raise SystemExit(code)
    with open(os.path.join(args.work_dir, "raw", "generation.json")) as f:
        return json.load(f)


def step_featurize(args) -> dict:
    # pylint: disable=import-outside-toplevel
    from components.feature_gen.executor import featurize

    return featurize(os.path.join(args.work_dir, "raw"), os.path.join(args.work_dir, "features"),
                     eval_days=args.eval_days, beam_args=args.beam_arg)


def _read_split(features_dir: str, split: str):
    """The examples of one FeatureGen split as a DataFrame (absent features -> NaN)."""
    # pylint: disable=import-outside-toplevel
    import glob

    import numpy as np
    import pandas as pd
    import tensorflow as tf

    from components import features

    kinds = {"int": tf.int64, "float": tf.float32, "string": tf.string}
    spec = {}
    for name, kind in features.FEATURE_TYPES.items():
        default = np.nan if name in features.OPTIONAL_FEATURES else None
        spec[name] = tf.io.FixedLenFeature([], kinds[kind], default_value=default)
    files = sorted(glob.glob(os.path.join(features_dir, f"Split-{split}", "*.gz")))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(8192).map(
        lambda batch: tf.io.parse_example(batch, spec))
    columns = {name: [] for name in spec}
    for batch in dataset.as_numpy_iterator():
        for name, values in batch.items():
            columns[name].append(values)
    frame = pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})
    for name, kind in features.FEATURE_TYPES.items():
        if kind == "string":
            frame[name] = frame[name].str.decode("utf-8")
    return frame


def step_baseline(args) -> dict:
    # pylint: disable=import-outside-toplevel
    import lightgbm
    import pandas as pd
    from sklearn.metrics import average_precision_score, roc_auc_score

    from components import features
    from scoring import pr_auc_by_scenario  # benchmarks/ is on sys.path

    features_dir = os.path.join(args.work_dir, "features")
    train, scored = _read_split(features_dir, "train"), _read_split(features_dir, "eval")
    inputs = list(features.MODEL_FEATURES)
    categorical = [n for n in inputs if features.MODEL_FEATURES[n] == "string"]
    for frame in (train, scored):
        for name in categorical:
            frame[name] = pd.Categorical(frame[name])
    model = lightgbm.LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=31,
                                    subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                                    random_state=args.seed, n_jobs=2, verbose=-1)
    model.fit(train[inputs], train[features.LABEL_KEY], categorical_feature=categorical)
    score = model.predict_proba(scored[inputs])[:, 1]
    label = scored[features.LABEL_KEY].to_numpy()
    return {
        "train_examples": len(train), "eval_examples": len(scored),
        "train_frauds": int(train[features.LABEL_KEY].sum()), "eval_frauds": int(label.sum()),
        "pr_auc": float(average_precision_score(label, score)),
        "roc_auc": float(roc_auc_score(label, score)),
        "pr_auc_by_scenario": pr_auc_by_scenario(label, score, scored["fraud_scenario"]),
    }


STEPS = {"generate": step_generate, "featurize": step_featurize, "baseline": step_baseline}


# --- measurement (parent process) ---------------------------------------------------------

def run_step(name: str, args) -> dict:
    """Runs one step in a child process; returns its result, wall seconds and peak MB."""
    result_path = os.path.join(args.work_dir, f"{name}.result.json")
    command = [sys.executable, os.path.abspath(__file__), "--step", name,
               "--work-dir", args.work_dir, "--transactions", str(args.transactions),
               "--days", str(args.days), "--seed", str(args.seed),
               "--eval-days", str(args.eval_days)]
    command += [f"--beam-arg={a}" for a in args.beam_arg]
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    code, wall, peak = run_measured(command, REPO, SAMPLE_SECONDS, env)
    if code != 0:
        raise SystemExit(f"benchmark step '{name}' failed with exit code {code}")
    with open(result_path) as f:
        return {"result": json.load(f), "wall_s": wall, "peak_mb": peak / 2**20}


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(args, runs) -> bool:
    """Prints the tables; returns whether every target was met."""
    budget_s = TARGET_SECONDS_PER_MILLION * args.transactions / 1e6
    rows = [(name, run["wall_s"], run["peak_mb"], "") for name, run in runs.items()]
    gen, feat = runs["generate"], runs["featurize"]
    both_s = gen["wall_s"] + feat["wall_s"]
    both_mb = max(gen["peak_mb"], feat["peak_mb"])
    met_time, met_memory = both_s < budget_s, both_mb < TARGET_PEAK_MB
    rows.append(("generate+featurize", both_s, both_mb,
                 f"< {budget_s:.0f} s {_verdict(met_time)}, "
                 f"< {TARGET_PEAK_MB:.0f} MB {_verdict(met_memory)}"))
    print(f"\nfoundation benchmark: {args.transactions:,} transactions, {args.days} days, "
          f"seed {args.seed}, {os.cpu_count()} cores")
    print(f"{'step':<20} {'wall s':>8} {'peak MB':>8}  target")
    for name, wall, peak, target in rows:
        print(f"{name:<20} {wall:>8.1f} {peak:>8.0f}  {target}")

    manifest = gen["result"]
    total = manifest["rows"]
    baseline = runs["baseline"]["result"]
    print(f"\n{'fraud scenario':<22} {'rows':>8} {'rate':>9} {'PR-AUC':>8}")
    for scenario, count in manifest["fraud_rows_by_scenario"].items():
        pr_auc = baseline["pr_auc_by_scenario"].get(scenario, float("nan"))
        print(f"{scenario:<22} {count:>8} {count / total:>9.4%} {pr_auc:>8.3f}")
    print(f"{'all fraud':<22} {manifest['fraud_rows']:>8} {manifest['fraud_rows'] / total:>9.4%}")
    print("(scenario PR-AUC: that scenario's frauds against all legitimate eval rows)")

    low, high = PR_AUC_BAND
    in_band = low <= baseline["pr_auc"] <= high
    print(f"\nbaseline LightGBM on FeatureGen features: trained on {baseline['train_examples']:,} "
          f"examples ({baseline['train_frauds']} frauds), scored on the last {args.eval_days} "
          f"days, {baseline['eval_examples']:,} examples ({baseline['eval_frauds']} frauds)")
    print(f"  PR-AUC  {baseline['pr_auc']:.3f}  target {low}-{high} {_verdict(in_band)}"
          + ("  (too easy: scenarios must overlap legitimate behaviour more)"
             if baseline["pr_auc"] > high else ""))
    print(f"  ROC-AUC {baseline['roc_auc']:.3f}")
    return met_time and met_memory and in_band


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-days", type=int, default=15,
                        help="the last N days are scored, the earlier ones train (default 15)")
    parser.add_argument("--beam-arg", action="append", default=[],
                        help="a Beam pipeline option for featurize, repeatable "
                             "(default: the in-process DirectRunner)")
    parser.add_argument("--work-dir", help="where to write the data (default: a temporary "
                                           "directory, removed at the end)")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.step:
        result = STEPS[args.step](args)
        with open(os.path.join(args.work_dir, f"{args.step}.result.json"), "w") as f:
            json.dump(result, f)
        return 0
    with work_directory(args.work_dir, "riskpipe-bench-") as args.work_dir:
        if os.path.exists(os.path.join(args.work_dir, "raw")):
            raise SystemExit(f"--work-dir {args.work_dir} already holds a benchmark; use another")
        runs = {name: run_step(name, args) for name in STEPS}
        met = report(args, runs)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

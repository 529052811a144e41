"""Pipeline scale benchmark: the whole local pipeline on 100 k and 1 M transactions.

    .venv/bin/python benchmarks/pipeline_scale.py \
        [--sizes 100000 1000000] [--beam-arg=--direct_running_mode=multi_processing ...]

For each size: simulate the data, run `riskpipe run` in a child process, then
read the wall time of every component and the Evaluator's metrics from MLMD.
Peak memory is the largest sum of the resident memory of the run's process
and its children (Beam workers), sampled every 0.2 s. A LightGBM baseline is
trained on the same FeatureGen train split and scored on the same eval split;
the DNN is scored on that split too, so both PR-AUCs are computed the same
way (sklearn's average precision; TFMA's value is shown beside it).

Targets: 1 M transactions end to end in under 15 minutes on 2 cores; the DNN's
PR-AUC within 0.03 of the baseline's. Exits 1 when a target is missed. Not a
test: it takes tens of minutes.
"""
import argparse
import glob
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from measure import run_measured, work_directory  # pylint: disable=wrong-import-position  # benchmarks/ is on sys.path
from common import runtime  # noqa: E402  # before TensorFlow is imported

runtime.use_keras_2()
runtime.quiet_startup(verbose=False)

TARGET_SECONDS_1M = 15 * 60
MAX_PR_AUC_GAP = 0.03
SAMPLE_SECONDS = 0.2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--fraud-rate", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", help="a `riskpipe run --config` YAML file")
    parser.add_argument("--beam-arg", action="append", default=[],
                        help="passed to `riskpipe run --beam-arg`, repeatable")
    parser.add_argument("--work-dir", help="keeps data and pipeline roots here "
                                           "(default: a temporary directory, removed)")
    return parser.parse_args(argv)


# --- running -------------------------------------------------------------------------------

def simulate(args, size: int, out: str) -> None:
    # pylint: disable=import-outside-toplevel
    from datagen.dataset import write_dataset
    from datagen.simulator import SimulationConfig

    write_dataset(SimulationConfig(transactions=size, days=args.days,
                                   fraud_rate=args.fraud_rate, seed=args.seed), out)


# --- scoring -------------------------------------------------------------------------------

def node_execution(metadata_path: str, node: str):
    """(the store, the execution of `node` in the latest run)."""
    from pipeline import mlmd_queries  # pylint: disable=import-outside-toplevel

    store = mlmd_queries.open_store(metadata_path)
    return store, next(e for n, e in mlmd_queries.latest_run_executions(store, "riskpipe")
                       if n == node)


def node_outputs(metadata_path: str, node: str):
    from pipeline import mlmd_queries  # pylint: disable=import-outside-toplevel

    store, execution = node_execution(metadata_path, node)
    return mlmd_queries.output_artifacts(store, execution.id)


def read_split(examples_uri: str, split: str, passthrough=()):
    """(serialized examples, feature columns dict, labels) of one FeatureGen split.

    The columns are the model features' and those of the `passthrough` features named.
    """
    # pylint: disable=import-outside-toplevel
    import numpy as np
    import tensorflow as tf

    from components import features

    kinds = {"int": tf.int64, "float": tf.float32, "string": tf.string}
    spec = {name: tf.io.FixedLenFeature(
        [], kinds[kind], default_value=np.nan if name in features.OPTIONAL_FEATURES else None)
        for name, kind in features.FEATURE_TYPES.items()
        if name in features.MODEL_FEATURES or name in passthrough}
    spec[features.LABEL_KEY] = tf.io.FixedLenFeature([], tf.int64)
    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    serialized, columns = [], {name: [] for name in spec}
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(8192):
        serialized.append(batch.numpy())
        for name, values in tf.io.parse_example(batch, spec).items():
            columns[name].append(values.numpy())
    columns = {name: np.concatenate(parts) for name, parts in columns.items()}
    for name in columns:
        if features.FEATURE_TYPES[name] == "string":
            columns[name] = np.array([value.decode("utf-8") for value in columns[name]])
    return np.concatenate(serialized), columns, columns.pop(features.LABEL_KEY)


def baseline_scores(train, train_labels, scored, seed: int):
    """Scores of `scored` by LightGBM trained on (`train`, `train_labels`) feature columns."""
    # pylint: disable=import-outside-toplevel
    import lightgbm
    import pandas as pd

    frames = [pd.DataFrame(columns) for columns in (train, scored)]
    categorical = [name for name in frames[0] if not pd.api.types.is_numeric_dtype(frames[0][name])]
    for name in categorical:
        levels = sorted(set(frames[0][name]) | set(frames[1][name]))
        for frame in frames:
            frame[name] = pd.Categorical(frame[name], categories=levels)
    model = lightgbm.LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=31,
                                    subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                                    random_state=seed, n_jobs=2, verbose=-1)
    model.fit(frames[0], train_labels, categorical_feature=categorical)
    return model.predict_proba(frames[1])[:, 1]


def model_scores(model_dir: str, serialized):
    """The fraud probabilities of the trained model's serving_default on `serialized`."""
    # pylint: disable=import-outside-toplevel
    import numpy as np
    import tensorflow as tf

    from common.serving_contract import EXAMPLES_INPUT, OUTPUT_KEY, SERVING_DEFAULT

    serve = tf.saved_model.load(model_dir).signatures[SERVING_DEFAULT]
    return np.concatenate([serve(**{EXAMPLES_INPUT: tf.constant(serialized[i:i + 4096])})
                           [OUTPUT_KEY].numpy()
                           for i in range(0, len(serialized), 4096)])


def quality(metadata_path: str, seed: int) -> dict:
    """PR-AUC and ROC-AUC of the run's model and of the baseline on the run's eval split."""
    # pylint: disable=import-outside-toplevel
    from pipeline import pipeline as dag
    from pipeline.run_summary import SERVING_MODEL_DIR
    from scoring import quality as score_quality  # benchmarks/ is on sys.path

    examples = node_outputs(metadata_path, dag.FEATURE_GEN)["examples"][0].uri
    model = node_outputs(metadata_path, dag.TRAINER)["model"][0].uri
    _, train, train_labels = read_split(examples, "train")
    serialized, scored, labels = read_split(examples, "eval")
    out = {"eval_examples": len(labels), "eval_frauds": int(labels.sum())}
    for name, scores in (("dnn", model_scores(os.path.join(model, SERVING_MODEL_DIR),
                                              serialized)),
                         ("baseline", baseline_scores(train, train_labels, scored, seed))):
        out[name] = score_quality(labels, scores)
    return out


# --- one size ------------------------------------------------------------------------------

def bench_size(args, size: int, work: str) -> dict:
    """Simulates `size` transactions, runs the pipeline on them, measures and scores it."""
    from pipeline import run_summary  # pylint: disable=import-outside-toplevel

    root = os.path.join(work, f"n{size}")
    data = os.path.join(root, "raw")
    if not os.path.isdir(data):
        print(f"simulating {size:,} transactions ...", flush=True)
        simulate(args, size, data)
    command = [sys.executable, "-m", "cli.main", "run", "--data", data,
               "--pipeline-root", os.path.join(root, "pipeline"),
               "--serving-root", os.path.join(root, "serving"), "--no-cache"]
    command += ["--config", args.config] if args.config else []
    command += [f"--beam-arg={arg}" for arg in args.beam_arg]
    print(f"running the pipeline on {size:,} transactions ...", flush=True)
    code, wall, peak = run_measured(command, REPO, SAMPLE_SECONDS)
    if code != 0:
        raise SystemExit(f"riskpipe run failed on {size:,} transactions (exit {code})")
    metadata = os.path.join(root, "pipeline", "metadata.sqlite")
    summary = run_summary.summarize(metadata, "riskpipe")
    return {"size": size, "wall_s": wall, "peak_mb": peak / 2**20, "summary": summary,
            "quality": quality(metadata, args.seed)}


# --- report --------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_report(args, results) -> bool:
    """Prints the tables; returns whether every target was met."""
    met = True
    print(f"\npipeline scale benchmark: {args.days} days, fraud rate {args.fraud_rate}, "
          f"seed {args.seed}, {os.cpu_count()} cores, beam args {args.beam_arg or 'none'}")
    nodes = [c.node for c in results[0]["summary"].components]
    header = f"{'component':<32}" + "".join(f"{r['size']:>14,}" for r in results)
    print("\nwall time per component (s)\n" + header)
    for node in nodes:
        cells = []
        for result in results:
            seconds = {c.node: c.seconds for c in result["summary"].components}.get(node)
            cells.append(f"{seconds:>14.1f}" if seconds is not None else f"{'-':>14}")
        print(f"{node:<32}" + "".join(cells))
    print(f"{'end to end (riskpipe run)':<32}" + "".join(f"{r['wall_s']:>14.1f}" for r in results))
    print(f"{'peak memory (MB)':<32}" + "".join(f"{r['peak_mb']:>14.0f}" for r in results))
    for result in results:
        if result["size"] >= 1_000_000:
            ok = result["wall_s"] * 1_000_000 / result["size"] < TARGET_SECONDS_1M
            met &= ok
            print(f"  {result['size']:,}: {result['wall_s'] / 60:.1f} min, target "
                  f"< {TARGET_SECONDS_1M // 60} min per 1 M transactions {verdict(ok)}")

    print("\nquality on the eval split (same examples for both models)")
    print(f"{'transactions':>14} {'eval rows':>10} {'frauds':>7} {'DNN PR-AUC':>11} "
          f"{'(TFMA)':>7} {'GBM PR-AUC':>11} {'gap':>7} {'DNN ROC':>8} {'GBM ROC':>8}  target")
    for result in results:
        q, tfma_pr = result["quality"], result["summary"].metrics.get("pr_auc", float("nan"))
        gap = q["baseline"]["pr_auc"] - q["dnn"]["pr_auc"]
        ok = gap <= MAX_PR_AUC_GAP
        met &= ok
        print(f"{result['size']:>14,} {q['eval_examples']:>10,} {q['eval_frauds']:>7} "
              f"{q['dnn']['pr_auc']:>11.3f} {tfma_pr:>7.3f} {q['baseline']['pr_auc']:>11.3f} "
              f"{gap:>+7.3f} {q['dnn']['roc_auc']:>8.3f} {q['baseline']['roc_auc']:>8.3f}  "
              f"gap <= {MAX_PR_AUC_GAP} {verdict(ok)}")
    return met


def main(argv=None) -> int:
    args = parse_args(argv)
    with work_directory(args.work_dir, "riskpipe-scale-") as work:
        results = [bench_size(args, size, work) for size in args.sizes]
        met = print_report(args, results)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

"""`riskpipe run`, `demo`, `schema` and `tensorboard`: the pipeline's subcommands.

TensorFlow, TFX and Beam are imported inside the handlers only. Component
logs are quiet unless --verbose; a failed run prints the failing component
and the root cause on one line and exits 1.
"""
import contextlib
import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import traceback
import warnings
from typing import Iterator, Optional

from absl import logging as absl_logging

from common.errors import UsageError
from pipeline.configs import TASKS, PipelineConfig, credit_defaults, load_config

DEMO_WORKDIR = os.path.join("runs", "demo")
# Written into the pipeline root after a credit run.
CURVES_FILE = "roc_ks.png"
# The credit demo's applications.
CREDIT_DEMO_ROWS = 20_000
# The demo's dataset: big enough for stable metrics, small enough for a few minutes.
DEMO_DATA = {"transactions": 60_000, "days": 30, "fraud_rate": 0.01, "seed": 0}
_PROGRESS_MESSAGE = "Component %s is running."
# Beam's worker processes inherit it (TensorFlow's own noise is hidden by the CLI).
_QUIET_ENV = {"PYTHONWARNINGS": "ignore"}


class PipelineFailed(Exception):
    """A component failed for a reason other than the data or a setting (exit 1)."""


def register(subparsers) -> None:
    _register_run(subparsers)
    _register_demo(subparsers)
    _register_schema(subparsers)
    _register_tensorboard(subparsers)


def _add_run_options(parser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="YAML file overriding PipelineConfig (sections feature_gen, "
                             "trainer, evaluation; see pipeline/configs.py)")
    parser.add_argument("--beam-arg", metavar="ARG", action="append", default=[],
                        help="a Beam pipeline option, repeatable, e.g. "
                             "--beam-arg=--direct_running_mode=multi_processing "
                             "--beam-arg=--direct_num_workers=2 (default: in-memory "
                             "DirectRunner, one worker)")
    parser.add_argument("--no-cache", action="store_true",
                        help="re-run every component even when its inputs are unchanged")
    parser.add_argument("--verbose", action="store_true",
                        help="show the full component, Beam and TensorFlow logs")


def _add_task_options(parser) -> None:
    parser.add_argument("--task", choices=TASKS, default="fraud",
                        help="fraud: card transactions (default); credit: a bank's application "
                             "table, see --label and --positive")
    parser.add_argument("--label", metavar="COLUMN",
                        help="credit: the label column (credit.label in --config)")
    parser.add_argument("--positive", metavar="VALUE",
                        help="credit: the label value that marks a default, e.g. 1 or bad "
                             "(credit.positive)")
    parser.add_argument("--id", metavar="COLUMN",
                        help="credit: an optional id column, the hash split's key (credit.id)")
    parser.add_argument("--date", metavar="COLUMN",
                        help="credit: an optional application date column; the latest "
                             "applications form the eval split (credit.date)")


def _register_run(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run the TFX pipeline locally",
        description="Run the riskpipe TFX pipeline on this machine (LocalDagRunner, MLMD in "
                    "SQLite under the pipeline root, Beam DirectRunner). Fraud: FeatureGen, "
                    "StatisticsGen, ImportSchemaGen, ExampleValidator (a gate: anomalies stop "
                    "the run), Transform, Trainer, Evaluator, Pusher. Credit (--task credit): "
                    "the table is checked (column types shown, errors name the file, row and "
                    "column), then CsvExampleGen, StatisticsGen, SchemaGen (first run) or "
                    "the kept schema, the same gate, Transform, Trainer, Evaluator (KS, "
                    "ROC-AUC), Pusher. Unchanged inputs reuse cached component outputs. Exit 1 "
                    "when the data is bad or a component fails, naming the component and the "
                    "cause.")
    parser.add_argument("--data", metavar="PATH",
                        help="fraud: raw transactions, DIR/date=YYYY-MM-DD/transactions.csv; "
                             "credit: a CSV file or a directory of CSV files with a header row")
    parser.add_argument("--pipeline-root", metavar="DIR",
                        help="component outputs and metadata.sqlite (MLMD)")
    parser.add_argument("--serving-root", metavar="DIR",
                        help="blessed models are pushed to DIR/<model_name>/<version>/")
    _add_task_options(parser)
    _add_run_options(parser)
    parser.set_defaults(func=run_command)


def _register_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="generate a dataset, run the pipeline and summarize it",
        description="Generate a default simulated dataset (reused when already there), run "
                    "the pipeline on it and print a summary: rows per split, fraud rate, "
                    "metrics against the blessing thresholds, sparsity, model size, and where "
                    "the pushed model, TensorBoard logs and MLMD are.")
    parser.add_argument("--workdir", metavar="DIR", default=DEMO_WORKDIR,
                        help="holds data/, pipeline/ and serving/ (default: %(default)s)")
    parser.add_argument("--transactions", metavar="N", type=int,
                        default=DEMO_DATA["transactions"],
                        help="transactions to simulate (default: %(default)s)")
    parser.add_argument("--days", metavar="N", type=int, default=DEMO_DATA["days"],
                        help="days to simulate (default: %(default)s)")
    parser.add_argument("--task", choices=TASKS, default="fraud",
                        help="credit: simulated credit applications instead (see --rows)")
    parser.add_argument("--rows", metavar="N", type=int, default=CREDIT_DEMO_ROWS,
                        help="credit: applications to simulate (default: %(default)s)")
    _add_run_options(parser)
    parser.set_defaults(func=demo_command)


def _register_schema(subparsers) -> None:
    parser = subparsers.add_parser(
        "schema", help="bootstrap or refresh schema/schema.pbtxt from data",
        description="Featurize the raw data as FeatureGen does, infer a schema with TFDV from "
                    "the train split, keep the curated domains and comparators of the "
                    "existing schema (or set the defaults of the data contract), and write it "
                    "for review. Prints the features added or removed and any anomaly of the "
                    "data against the new schema.")
    parser.add_argument("--data", metavar="PATH", required=True,
                        help="fraud: raw transactions, DIR/date=YYYY-MM-DD/transactions.csv; "
                             "credit: the application table (CSV file or directory)")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="schema file to write (fraud default: schema/schema.pbtxt of "
                             "riskpipe; required for credit)")
    _add_task_options(parser)
    parser.add_argument("--config", metavar="FILE",
                        help="credit: a YAML file whose credit: section describes the table")
    parser.add_argument("--eval-days", metavar="N", type=int, default=7,
                        help="days at the end that form the eval split (default: %(default)s)")
    parser.add_argument("--beam-arg", metavar="ARG", action="append", default=[],
                        help="a Beam pipeline option, repeatable")
    parser.add_argument("--verbose", action="store_true", help="show the full logs")
    parser.set_defaults(func=schema_command)


def _register_tensorboard(subparsers) -> None:
    parser = subparsers.add_parser(
        "tensorboard", help="start TensorBoard on the latest Trainer run",
        description="Start TensorBoard on the logs of the latest Trainer run recorded in the "
                    "pipeline's MLMD.")
    parser.add_argument("--pipeline-root", metavar="DIR", required=True)
    parser.add_argument("--port", type=int, default=6006, help="(default: %(default)s)")
    parser.add_argument("--host", default="localhost", help="(default: %(default)s)")
    parser.set_defaults(func=tensorboard_command)


# ---------------------------------------------------------------------------
# Logging: quiet by default, complete with --verbose.

class _ProgressHandler(logging.Handler):
    """Prints one line as each pipeline component starts."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == _PROGRESS_MESSAGE and record.args:
            print(f"  running {record.args[0]} ...", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _component_logging(verbose: bool) -> Iterator[None]:
    """Logging and warnings for a pipeline command; restores the previous state on exit."""
    saved_env = {key: os.environ.get(key) for key in _QUIET_ENV}
    os.environ.update({} if verbose else _QUIET_ENV)
    absl, root = logging.getLogger("absl"), logging.getLogger()
    saved = (absl_logging.get_verbosity(), absl.propagate, list(absl.handlers), root.level,
             list(root.handlers))
    progress = _ProgressHandler()
    # TFX logs through absl at INFO. Set through absl's verbosity flag: TensorFlow
    # sets the flag to FATAL and back while saving a model, which resets the
    # logger's own level to the flag's value.
    absl_logging.set_verbosity(absl_logging.INFO)
    with warnings.catch_warnings():
        if verbose:
            root.setLevel(logging.INFO)
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            root.addHandler(handler)
        else:
            warnings.simplefilter("ignore")
            # Keep TFX's records for the progress lines only.
            absl.propagate = False
            absl.handlers = [progress]
            root.setLevel(logging.CRITICAL)
            root.addHandler(logging.NullHandler())
        # Components print their own progress (Keras epochs) to stdout.
        quiet_stdout = contextlib.nullcontext() if verbose else \
            contextlib.redirect_stdout(io.StringIO())
        try:
            with quiet_stdout:
                yield
        finally:
            absl_logging.set_verbosity(saved[0])
            absl.propagate, absl.handlers = saved[1], saved[2]
            root.setLevel(saved[3])
            root.handlers = saved[4]
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


# ---------------------------------------------------------------------------
# run / demo

def _credit_flags(config: PipelineConfig, args) -> PipelineConfig:
    flags = {key: getattr(args, key, None) for key in ("label", "positive", "id", "date")}
    credit = dataclasses.replace(config.credit, **{k: v for k, v in flags.items() if v})
    if not credit.label or not credit.positive:
        raise UsageError("--task credit needs --label COLUMN and --positive VALUE "
                         "(or credit.label and credit.positive in --config)")
    return dataclasses.replace(config, credit=credit)


def _pipeline_config(args, base: Optional[PipelineConfig] = None) -> PipelineConfig:
    """The PipelineConfig of `base`, the task, the --config file and the command-line flags."""
    base = base or PipelineConfig()
    if getattr(args, "task", "fraud") == "credit":
        base = credit_defaults(base)
    config = load_config(args.config, base)
    flags = {"data_root": getattr(args, "data", None),
             "pipeline_root": getattr(args, "pipeline_root", None),
             "serving_root": getattr(args, "serving_root", None)}
    config = dataclasses.replace(config, **{k: v for k, v in flags.items() if v})
    if config.task == "credit":
        config = _credit_flags(config, args)
    config = dataclasses.replace(config, beam_args=list(config.beam_args) + args.beam_arg,
                                 enable_cache=config.enable_cache and not args.no_cache)
    missing = [flag for flag, value in (("--data", config.data_root),
                                        ("--pipeline-root", config.pipeline_root),
                                        ("--serving-root", config.serving_root)) if not value]
    if missing:
        raise UsageError(f"missing {', '.join(missing)} (flags or data_root / pipeline_root / "
                         "serving_root in --config)")
    exists = os.path.exists if config.task == "credit" else os.path.isdir
    if not exists(config.data_root):
        raise UsageError(f"--data {config.data_root}: no such "
                         f"{'file or directory' if config.task == 'credit' else 'directory'}")
    return config


def run_pipeline(config: PipelineConfig, verbose: bool = False,
                 credit_table=None) -> PipelineConfig:
    """Runs the pipeline; returns the resolved config the run used.

    Raises DataError (or UsageError) naming the component when bad data (or a
    bad setting) stopped the run, and PipelineFailed for any other failure.
    """
    # pylint: disable=import-outside-toplevel
    from pipeline import local_runner

    with _component_logging(verbose):
        try:
            return local_runner.run(config, credit_table)
        except local_runner.ComponentFailure as failure:
            if verbose:
                traceback.print_exception(type(failure.__cause__), failure.__cause__,
                                          failure.__cause__.__traceback__)
            if failure.error_class is not None:
                raise failure.error_class(f"{failure.component}: {failure.cause}") from failure
            raise PipelineFailed(str(failure)) from failure


def _print_summary(config: PipelineConfig, staged=None) -> None:
    """The run's summary; for credit (`staged`: its table) also the PNG of its curves."""
    # pylint: disable=import-outside-toplevel
    from pipeline import credit_plots, run_summary

    label = {"label": staged.table.label} if staged else {}
    with _component_logging(verbose=False):
        summary = run_summary.summarize(config.metadata_path, config.pipeline_name, **label)
    print(run_summary.format_summary(
        summary, config.credit.blessing if staged else config.evaluation))
    curves = (summary.credit_evaluation or {}).get("curves")
    if curves:
        path = os.path.join(config.pipeline_root, CURVES_FILE)
        credit_plots.write_roc_ks_png(path, curves)
        print(f"ROC and KS curves: {path}")


def _checked_credit_table(config: PipelineConfig):
    """Checks and stages a credit table, printing its columns as riskpipe reads them."""
    from components.credit import table  # pylint: disable=import-outside-toplevel
    from pipeline import local_runner  # pylint: disable=import-outside-toplevel

    staged = local_runner.stage_credit_table(config)
    print(table.describe(staged.table))
    split = (f"out of time on {staged.table.date}: eval from {staged.eval_start_date} "
             f"({staged.split_rows.get('eval', 0)} rows), train before it "
             f"({staged.split_rows.get('train', 0)} rows)" if staged.eval_start_date else
             f"hash of {staged.table.id or 'each row'}, {config.credit.eval_fraction:.0%} to eval")
    print(f"split: {split}")
    return staged


def _run_and_report(config: PipelineConfig, args, command: str) -> Optional[PipelineConfig]:
    """Runs and prints the summary; None (after printing why) when a component failed."""
    try:
        staged = _checked_credit_table(config) if config.task == "credit" else None
        config = run_pipeline(config, args.verbose, staged)
    except PipelineFailed as err:
        hint = "" if args.verbose else " (rerun with --verbose for the component logs)"
        print(f"riskpipe {command}: error: {err}{hint}", file=sys.stderr)
        return None
    _print_summary(config, staged)
    return config


def run_command(args) -> int:
    config = _pipeline_config(args)
    return 0 if _run_and_report(config, args, "run") else 1


def _demo_dataset(path: str, transactions: int, days: int) -> None:
    """Simulates the demo data into `path` unless the same dataset is already there."""
    # pylint: disable=import-outside-toplevel
    from datagen import dataset
    from datagen.simulator import SimulationConfig

    wanted = SimulationConfig(transactions=transactions, days=days,
                              fraud_rate=DEMO_DATA["fraud_rate"], seed=DEMO_DATA["seed"])
    if dataset.is_dataset(path):
        with open(os.path.join(path, dataset.MANIFEST)) as f:
            have = json.load(f)["parameters"]
        if all(have.get(k) == getattr(wanted, k)
               for k in ("transactions", "days", "fraud_rate", "seed", "start_date")):
            print(f"using the dataset in {path}")
            return
    print(f"generating {transactions} transactions over {days} days into {path} ...")
    dataset.write_dataset(wanted, path, overwrite=True)


def _credit_demo(args) -> int:
    """The credit demo: simulated applications, the credit pipeline, and how to score them."""
    from datagen import credit  # pylint: disable=import-outside-toplevel

    if args.rows < 100:
        raise UsageError("--rows must be at least 100")
    workdir = os.path.join(os.path.abspath(args.workdir), "credit")
    data = os.path.join(workdir, "data")
    print(f"generating {args.rows} credit applications into {data} ...")
    credit.write_credit_table(data, rows=args.rows, default_rate=credit.DEFAULT_DEFAULT_RATE,
                              seed=0, start_date=credit.DEFAULT_START_DATE, overwrite=True)
    args.label, args.positive = credit.LABEL, "1"
    args.id, args.date = "application_id", "application_date"
    base = credit_defaults(PipelineConfig(
        data_root=os.path.join(data, credit.TABLE), pipeline_root=os.path.join(workdir, "pipeline"),
        serving_root=os.path.join(workdir, "serving")))
    config = _run_and_report(_pipeline_config(args, base), args, "demo")
    if config is None:
        return 1
    base_path = os.path.join(config.serving_root, config.model_name)
    print("\nnext: serve the pushed model, then decide on applications with it:\n"
          f"  riskpipe serve --port=8500 --model_name={config.model_name} "
          f"--model_base_path={base_path}\n"
          f"  riskpipe score --task credit --server localhost:8500 --id application_id "
          f"--input {config.data_root}")
    return 0


def demo_command(args) -> int:
    if args.task == "credit":
        return _credit_demo(args)
    if args.transactions < 1 or args.days < 2:
        raise UsageError("--transactions must be at least 1 and --days at least 2")
    workdir = os.path.abspath(args.workdir)
    base = PipelineConfig(data_root=os.path.join(workdir, "data"),
                          pipeline_root=os.path.join(workdir, "pipeline"),
                          serving_root=os.path.join(workdir, "serving"))
    _demo_dataset(base.data_root, args.transactions, args.days)
    config = _run_and_report(_pipeline_config(args, base), args, "demo")
    if config is None:
        return 1
    from pipeline.pipeline import serving_model_dir  # pylint: disable=import-outside-toplevel

    base_path = serving_model_dir(config)
    if os.path.isdir(base_path) and os.listdir(base_path):
        print("\nnext: serve the pushed model, then score transactions against it:\n"
              f"  riskpipe serve --port=8500 --model_name={config.model_name} "
              f"--model_base_path={base_path}")
    else:
        print("\nno model was blessed, so nothing can be served yet: see the failed bounds "
              "above (section evaluation of --config sets them)")
    print(f"  riskpipe tensorboard --pipeline-root {config.pipeline_root}")
    return 0


# ---------------------------------------------------------------------------
# schema / tensorboard

def _credit_schema(args) -> int:
    """Infers a credit schema (every column variable-length) from the checked table."""
    # pylint: disable=import-outside-toplevel
    import tensorflow_data_validation as tfdv

    from components.credit import table
    from pipeline import schema_update

    if not args.out:
        raise UsageError("--task credit needs --out FILE, the schema file to write")
    config = _credit_flags(load_config(args.config, credit_defaults(PipelineConfig())), args)
    with tempfile.TemporaryDirectory(prefix="riskpipe-schema-") as tmp:
        staged = table.stage_table(args.data, config.credit, tmp)
        print(table.describe(staged.table))
        with _component_logging(args.verbose):
            statistics = tfdv.generate_statistics_from_csv(
                os.path.join(staged.directory, "*", table.STAGED_FILE))
    schema = tfdv.infer_schema(statistics, infer_feature_shape=False)
    schema_update.write_schema(schema, args.out, schema_update.CREDIT_HEADER)
    print(f"wrote {args.out}: {len(schema.feature)} features; review it, then pass it as "
          "schema_path in --config")
    return 0


def schema_command(args) -> int:
    from pipeline.schema_update import DEFAULT_SCHEMA_PATH  # pylint: disable=import-outside-toplevel

    if args.task == "credit":
        return _credit_schema(args)
    if not os.path.isdir(args.data):
        raise UsageError(f"--data {args.data}: no such directory")
    out = args.out or DEFAULT_SCHEMA_PATH
    with _component_logging(args.verbose):
        schema, problems, added, removed = _refresh_schema(args.data, out, args.eval_days,
                                                           args.beam_arg)
    print(f"wrote {out}: {len(schema.feature)} features"
          + (f"; added {', '.join(added)}" if added else "")
          + (f"; removed {', '.join(removed)}" if removed else ""))
    for line in problems:
        print(f"  anomaly: {line}")
    print("review the change (e.g. git diff) before committing it")
    return 0


def _refresh_schema(data: str, out: str, eval_days: int, beam_args):
    """(schema, anomaly lines, added, removed) after rewriting `out` from `data`."""
    # pylint: disable=import-outside-toplevel
    import tensorflow_data_validation as tfdv

    from components.anomaly_gate.executor import describe
    from components.feature_gen.executor import SPLITS, featurize
    from pipeline import schema_update

    previous = schema_update.load_schema(out)
    with tempfile.TemporaryDirectory(prefix="riskpipe-schema-") as tmp:
        featurize(data, tmp, eval_days=eval_days, beam_args=beam_args)
        inferred, stats = schema_update.infer_from_examples(
            {split: os.path.join(tmp, f"Split-{split}", "*") for split in SPLITS}, beam_args)
    schema = schema_update.curate(inferred, previous)
    schema_update.write_schema(schema, out)
    problems = describe({split: tfdv.validate_statistics(s, schema) for split, s in stats.items()})
    added, removed = schema_update.feature_changes(schema, previous)
    return schema, problems, added, removed


def tensorboard_command(args) -> int:
    from pipeline import mlmd_queries  # pylint: disable=import-outside-toplevel

    metadata = os.path.join(os.path.abspath(args.pipeline_root), "metadata.sqlite")
    if not os.path.exists(metadata):
        raise UsageError(f"--pipeline-root {args.pipeline_root}: no pipeline metadata "
                         f"({metadata}); run `riskpipe run` first")
    with _component_logging(verbose=False):
        logdir = mlmd_queries.latest_model_run(metadata)
    if logdir is None:
        raise UsageError(f"--pipeline-root {args.pipeline_root}: no Trainer run recorded yet")
    print(f"TensorBoard on {logdir}\n  http://{args.host}:{args.port}/  (Ctrl-C to stop)")
    return subprocess.call([sys.executable, "-m", "tensorboard.main", "--logdir", logdir,
                            "--host", args.host, "--port", str(args.port)])

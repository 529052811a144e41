"""`riskpipe score` and `riskpipe rollout`: the risk engine and the canary controller.

`riskpipe score` has two tasks: fraud (the default; raw transactions in time
order through online features, routing and the fraud policy) and credit (an
applications CSV through the credit model's `explain` signature and the credit
policy, engine/credit_scoring.py); each has its own handler below.

TensorFlow and gRPC are imported inside the handlers, so `riskpipe --help`
stays fast.
"""
import argparse
import csv
import glob
import io
import json
import os
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence

from common.errors import DataError, UsageError
from common.serving_contract import PREDICT_SIGNATURES, SERVING_DEFAULT
from components.transactions import PARTITION_GLOB, Transaction

# Consecutive transactions failing on an unreachable fleet before `score` gives up.
MAX_CONSECUTIVE_UNAVAILABLE = 20
MAX_ERRORS_LISTED = 10
TASKS = ("fraud", "credit")
# Per task: the model name and the deadline of one scoring call (a credit call
# scores a batch of applications with the reason codes' occlusion).
DEFAULT_MODEL_NAMES = {"fraud": "fraud", "credit": "credit"}
DEFAULT_DEADLINES = {"fraud": 2.0, "credit": 30.0}
# The flags only fraud scoring reads (dest, flag).
FRAUD_ONLY_FLAGS = (("history", "--history"), ("shadow", "--shadow"),
                    ("signature", "--signature"), ("output_key", "--output-key"))


def register(subparsers) -> None:
    _register_score(subparsers)
    _register_rollout(subparsers)


# --- riskpipe score ----------------------------------------------------------------------


def _register_score(subparsers) -> None:
    parser = subparsers.add_parser(
        "score", help="score raw transactions (APPROVE/REVIEW/BLOCK) or credit applications "
                      "(--task credit: APPROVE/REVIEW/DECLINE) on a model server fleet",
        description="Scores raw transactions in time order: online features, canary routing "
                    "by version label, the model server's score, then the decision policy. "
                    "Writes one decision per transaction and prints a summary per model "
                    "version. A transaction that gets no score is decided by the rules and "
                    "the policy's on_model_error, carries the error in its record, and makes "
                    "the exit code 1. With --task credit: one decision per application of a "
                    "CSV file, from the credit model's score points, its reason codes and the "
                    "credit policy (engine/credit_policy_default.yaml).")
    parser.add_argument("--task", choices=TASKS, default="fraud",
                        help="fraud: transactions (default); credit: credit applications")
    parser.add_argument("--server", required=True, metavar="ADDR[,ADDR...]",
                        help="model server gRPC addresses HOST:PORT, used round-robin")
    parser.add_argument("--ssl-config", metavar="FILE",
                        help="SSLConfig text proto for TLS (custom_ca: the CA to trust; "
                             "server_cert/server_key: the client certificate for mutual TLS)")
    parser.add_argument("--tls-server-name", default="",
                        help="name to check the server certificate against")
    parser.add_argument("--input", required=True, metavar="FILE|DIR",
                        help="a transactions CSV, or a directory of date=YYYY-MM-DD/"
                             "transactions.csv partitions; for --task credit an applications "
                             "CSV with the bank's header (delimiter , ; tab or |)")
    parser.add_argument("--id", metavar="COLUMN",
                        help="--task credit: the applications' id column (header or column "
                             "name), echoed in each decision; default: the row number")
    parser.add_argument("--history", metavar="FILE|DIR",
                        help="earlier transactions, same layout as --input, that only build "
                             "the online state (card windows, terminal fraud rates, card "
                             "age) before --input is scored; they must all precede it")
    parser.add_argument("--policy", metavar="FILE",
                        help="decision policy YAML (default: engine/policy_default.yaml; "
                             "engine/credit_policy_default.yaml for --task credit)")
    parser.add_argument("--output", default="-", metavar="FILE",
                        help="decisions file, CSV if it ends in .csv, else JSON lines "
                             "(default: JSON lines on stdout, summary on stderr)")
    parser.add_argument("--model-name",
                        help="default: fraud, or credit for --task credit")
    parser.add_argument("--routing-file", metavar="FILE",
                        help="canary routing file written by 'riskpipe rollout' "
                             "(<model_config_file>.routing.json); without it no version "
                             "label is sent and the servers answer with their latest version; "
                             "credit applications are routed by id")
    parser.add_argument("--shadow", action="store_true",
                        help="score every transaction on both stable and canary and record "
                             "the disagreements (needs a canary in the routing file)")
    parser.add_argument("--signature", choices=PREDICT_SIGNATURES,
                        help=f"default: {SERVING_DEFAULT}")
    parser.add_argument("--output-key", help="the model output holding the score")
    parser.add_argument("--deadline", type=float, metavar="SECONDS",
                        help="deadline of one scoring call, retries included (default: "
                             f"{DEFAULT_DEADLINES['fraud']:g}; {DEFAULT_DEADLINES['credit']:g} for "
                             "--task credit, whose calls score batches)")
    parser.set_defaults(func=run_score)


def read_input(path: str) -> List[Transaction]:
    """Every transaction under `path`, in (timestamp, transaction_id) order."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, PARTITION_GLOB)))
        if not files:
            raise DataError(f"{path}: no transaction files matching {PARTITION_GLOB}")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise UsageError(f"--input {path}: no such file or directory")
    from components.feature_gen.raw_data import (  # pylint: disable=import-outside-toplevel
        read_transactions)

    seen: Dict[str, str] = {}
    txns = []
    for name in files:
        for txn in read_transactions(name, labelled=False):
            if txn.transaction_id in seen:
                raise DataError(f"{name}: column 'transaction_id': '{txn.transaction_id}' "
                                f"appears more than once (also in {seen[txn.transaction_id]})")
            seen[txn.transaction_id] = name
            txns.append(txn)
    txns.sort(key=lambda t: (t.timestamp, t.transaction_id))
    return txns


def _csv_item(value: Any) -> str:
    """One list item of a CSV cell; a mapping (a credit reason) is its values joined by '='."""
    if isinstance(value, Mapping):
        return "=".join(str(v) for v in value.values())
    return str(value)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " | ".join(_csv_item(v) for v in value)
    return str(value)


def write_records(path: str, records: Sequence[Mapping[str, Any]],
                  fields: Optional[Sequence[str]] = None) -> None:
    """Writes decision records as CSV (.csv) or JSON lines; whole file or nothing.

    `fields` are the CSV columns, fraud's RECORD_FIELDS by default.
    """
    from common.files import atomic_write_text  # pylint: disable=import-outside-toplevel

    if fields is None:
        from engine.risk_engine import RECORD_FIELDS  # pylint: disable=import-outside-toplevel
        fields = RECORD_FIELDS
    buffer = io.StringIO()
    if path.endswith(".csv"):
        writer = csv.writer(buffer)
        writer.writerow(fields)
        for record in records:
            writer.writerow([_csv_cell(record.get(name)) for name in fields])
    else:
        for record in records:
            buffer.write(json.dumps(record, separators=(",", ":")) + "\n")
    if path == "-":
        sys.stdout.write(buffer.getvalue())
        return
    try:
        atomic_write_text(path, buffer.getvalue())
    except OSError as err:
        raise UsageError(f"--output {path}: cannot write: {err.strerror}") from err


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None:
        return "-"
    return format(value, spec)


def format_summary(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """A table of the per-version figures of `engine.risk_engine.summarize`."""
    head = (f"{'model version':<14} {'requests':>8} {'APPROVE':>8} {'REVIEW':>7} {'BLOCK':>6} "
            f"{'errors':>6} {'fraud caught':>12} {'missed':>6} {'FP rate':>8} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'grpc p50':>8} {'grpc p99':>8} {'shadow agree':>12}")
    lines = [head]
    for version, f in summary.items():
        d = f["decisions"]
        labelled = f["labelled"] > 0
        lines.append(
            f"{version:<14} {f['requests']:>8} {d.get('APPROVE', 0):>8} {d.get('REVIEW', 0):>7} "
            f"{d.get('BLOCK', 0):>6} {f['errors']:>6} "
            f"{(f['fraud_caught'] if labelled else '-'):>12} "
            f"{(f['fraud_missed'] if labelled else '-'):>6} "
            f"{_fmt(f['false_positive_rate'], '.4f'):>8} "
            f"{_fmt(f['latency_ms_p50']):>7} {_fmt(f['latency_ms_p99']):>7} "
            f"{_fmt(f['grpc_ms_p50']):>8} {_fmt(f['grpc_ms_p99']):>8} "
            f"{_fmt(f['shadow_agreement'], '.4f'):>12}")
    return "\n".join(lines)


def _load_policy(path: Optional[str]):
    from engine.policy import (  # pylint: disable=import-outside-toplevel
        PolicyError, default_policy_path, load_policy)

    try:
        return load_policy(path or default_policy_path())
    except PolicyError as err:
        raise UsageError(f"--policy: {err}") from err


def _addresses(text: str):
    from engine.client import parse_addresses  # pylint: disable=import-outside-toplevel

    try:
        addresses = parse_addresses(text)
    except ValueError as err:
        raise UsageError(f"--server: {err}") from err
    if not addresses:
        raise UsageError("--server: no address given")
    return addresses


def _router(model_name: str, routing_file: Optional[str]):
    from engine.routing import Router, RoutingError  # pylint: disable=import-outside-toplevel

    try:
        return Router(model_name, routing_file)
    except RoutingError as err:
        raise UsageError(f"--routing-file: {err}") from err


def run_score(args: argparse.Namespace) -> int:
    """`riskpipe score`: the handler of the chosen --task."""
    model_name = args.model_name or DEFAULT_MODEL_NAMES[args.task]
    deadline = DEFAULT_DEADLINES[args.task] if args.deadline is None else args.deadline
    if deadline <= 0:
        raise UsageError("--deadline must be positive")
    if args.task == "credit":
        return run_credit_score(args, model_name, deadline)
    if args.id is not None:
        raise UsageError("--id is for --task credit (fraud records carry the transaction_id)")
    return run_fraud_score(args, model_name, deadline)


# --- riskpipe score --task fraud ---------------------------------------------------------


def run_fraud_score(args: argparse.Namespace, model_name: str, deadline: float) -> int:
    policy = _load_policy(args.policy)
    addresses = _addresses(args.server)
    router = _router(model_name, args.routing_file)
    transactions = read_input(args.input)
    history = read_input(args.history) if args.history else []
    if history and transactions and history[-1].timestamp > transactions[0].timestamp:
        raise UsageError(f"--history {args.history} runs until {history[-1].timestamp}, after "
                         f"the first --input transaction ({transactions[0].timestamp})")

    from engine.client import (  # pylint: disable=import-outside-toplevel
        ClientOptions, NoServerError, RiskEngineClient)
    from components.features import OnlineFeatureBuilder  # pylint: disable=import-outside-toplevel
    from engine.risk_engine import (  # pylint: disable=import-outside-toplevel
        RiskEngine, served_features, summarize)

    options = ClientOptions(addresses=addresses, model_name=model_name,
                            ssl_config_file=args.ssl_config, tls_server_name=args.tls_server_name,
                            deadline_seconds=deadline, signature=args.signature or SERVING_DEFAULT,
                            output_key=args.output_key)
    with RiskEngineClient(options) as client:
        try:
            client.require_healthy()
        except NoServerError as err:
            raise UsageError(f"--server: {err}") from err
        engine = RiskEngine(client, policy, router, shadow=args.shadow,
                            features=OnlineFeatureBuilder(served_features(client, router)))
        for txn in history:
            engine.observe(txn)
        records = _score_stream(engine, transactions)
    write_records(args.output, records)
    report = sys.stderr if args.output == "-" else sys.stdout
    print(format_summary(summarize(records)), file=report)
    failed = [r for r in records if r["error"]]
    for record in failed[:MAX_ERRORS_LISTED]:
        print(f"not scored: {record['transaction_id']}: {record['error']}", file=sys.stderr)
    if len(failed) > MAX_ERRORS_LISTED:
        print(f"not scored: ... and {len(failed) - MAX_ERRORS_LISTED} more (see the 'error' "
              "field of the output)", file=sys.stderr)
    return 1 if failed else 0


def _score_stream(engine, transactions: Sequence[Transaction]) -> List[Dict[str, Any]]:
    """Scores every transaction; gives up (writing nothing) on a fleet that stays down."""
    records = []
    unavailable_run = 0
    for txn in transactions:
        try:
            record = engine.score(txn)
        except ValueError as err:
            raise DataError(f"transaction {txn.transaction_id}: {err}") from err
        unavailable_run = unavailable_run + 1 if record["error"].startswith("UNAVAILABLE") else 0
        if unavailable_run >= MAX_CONSECUTIVE_UNAVAILABLE:
            raise DataError(f"the servers were unavailable for {unavailable_run} transactions "
                            f"in a row (last: {record['error']}); stopped after "
                            f"{len(records) + 1} of {len(transactions)}, nothing written")
        records.append(record)
    return records


# --- riskpipe score --task credit --------------------------------------------------------


def _load_credit_policy(path: Optional[str]):
    from engine.credit_policy import (  # pylint: disable=import-outside-toplevel
        default_credit_policy_path, load_credit_policy)
    from engine.policy import PolicyError  # pylint: disable=import-outside-toplevel

    try:
        return load_credit_policy(path or default_credit_policy_path())
    except PolicyError as err:
        raise UsageError(f"--policy: {err}") from err


def _check_credit_flags(args: argparse.Namespace) -> None:
    """The fraud-only flags are a usage error with --task credit."""
    for dest, flag in FRAUD_ONLY_FLAGS:
        if getattr(args, dest) not in (None, False):
            raise UsageError(f"{flag} is for --task fraud only, not --task credit")


def format_credit_summary(summary: Mapping[str, Mapping[str, int]]) -> str:
    """A table of the per-version counts of `engine.credit_scoring.summarize`."""
    lines = [f"{'model version':<14} {'applications':>12} {'APPROVE':>8} {'REVIEW':>7} "
             f"{'DECLINE':>8} {'errors':>6}"]
    for version, counts in summary.items():
        lines.append(f"{version:<14} {counts['applications']:>12} {counts['APPROVE']:>8} "
                     f"{counts['REVIEW']:>7} {counts['DECLINE']:>8} {counts['errors']:>6}")
    return "\n".join(lines)


def run_credit_score(args: argparse.Namespace, model_name: str, deadline: float) -> int:
    """Decisions on an applications CSV: JSON lines or CSV records, counts on stderr."""
    _check_credit_flags(args)
    policy = _load_credit_policy(args.policy)
    addresses = _addresses(args.server)
    router = _router(model_name, args.routing_file) if args.routing_file else None
    if not os.path.isfile(args.input):
        raise UsageError(f"--input {args.input}: no such file (--task credit reads one "
                         f"applications CSV)")

    from engine.client import (  # pylint: disable=import-outside-toplevel
        ClientOptions, NoServerError, RiskEngineClient, ScoringError)
    from engine.credit_scoring import (  # pylint: disable=import-outside-toplevel
        CREDIT_RECORD_FIELDS, ModelContractError, read_applications, score_applications,
        summarize)

    applications = read_applications(args.input, id_column=args.id)
    options = ClientOptions(addresses=addresses, model_name=model_name,
                            ssl_config_file=args.ssl_config, tls_server_name=args.tls_server_name,
                            deadline_seconds=deadline)
    with RiskEngineClient(options) as client:
        try:
            client.require_healthy()
        except NoServerError as err:
            raise UsageError(f"--server: {err}") from err
        try:
            records = score_applications(client, applications, policy, router)
        except ModelContractError as err:
            raise UsageError(f"--model-name {model_name}: {err}") from err
        except ScoringError as err:  # GetModelMetadata: no answer on the model's signatures
            flag = "--model-name" if err.code == "NOT_FOUND" else "--server"
            raise UsageError(f"{flag}: cannot read the signatures of model '{model_name}': "
                             f"{err.code}: {err}") from err
    write_records(args.output, records, fields=CREDIT_RECORD_FIELDS)
    print(format_credit_summary(summarize(records)), file=sys.stderr)
    failed = [r for r in records if r["error"]]
    for record in failed[:MAX_ERRORS_LISTED]:
        print(f"not scored: {record['id']} (row {record['row']}): {record['error']}",
              file=sys.stderr)
    if len(failed) > MAX_ERRORS_LISTED:
        print(f"not scored: ... and {len(failed) - MAX_ERRORS_LISTED} more (see the 'error' "
              "field of the output)", file=sys.stderr)
    return 1 if failed else 0


# --- riskpipe rollout --------------------------------------------------------------------


def _register_rollout(subparsers) -> None:
    parser = subparsers.add_parser(
        "rollout", help="canary rollout through the fleet's model config file",
        description="Drives a canary through the ModelServerConfig file that every server "
                    "polls (--model_config_file). Each step validates the new config, writes "
                    "it atomically and waits for every server; a failed step restores the "
                    "previous config. The canary share is published in "
                    "<model_config_file>.routing.json for the clients.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model-config", required=True, metavar="FILE",
                        help="the ModelServerConfig text proto the servers poll")
    common.add_argument("--server", metavar="ADDR[,ADDR...]",
                        help="every server of the fleet, HOST:PORT (required except for "
                             "status)")
    common.add_argument("--ssl-config", metavar="FILE",
                        help="client SSLConfig text proto for TLS servers")
    common.add_argument("--tls-server-name", default="")
    common.add_argument("--model-name", default="fraud")
    common.add_argument("--routing-file", metavar="FILE",
                        help="default: <model-config>.routing.json")
    common.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                        help="how long to wait for every server to take a change")
    common.add_argument("--client-grace", type=float, default=3.0, metavar="SECONDS",
                        help="how long clients may keep routing by an old routing file")
    steps = parser.add_subparsers(dest="step", metavar="STEP")
    steps.required = True

    stage = steps.add_parser("stage", parents=[common],
                             help="add VERSION and wait until every server has it AVAILABLE")
    stage.add_argument("version", type=int)
    canary = steps.add_parser("canary", parents=[common],
                              help="point the canary label at VERSION and publish its share")
    canary.add_argument("version", type=int)
    canary.add_argument("--share", type=float, required=True,
                        help="share of cards routed to the canary, in [0, 1]")
    canary.add_argument("--shadow", action="store_true",
                        help="clients also score every transaction on the other label")
    promote = steps.add_parser("promote", parents=[common],
                               help="move stable to the canary version; the old one stays "
                                    "loaded as `previous`")
    rollback = steps.add_parser("rollback", parents=[common],
                                help="remove the canary; stable is untouched")
    revert = steps.add_parser("revert", parents=[common],
                              help="move stable back to `previous` (one label move)")
    status = steps.add_parser("status", parents=[common],
                              help="versions, labels, share, per-version figures")
    status.add_argument("--records", nargs="*", default=[], metavar="FILE",
                        help="decision records written by 'riskpipe score' (JSON lines)")
    status.add_argument("--metrics", nargs="*", default=[], metavar="URL",
                        help="Prometheus endpoints of the servers")
    for step in (stage, canary, promote, rollback, revert, status):
        step.set_defaults(func=run_rollout)


def read_records(paths: Sequence[str]) -> List[Dict[str, Any]]:
    """Decision records from JSON-lines files written by `riskpipe score`."""
    records = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if line.strip():
                        records.append(json.loads(line))
        except OSError as err:
            raise UsageError(f"--records {path}: {err.strerror}") from err
        except ValueError as err:
            raise DataError(f"{path}:{number}: not a JSON decision record ({err})") from err
    return records


def run_rollout(args: argparse.Namespace) -> int:
    from engine.client import load_client_tls  # pylint: disable=import-outside-toplevel
    from engine.rollout import RolloutError  # pylint: disable=import-outside-toplevel
    from engine.rollout.controller import (  # pylint: disable=import-outside-toplevel
        Rollout, RolloutOptions)
    from engine.rollout.fleet import Fleet  # pylint: disable=import-outside-toplevel

    if args.step != "status" and not args.server:
        raise UsageError(f"rollout {args.step}: --server is required")
    if not os.path.isfile(args.model_config):
        raise UsageError(f"--model-config {args.model_config}: no such file")
    addresses = _addresses(args.server) if args.server else ()
    fleet = Fleet(addresses, args.model_name,
                  client_tls=load_client_tls(args.ssl_config, args.tls_server_name),
                  timeout_seconds=min(args.timeout, 10.0)) if addresses else None
    rollout = Rollout(args.model_config, args.model_name, fleet,
                      routing_path=args.routing_file,
                      options=RolloutOptions(timeout_seconds=args.timeout,
                                             client_grace_seconds=args.client_grace),
                      log=lambda line: print(line, file=sys.stderr))
    try:
        if args.step == "stage":
            rollout.stage(args.version)
            print(f"version {args.version} is AVAILABLE on {len(addresses)} server(s)")
        elif args.step == "canary":
            rollout.canary(args.version, args.share, shadow=args.shadow)
            print(f"canary -> {args.version} at share {args.share:g}"
                  f"{' with shadow scoring' if args.shadow else ''}")
        elif args.step == "promote":
            print(f"stable -> {rollout.promote()}")
        elif args.step == "rollback":
            rollout.rollback()
            print("canary removed; stable untouched")
        elif args.step == "revert":
            before, after = rollout.revert_to_previous()
            print(f"stable -> {after} (back from {before})")
        else:
            print(format_status(rollout.describe(), read_records(args.records),
                                args.metrics, args.model_name))
    except RolloutError as err:
        raise DataError(str(err)) from err
    finally:
        if fleet is not None:
            fleet.close()
    return 0


def format_status(state: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
                  metrics_urls: Sequence[str], model_name: str) -> str:
    """The text of `riskpipe rollout status`."""
    from engine.risk_engine import summarize  # pylint: disable=import-outside-toplevel
    from engine.rollout import RolloutError  # pylint: disable=import-outside-toplevel
    from engine.rollout.fleet_metrics import (  # pylint: disable=import-outside-toplevel
        fleet_version_metrics)

    lines = [f"model {state['model']}: versions {state['versions']}, labels "
             + ", ".join(f"{k} -> {v}" for k, v in state["labels"].items()),
             f"canary share {state['canary_share']:g}"
             f"{' (shadow scoring on)' if state['shadow'] else ''}"]
    for address, versions in state["servers"].items():
        lines.append(f"server {address}: "
                     + (", ".join(f"{v} {s}" for v, s in versions.items()) or "no versions"))
    if metrics_urls:
        try:
            per_version = fleet_version_metrics(metrics_urls, model_name)
        except RolloutError as err:
            per_version = {}
            lines.append(f"server metrics: {err}")
        lines.append(f"server metrics over {len(metrics_urls)} server(s):")
        lines.append(f"  {'version':<14} {'requests':>9} {'errors':>7} {'p50 us':>9} "
                     f"{'p99 us':>9} {'mean us':>9}")
        for version, f in sorted(per_version.items()):
            lines.append(f"  {version:<14} {f['requests']:>9.0f} {f['errors']:>7.0f} "
                         f"{_fmt(f['latency_us_p50'], '.0f'):>9} "
                         f"{_fmt(f['latency_us_p99'], '.0f'):>9} "
                         f"{_fmt(f['latency_us_mean'], '.0f'):>9}")
    if records:
        summary = summarize(records)
        lines.append("client records:")
        lines.append(format_summary(summary))
        lines.append("score distribution and decision rates:")
        for version, f in summary.items():
            total = f["requests"] or 1
            rates = ", ".join(f"{k} {v / total:.3f}" for k, v in f["decisions"].items())
            lines.append(f"  {version}: score p50 {_fmt(f['score_p50'], '.4f')} p90 "
                         f"{_fmt(f['score_p90'], '.4f')} p99 {_fmt(f['score_p99'], '.4f')}; "
                         f"{rates}; shadow compared {f['shadow_compared']}, agreement "
                         f"{_fmt(f['shadow_agreement'], '.4f')}")
    return "\n".join(lines)

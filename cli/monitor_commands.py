"""`riskpipe monitor`: the live model's daily performance, drift and alerts; rollback with --act."""
import argparse
import datetime
import json
import sys
import time
from typing import Optional

from common.errors import DataError, UsageError
from common.files import atomic_write_text


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "monitor", help="daily performance, drift and alerts of the served models; rollback",
        description="Reads the decisions the risk engine wrote and the transactions whose labels "
                    "are known by --as-of, and reports per day and model version: transactions, "
                    "decision mix, label coverage, labelled ROC-AUC / PR-AUC / recall / KS beside "
                    "the version's eval baseline, a label-free ROC-AUC estimate from the "
                    "calibrated scores, and the PSI of the score and of each model feature "
                    "against the training split. Alerts: a labelled ROC-AUC more than --max-drop "
                    "below the baseline over the window (an action, with at least --min-frauds "
                    "labelled frauds), the estimate falling as much (an early warning), a PSI "
                    "above 0.25. With --act, an action alert on the stable version moves "
                    "`stable` back to `previous` on every server.")
    parser.add_argument("--decisions", required=True, metavar="FILE|DIR",
                        help="decision records of `riskpipe score` (JSON lines or CSV)")
    parser.add_argument("--labels", required=True, metavar="DATA",
                        help="the raw transaction partitions, with is_fraud and label_known_at")
    parser.add_argument("--baseline", required=True, metavar="PIPELINE_ROOT",
                        help="the --pipeline-root the served versions were trained in")
    parser.add_argument("--pipeline-name", default="riskpipe", help="(default: %(default)s)")
    parser.add_argument("--as-of", metavar="DATE",
                        help="count the labels known by then: YYYY-MM-DD (the end of that day, "
                             "UTC) or an ISO date and time (default: now)")
    parser.add_argument("--window-days", type=int, default=7, metavar="N",
                        help="days the alerts look back over (default: 7)")
    parser.add_argument("--max-drop", type=float, default=0.05, metavar="SHARE",
                        help="relative ROC-AUC drop below the baseline that alerts (default: 0.05)")
    parser.add_argument("--min-frauds", type=int, default=20, metavar="N",
                        help="labelled frauds a performance alert needs (default: 20)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--html", metavar="FILE", help="also write the daily charts as HTML")
    parser.add_argument("--act", action="store_true",
                        help="roll the stable version back on its action alert")
    parser.add_argument("--model-config", metavar="FILE",
                        help="with --act: the model config file the fleet polls")
    parser.add_argument("--server", metavar="ADDR[,ADDR...]",
                        help="with --act: the servers of the fleet, confirmed after the move")
    parser.add_argument("--model-name", default="fraud", help="(default: %(default)s)")
    parser.add_argument("--ssl-config", metavar="FILE",
                        help="with --act: client ssl_config file for TLS servers")
    parser.add_argument("--watch", type=float, metavar="SECONDS",
                        help="repeat the check this often (with the time of each check as "
                             "--as-of), until interrupted")
    parser.set_defaults(func=run_monitor)


def parse_as_of(text: Optional[str]) -> int:
    if not text:
        return int(time.time())
    try:
        if len(text) == 10:
            day = datetime.date.fromisoformat(text)
            end = datetime.datetime.combine(day, datetime.time(23, 59, 59))
            return int(end.replace(tzinfo=datetime.timezone.utc).timestamp())
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as err:
        raise UsageError(f"--as-of {text!r}: not YYYY-MM-DD or an ISO date and time") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp())


def _check(args: argparse.Namespace) -> None:
    if args.window_days < 1 or args.min_frauds < 1 or not 0 < args.max_drop < 1:
        raise UsageError("--window-days and --min-frauds must be at least 1 and --max-drop "
                         "in (0, 1)")
    if args.act and not (args.model_config and args.server):
        raise UsageError("--act needs --model-config and --server")


def _rollout(args: argparse.Namespace):
    # pylint: disable=import-outside-toplevel
    from engine.client import load_client_tls, parse_addresses
    from engine.rollout.controller import Rollout
    from engine.rollout.fleet import Fleet

    fleet = Fleet(parse_addresses(args.server), args.model_name,
                  client_tls=load_client_tls(args.ssl_config))
    return Rollout(args.model_config, args.model_name, fleet,
                   log=lambda line: print(line, file=sys.stderr))


def _check_once(args: argparse.Namespace, as_of: int, rollout) -> None:
    # pylint: disable=import-outside-toplevel
    from engine.rollout import RolloutError
    from monitor import actions, html_page, report_text
    from monitor.baseline import baselines
    from monitor.report import AlertRules, build_report

    rules = AlertRules(args.max_drop, args.min_frauds, args.window_days)
    try:
        known = baselines(args.baseline, args.pipeline_name)
    except FileNotFoundError as err:
        raise UsageError(str(err)) from err
    report = build_report(args.decisions, args.labels, known, as_of, rules)
    print(report_text.format_report(report), flush=True)
    if rollout is not None:
        try:
            report["action"] = actions.act(report, rollout, log=lambda line: print(line))
        except RolloutError as err:
            raise DataError(f"rollback failed: {err}") from err
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    if args.html:
        html_page.write_html(report, args.html)


def run_monitor(args: argparse.Namespace) -> int:
    _check(args)
    as_of = parse_as_of(args.as_of)
    rollout = _rollout(args) if args.act else None
    try:
        _check_once(args, as_of, rollout)
        while args.watch:
            time.sleep(args.watch)
            _check_once(args, int(time.time()), rollout)
    finally:
        if rollout is not None:
            rollout.fleet.close()
    return 0

"""`riskpipe report`: what every run, model version and feature cost, beside its worth."""
import argparse
import json
import os

from common.errors import UsageError
from common.files import atomic_write_text


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="the cost ledger: runs, model versions and features, cost beside value",
        description="Prints the latest run's cost per component with shares and the total, the "
                    "history of runs, each pushed model version's quality and serving cost, and "
                    "the latest version's feature table (cost per transaction beside value, with "
                    "the candidates to cut). Versions not measured yet are measured first: "
                    "serving cost by replaying eval transactions through `riskpipe serve` on "
                    "loopback, feature values by permutation on the eval split.")
    parser.add_argument("--pipeline-root", required=True, metavar="DIR",
                        help="the --pipeline-root of `riskpipe run`")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--html", metavar="FILE",
                        help="also write a self-contained HTML page with tables and charts")
    parser.add_argument("--pipeline-name", default="",
                        help="(default: the one pipeline recorded under --pipeline-root, e.g. "
                             "riskpipe or riskpipe-credit)")
    parser.add_argument("--model-name", default="fraud",
                        help="the model name the versions are served as (default: %(default)s)")
    parser.add_argument("--cut-threshold", type=float, default=0.02, metavar="SHARE",
                        help="a feature is a cut candidate when its value share is below this "
                             "and its cost share above it (default: %(default)s)")
    parser.add_argument("--no-measure", action="store_true",
                        help="report only what was measured before; start no server")
    parser.add_argument("--serving-transactions", type=int, default=1000, metavar="N",
                        help="eval transactions replayed per concurrency level (default: 1000)")
    parser.add_argument("--feature-cost-transactions", type=int, default=20000, metavar="N",
                        help="transactions the feature costs are measured over (default: 20000)")
    parser.add_argument("--value-rows", type=int, default=50000, metavar="N",
                        help="eval rows the feature values are measured on (default: 50000)")
    parser.set_defaults(func=run_report)

    select = subparsers.add_parser(
        "select-features", help="exclude the features the ledger values below a share",
        description="Reads the JSON of `riskpipe report` and writes a run config whose "
                    "features.exclude lists every model feature whose value share (permutation "
                    "PR-AUC drop, as a share of all features') is below --min-value-share. "
                    "Excluded features leave the Transform, the model, the serving request and "
                    "the risk engine's online computation.")
    select.add_argument("--report", required=True, metavar="FILE",
                        help="the --json FILE of `riskpipe report`")
    select.add_argument("--min-value-share", type=float, required=True, metavar="SHARE",
                        help="exclude features whose value share is below this, e.g. 0.01")
    select.add_argument("--config", metavar="FILE",
                        help="a run config to start from (its other sections are kept)")
    select.add_argument("--out", required=True, metavar="FILE",
                        help="where to write the config for `riskpipe run --config`")
    select.set_defaults(func=run_select_features)


def _options(args: argparse.Namespace):
    from ledger.report import ReportOptions  # pylint: disable=import-outside-toplevel

    if not 0 <= args.cut_threshold <= 1:
        raise UsageError(f"--cut-threshold {args.cut_threshold}: must be a share in [0, 1]")
    for flag in ("serving_transactions", "feature_cost_transactions", "value_rows"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1")
    return ReportOptions(pipeline_name=args.pipeline_name, model_name=args.model_name,
                         cut_threshold=args.cut_threshold, measure=not args.no_measure,
                         serving_transactions=args.serving_transactions,
                         feature_cost_transactions=args.feature_cost_transactions,
                         value_rows=args.value_rows)


def run_report(args: argparse.Namespace) -> int:
    # pylint: disable=import-outside-toplevel
    from ledger import html_report, report_text
    from ledger.report import build_report

    options = _options(args)
    if not os.path.isdir(args.pipeline_root):
        raise UsageError(f"--pipeline-root {args.pipeline_root}: no such directory")
    try:
        report = build_report(args.pipeline_root, options)
    except FileNotFoundError as err:
        raise UsageError(str(err)) from err
    print(report_text.format_report(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2, allow_nan=False) + "\n")
        print(f"\nwrote {args.json}")
    if args.html:
        html_report.write_html(report, args.html)
        print(f"wrote {args.html}")
    return 0


def run_select_features(args: argparse.Namespace) -> int:
    # pylint: disable=import-outside-toplevel
    import yaml

    from ledger.feature_selection import features_to_exclude, with_exclusions
    from pipeline.configs import read_yaml_mapping

    try:
        with open(args.report, encoding="utf-8") as f:
            report = json.load(f)
    except OSError as err:
        raise UsageError(f"--report {args.report}: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise UsageError(f"--report {args.report}: not JSON ({err})") from err
    try:
        excluded = features_to_exclude(report.get("features") or [], args.min_value_share)
    except (KeyError, TypeError) as err:
        raise UsageError(f"--report {args.report}: not a `riskpipe report` JSON "
                         f"(feature rows need name and value_share): {err}") from err
    except ValueError as err:
        raise UsageError(f"--report {args.report}: {err}") from err
    config = with_exclusions(read_yaml_mapping(args.config) if args.config else {}, excluded)
    atomic_write_text(args.out, yaml.safe_dump(config, sort_keys=False))
    kept = len(report["features"]) - len(excluded)
    print(f"excluded {len(excluded)} of {len(report['features'])} features "
          f"(value share < {args.min_value_share}), {kept} kept: {', '.join(excluded) or 'none'}")
    print(f"wrote {args.out}")
    return 0

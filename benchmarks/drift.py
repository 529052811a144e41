"""Drift benchmark: does the monitor see a model decay within a week of the labels, and only then?

    .venv/bin/python benchmarks/drift.py [--transactions 100000] [--work-dir DIR]

Twice, on the same seed: once with a drift from day 31 (account takeover and a
population shift), once without. Simulates 45 days, trains the pipeline on days
1 to 30 (the last 5 its eval split), serves the pushed version with `riskpipe
serve`, scores days 31 to 45 with `riskpipe score` (days 1 to 30 as the online
features' history), then runs the monitor as each day's labels arrive (as of
the end of each of days 31 to 45; then 7 and 14 days after the last one, as
late labels keep coming). Prints per check: the window's labelled ROC-AUC and
its estimate beside the baseline, label coverage, labelled frauds, the day's
score PSI, and the alerts; then the day the rollback would fire (the first
action alert on the served, stable version; `tests/engine/test_monitor_rollback.py`
exercises the move itself) beside the day the drift began.

Targets: with drift, the action alert fires within 7 days of enough labels
(--min-frauds labelled frauds on drifted days) having arrived; without drift,
no action alert over the 15 days. Exits 1 when a target is missed. Not a test:
it takes several minutes.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from common import runtime  # noqa: E402  # before TensorFlow is imported
from measure import riskpipe_command  # noqa: E402  # benchmarks/ is on sys.path

runtime.use_keras_2()
runtime.quiet_startup(verbose=False)

DAYS, DRIFT_DAY, MAX_DELAY_DAYS = 45, 31, 7
LATE_CHECKS = (7, 14)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--fraud-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--min-frauds", type=int, default=20)
    parser.add_argument("--work-dir", help="keeps everything here (default: a temporary dir)")
    return parser.parse_args(argv)


def split_days(data: str, train: str, live: str) -> None:
    """Copies days 1..DRIFT_DAY-1 of `data` to `train`, the others to `live`."""
    days = sorted(name for name in os.listdir(data) if name.startswith("date="))
    for index, name in enumerate(days, start=1):
        shutil.copytree(os.path.join(data, name),
                        os.path.join(train if index < DRIFT_DAY else live, name))


def score_live(work: str, train: str, live: str, decisions: str) -> None:
    """Serves the pushed version and scores the live days through the engine."""
    base = os.path.join(work, "serving", "fraud")
    server = subprocess.Popen(riskpipe_command("serve", "--port=0", "--bind_address=127.0.0.1",
                                               "--model_name=fraud",
                                               f"--model_base_path={base}"),
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    try:
        port = int(server.stdout.readline().split()[-1])
        subprocess.run(riskpipe_command("score", "--server", f"127.0.0.1:{port}", "--history",
                                        train, "--input", live, "--output", decisions,
                                        "--deadline", "30"),
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    finally:
        server.terminate()
        server.wait(timeout=60)


def prepare(args, work: str, drifted: bool) -> tuple:
    """(raw data of all 45 days, pipeline root, decisions of days 31-45)."""
    data, train, live = (os.path.join(work, name) for name in ("data", "train", "live"))
    command = ["generate", "--transactions", str(args.transactions), "--days", str(DAYS),
               "--fraud-rate", str(args.fraud_rate), "--seed", str(args.seed), "--out", data]
    if drifted:
        command += ["--drift", "account_takeover", "--drift-start-day", str(DRIFT_DAY),
                    "--drift", "population_shift", "--drift-start-day", str(DRIFT_DAY)]
    subprocess.run(riskpipe_command(*command), cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    split_days(data, train, live)
    root = os.path.join(work, "pipeline")
    config = os.path.join(work, "config.yaml")
    with open(config, "w") as f:
        f.write("feature_gen: {eval_days: 5}\n")
    subprocess.run(riskpipe_command("run", "--data", train, "--pipeline-root", root,
                                    "--serving-root", os.path.join(work, "serving"),
                                    "--config", config),
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    decisions = os.path.join(work, "decisions.jsonl")
    score_live(work, train, live, decisions)
    return data, root, decisions


def _fmt(value, spec=".3f"):
    return "-" if value is None else format(value, spec)


def watch(args, data: str, root: str, decisions: str, label: str) -> tuple:
    """Runs the monitor day by day; returns (first action day, first day with enough labels)."""
    # pylint: disable=import-outside-toplevel
    from monitor.baseline import baselines
    from monitor.inputs import DAY_SECONDS, read_decisions
    from monitor.report import AlertRules, build_report

    known = baselines(root, "riskpipe")
    rules = AlertRules(min_frauds=args.min_frauds, window_days=7)
    first_day = min(d.day for d in read_decisions(decisions))
    checks = [first_day + i for i in range(DAYS - DRIFT_DAY + 1)]
    checks += [checks[-1] + late for late in LATE_CHECKS]
    print(f"\n{label}: check  window AUC / base  est. AUC  labelled  frauds  day PSI  alerts")
    action_day = enough_day = None
    for check in checks:
        as_of = (check + 1) * DAY_SECONDS - 1
        report = build_report(decisions, data, known, as_of, rules)
        window = report["windows"][0]
        day = next((d for d in report["days"] if d["day"] == window["window"][1]), {})
        alerts = [f"{a['kind']}:{a.get('subject', a['metric'])}" for a in report["alerts"]]
        number = check - first_day + DRIFT_DAY
        print(f"  day {number:>2} {_fmt(window['labelled']['roc_auc'])} / "
              f"{window['baseline']['roc_auc']:.3f}  {_fmt(window['estimated_roc_auc'])}  "
              f"{window['label_coverage']:>7.0%}  {window['labelled']['frauds']:>6}  "
              f"{_fmt(day.get('score_psi'))}  {', '.join(alerts) or '-'}")
        if enough_day is None and window["labelled"]["frauds"] >= args.min_frauds:
            enough_day = number
        if action_day is None and any(a["action"] for a in report["alerts"]):
            action_day = number
    return action_day, enough_day


def main(argv=None) -> int:
    args = parse_args(argv)
    work = args.work_dir or tempfile.mkdtemp(prefix="riskpipe-drift-")
    results = {}
    for drifted in (True, False):
        label = "with drift from day 31" if drifted else "without drift"
        sub = os.path.join(work, "drift" if drifted else "steady")
        os.makedirs(sub, exist_ok=True)
        results[drifted] = watch(args, *prepare(args, sub, drifted), label)
    (alert_day, enough_day), (false_alarm, _) = results[True], results[False]
    delay = None if alert_day is None or enough_day is None else alert_day - enough_day
    print(f"\ndrift began on day {DRIFT_DAY}; enough labels (>= {args.min_frauds} frauds in the "
          f"window) by day {enough_day}; the rollback would fire on day {alert_day} "
          f"(delay {delay} days, limit {MAX_DELAY_DAYS})")
    print(f"without drift: first action alert on day {false_alarm} (target: none)")
    print(f"work dir: {work}")
    detected = delay is not None and delay <= MAX_DELAY_DAYS
    return 0 if detected and false_alarm is None else 1


if __name__ == "__main__":
    sys.exit(main())

"""`riskpipe generate`: simulated raw card transactions, one CSV partition per day."""
import argparse
import datetime
import sys

from common.errors import UsageError

DEFAULTS = {
    "transactions": 200_000,
    "days": 60,
    "fraud_rate": 0.005,
    "seed": 0,
    "start_date": "2026-01-01",
}
EPILOG = """\
output layout:
  OUT/date=YYYY-MM-DD/transactions.csv   one partition per day (header row; columns
                                         transaction_id, timestamp, card_id, customer_id,
                                         terminal_id, amount, merchant_category, channel,
                                         latitude, longitude, is_fraud, fraud_scenario,
                                         label_known_at; times in Unix seconds UTC;
                                         a fraud's label_known_at is its report, days
                                         later; a genuine one's is its own timestamp)
  OUT/generation.json                    parameters, seed and row counts, written last
`riskpipe run` reads every day at once (FeatureGen); the layout also matches
TFX ExampleGen's span pattern 'date={YYYY}-{MM}-{DD}/transactions.csv'.
The same arguments give the same bytes.

drift scenarios (--drift KIND --drift-start-day N, repeatable, paired in order):
  population_shift   from day N customers spend more (amounts x1.4), buy online
                     twice as often, and make 30% of their purchases at new
                     merchants (new terminal ids, card-present and online)
  account_takeover   from day N a new fraud scenario: taken-over cards spend in
                     bursts at online merchants they never used; it makes 30%
                     of the fraud, the other scenarios that much less
Days before N are exactly those of a run without the drift.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="simulate raw card transactions with labelled fraud scenarios",
        description="Simulate card transactions of customers shopping near home, online and\n"
                    "on trips, with four fraud scenarios (compromised_terminal,\n"
                    "compromised_card, impossible_travel, probing) and fraud labels known\n"
                    "days later, written as one CSV partition per day; optionally with\n"
                    "drift scenarios from a given day on (--drift).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--transactions", metavar="N", default=str(DEFAULTS["transactions"]),
                        help="total number of transactions, exactly "
                             "(default: %(default)s)")
    parser.add_argument("--days", metavar="N", default=str(DEFAULTS["days"]),
                        help="number of days, one partition each (default: %(default)s)")
    parser.add_argument("--customers", metavar="N", default=None,
                        help="number of customers (default: about 1.6 transactions per "
                             "customer a day, i.e. transactions / (1.6 * days))")
    parser.add_argument("--fraud-rate", metavar="RATE", default=str(DEFAULTS["fraud_rate"]),
                        help="target share of fraudulent transactions, strictly between 0 "
                             "and 0.5 (default: %(default)s)")
    parser.add_argument("--seed", metavar="N", default=str(DEFAULTS["seed"]),
                        help="random seed, a non-negative integer; the same seed and "
                             "arguments give byte-identical output (default: %(default)s)")
    parser.add_argument("--start-date", metavar="YYYY-MM-DD", default=DEFAULTS["start_date"],
                        help="date of the first day, UTC (default: %(default)s)")
    parser.add_argument("--drift", metavar="KIND", action="append",
                        help="a drift scenario, population_shift or account_takeover, from "
                             "the --drift-start-day in the same position on; repeatable "
                             "(see below)")
    parser.add_argument("--drift-start-day", metavar="N", action="append",
                        help="the day the paired --drift starts: 1 is the first day, at most "
                             "--days")
    parser.add_argument("--out", metavar="DIR",
                        help="output directory (required); must not exist or be empty, "
                             "unless --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset at --out (only a directory "
                             "written by riskpipe generate)")
    parser.set_defaults(func=run_generate)


def _integer(flag: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{flag} must be an integer, got '{text}'") from None
    if value < minimum:
        raise UsageError(f"{flag} must be at least {minimum}, got {value}")
    return value


def _fraud_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--fraud-rate must be a number, got '{text}'") from None
    if not 0.0 < value < 0.5:
        raise UsageError(f"--fraud-rate must be strictly between 0 and 0.5, got {text}")
    return value


def _start_date(text: str) -> str:
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise UsageError(f"--start-date must be a date YYYY-MM-DD, got '{text}'") from None


def _drifts(kinds, start_days, days: int):
    """The Drifts of the paired --drift / --drift-start-day flags."""
    from datagen.drift import KINDS, Drift  # pylint: disable=import-outside-toplevel

    kinds, start_days = kinds or [], start_days or []
    if len(kinds) != len(start_days):
        raise UsageError(f"--drift and --drift-start-day go in pairs, got {len(kinds)} "
                         f"--drift and {len(start_days)} --drift-start-day")
    drifts = []
    for kind, text in zip(kinds, start_days):
        if kind not in KINDS:
            raise UsageError(f"--drift must be one of {', '.join(KINDS)}, got '{kind}'")
        if kind in (d.kind for d in drifts):
            raise UsageError(f"--drift {kind} is given more than once")
        start_day = _integer("--drift-start-day", text, 1)
        if start_day > days:
            raise UsageError(f"--drift-start-day must be at most --days ({days}), "
                             f"got {start_day}")
        drifts.append(Drift(kind=kind, start_day=start_day))
    return tuple(drifts)


def config_from_args(args):
    """The SimulationConfig of parsed `generate` arguments; UsageError when one is bad."""
    from datagen.simulator import SimulationConfig  # pylint: disable=import-outside-toplevel

    transactions = _integer("--transactions", args.transactions, 1)
    days = _integer("--days", args.days, 1)
    return SimulationConfig(
        transactions=transactions,
        days=days,
        customers=0 if args.customers is None else _integer("--customers", args.customers, 1),
        fraud_rate=_fraud_rate(args.fraud_rate),
        seed=_integer("--seed", args.seed, 0),
        start_date=_start_date(args.start_date),
        drifts=_drifts(args.drift, args.drift_start_day, days),
    )


def run_generate(args) -> int:
    # pylint: disable=import-outside-toplevel
    config = config_from_args(args)
    if args.out is None:
        raise UsageError("--out is required")
    from tqdm import tqdm

    from datagen.dataset import write_dataset

    with tqdm(total=config.days, unit="day", desc="generate", file=sys.stderr,
              disable=not sys.stderr.isatty()) as bar:
        summary = write_dataset(config, args.out, overwrite=args.overwrite,
                                on_day=lambda day: bar.update(1))
    print(f"wrote {summary.rows} transactions ({summary.fraud_rows} fraudulent) "
          f"in {summary.days} daily partitions to {summary.out}")
    return 0

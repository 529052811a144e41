"""`riskpipe generate`: simulated raw card transactions (one CSV partition per day) or,
with --kind credit, a bank's table of credit applications."""
import argparse
import datetime
import os
import sys

from common.errors import UsageError

KINDS = ("fraud", "credit")
DEFAULTS = {
    "transactions": 200_000,
    "days": 60,
    "fraud_rate": 0.005,
    "seed": 0,
    "start_date": "2026-01-01",
}
# Must match datagen.credit's defaults (not imported here: `riskpipe --help` stays fast).
CREDIT_DEFAULTS = {
    "rows": 20_000,
    "default_rate": 0.1,
    "start_date": "2024-01-01",
}
# The flags of one kind only, and their argparse dest: given with the other kind they
# are a UsageError. None of them has an argparse default, so a given one is not None.
KIND_FLAGS = {
    "fraud": {"--transactions": "transactions", "--days": "days", "--customers": "customers",
              "--fraud-rate": "fraud_rate", "--drift": "drift",
              "--drift-start-day": "drift_start_day"},
    "credit": {"--rows": "rows", "--default-rate": "default_rate"},
}
EPILOG = """\
output layout of --kind fraud (the default):
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

output layout of --kind credit (flags --rows, --default-rate, --seed, --start-date):
  OUT/applications.csv   one row per application, in application_date order (header
                         row; an empty cell is a missing value); columns
                         application_id (A000001, ...), application_date (YYYY-MM-DD,
                         over 24 months from --start-date), income (annual; ~3%
                         missing), debt_to_income (0..1.5), age (18..80),
                         years_employed (~6% missing: unknown), existing_credits (0..8),
                         past_delinquencies, credit_utilization (0..1.2; missing
                         without revolving credit, ~10%), loan_amount,
                         loan_duration_months (12..72), purpose, housing, region,
                         employment_type, and the label default (0/1)
  OUT/generation.json    kind, parameters, seed, row count and realised default rate,
                         written last
The defaults follow a known non-linear ground truth (datagen/credit.py) with
--default-rate as the realised rate; region is deliberately ignored by it.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="simulate raw card transactions with labelled fraud scenarios, or credit "
             "applications with labelled defaults (--kind credit)",
        description="Simulate card transactions of customers shopping near home, online and\n"
                    "on trips, with four fraud scenarios (compromised_terminal,\n"
                    "compromised_card, impossible_travel, probing) and fraud labels known\n"
                    "days later, written as one CSV partition per day; optionally with\n"
                    "drift scenarios from a given day on (--drift).\n"
                    "With --kind credit: a bank's table of credit applications, one row\n"
                    "per application with missing values and a labelled default, in one CSV.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kind", metavar="{fraud,credit}", default=None,
                        help="what to simulate: fraud (card transactions) or credit "
                             "(credit applications) (default: fraud)")
    parser.add_argument("--transactions", metavar="N", default=None,
                        help="fraud: total number of transactions, exactly "
                             f"(default: {DEFAULTS['transactions']})")
    parser.add_argument("--days", metavar="N", default=None,
                        help="fraud: number of days, one partition each "
                             f"(default: {DEFAULTS['days']})")
    parser.add_argument("--customers", metavar="N", default=None,
                        help="fraud: number of customers (default: about 1.6 transactions per "
                             "customer a day, i.e. transactions / (1.6 * days))")
    parser.add_argument("--fraud-rate", metavar="RATE", default=None,
                        help="fraud: target share of fraudulent transactions, strictly "
                             f"between 0 and 0.5 (default: {DEFAULTS['fraud_rate']})")
    parser.add_argument("--rows", metavar="N", default=None,
                        help="credit: number of applications, exactly "
                             f"(default: {CREDIT_DEFAULTS['rows']})")
    parser.add_argument("--default-rate", metavar="RATE", default=None,
                        help="credit: share of applications that default, strictly between "
                             f"0 and 0.5 (default: {CREDIT_DEFAULTS['default_rate']})")
    parser.add_argument("--seed", metavar="N", default=str(DEFAULTS["seed"]),
                        help="random seed, a non-negative integer; the same seed and "
                             "arguments give byte-identical output (default: %(default)s)")
    parser.add_argument("--start-date", metavar="YYYY-MM-DD", default=None,
                        help="fraud: date of the first day, UTC (default: "
                             f"{DEFAULTS['start_date']}); credit: first day of the 24 months "
                             f"of applications (default: {CREDIT_DEFAULTS['start_date']})")
    parser.add_argument("--drift", metavar="KIND", action="append",
                        help="fraud: a drift scenario, population_shift or account_takeover, "
                             "from the --drift-start-day in the same position on; repeatable "
                             "(see below)")
    parser.add_argument("--drift-start-day", metavar="N", action="append",
                        help="fraud: the day the paired --drift starts: 1 is the first day, "
                             "at most --days")
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


def _rate(flag: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag} must be a number, got '{text}'") from None
    if not 0.0 < value < 0.5:
        raise UsageError(f"{flag} must be strictly between 0 and 0.5, got {text}")
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


def _kind(args) -> str:
    """The --kind of parsed arguments; UsageError when it is unknown or a flag of the other
    kind was given."""
    kind = "fraud" if args.kind is None else args.kind
    if kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, got '{kind}'")
    for other in KINDS:
        for flag, dest in KIND_FLAGS[other].items():
            if other != kind and getattr(args, dest) is not None:
                raise UsageError(f"{flag} is a flag of --kind {other}, not of --kind {kind}")
    return kind


def _given(value, default) -> str:
    return str(default) if value is None else value


def config_from_args(args):
    """The SimulationConfig of parsed `generate` arguments; UsageError when one is bad."""
    from datagen.simulator import SimulationConfig  # pylint: disable=import-outside-toplevel

    transactions = _integer("--transactions",
                            _given(args.transactions, DEFAULTS["transactions"]), 1)
    days = _integer("--days", _given(args.days, DEFAULTS["days"]), 1)
    return SimulationConfig(
        transactions=transactions,
        days=days,
        customers=0 if args.customers is None else _integer("--customers", args.customers, 1),
        fraud_rate=_rate("--fraud-rate", _given(args.fraud_rate, DEFAULTS["fraud_rate"])),
        seed=_integer("--seed", args.seed, 0),
        start_date=_start_date(_given(args.start_date, DEFAULTS["start_date"])),
        drifts=_drifts(args.drift, args.drift_start_day, days),
    )


def credit_from_args(args) -> dict:
    """The datagen.credit.write_credit_table arguments of parsed `generate --kind credit`
    arguments (all but out and overwrite); UsageError when one is bad."""
    return {
        "rows": _integer("--rows", _given(args.rows, CREDIT_DEFAULTS["rows"]), 1),
        "default_rate": _rate("--default-rate",
                              _given(args.default_rate, CREDIT_DEFAULTS["default_rate"])),
        "seed": _integer("--seed", args.seed, 0),
        "start_date": _start_date(_given(args.start_date, CREDIT_DEFAULTS["start_date"])),
    }


def run_generate(args) -> int:
    if _kind(args) == "credit":
        return _run_credit(args)
    return _run_fraud(args)


def _run_credit(args) -> int:
    parameters = credit_from_args(args)
    if args.out is None:
        raise UsageError("--out is required")
    from datagen.credit import TABLE, write_credit_table  # pylint: disable=import-outside-toplevel

    summary = write_credit_table(args.out, overwrite=args.overwrite, **parameters)
    print(f"wrote {summary.rows} credit applications ({summary.defaults} defaults) "
          f"to {os.path.join(summary.out, TABLE)}")
    return 0


def _run_fraud(args) -> int:
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

"""The day-by-day simulation: a population spending money while fraudsters work.

Modelled on the simulator of Le Borgne et al., "Reproducible Machine Learning
for Credit Card Fraud Detection - Practical Handbook" (customers and terminals
on a map, daily Poisson spending, compromised terminals and cards), extended
with real coordinates, merchant categories, online merchants, trips, several
cards per customer, four named fraud scenarios and label delay: a fraud's
label is known when it is reported, days later (scenarios.report_times); a
genuine transaction's label is known at its own timestamp (presumed genuine
until reported). Drift scenarios (datagen.drift) change the world from a
given day.

Everything is deterministic for a configuration: the population comes from
(seed, "population"), the merchants a drift opens from (seed, "drift"), the
split of transactions over days from (seed, "days"), and each day's
randomness from (seed, "day", day). Days are produced one at a time, so
memory depends on the population and one day, not on the total.
"""
import dataclasses
import datetime
from typing import Iterator, Optional, Tuple

import numpy as np

from datagen import drift, legitimate, population, scenarios
from datagen.rows import Rows

DEFAULT_START_DATE = "2026-01-01"
# Customers when none are given: about this many transactions per customer a day.
TRANSACTIONS_PER_CUSTOMER_DAY = 1.6
# Days simulated before the first written day, so that trips, skimmers and
# fraud episodes are already under way on the first day.
WARMUP_DAYS = 14
# Relative activity Monday..Sunday.
WEEKDAY_ACTIVITY = np.array([1.0, 1.0, 1.0, 1.05, 1.15, 1.2, 0.75])
_POPULATION_STREAM, _DAYS_STREAM, _DAY_STREAM, _DRIFT_STREAM = 1, 2, 3, 4


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    transactions: int = 200_000
    days: int = 60
    # 0: derived from transactions / days (see TRANSACTIONS_PER_CUSTOMER_DAY).
    customers: int = 0
    fraud_rate: float = 0.005
    seed: int = 0
    start_date: str = DEFAULT_START_DATE
    drifts: Tuple[drift.Drift, ...] = ()

    @property
    def num_customers(self) -> int:
        if self.customers:
            return self.customers
        return max(1, round(self.transactions / (self.days * TRANSACTIONS_PER_CUSTOMER_DAY)))

    @property
    def first_date(self) -> datetime.date:
        return datetime.date.fromisoformat(self.start_date)


@dataclasses.dataclass(frozen=True)
class Day:
    """One simulated day: its date and its transactions in (timestamp, tie-break) order."""

    index: int
    date: datetime.date
    rows: Rows


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def day_start_timestamp(date: datetime.date) -> int:
    return int(datetime.datetime(date.year, date.month, date.day,
                                 tzinfo=datetime.timezone.utc).timestamp())


def _daily_totals(config: SimulationConfig) -> np.ndarray:
    """Transactions per written day, summing exactly to config.transactions."""
    weekdays = [(config.first_date + datetime.timedelta(d)).weekday() for d in range(config.days)]
    weight = WEEKDAY_ACTIVITY[weekdays]
    return _rng(config.seed, _DAYS_STREAM).multinomial(config.transactions, weight / weight.sum())


def _warmup_total(config: SimulationConfig, date: datetime.date) -> int:
    mean_day = config.transactions / config.days / WEEKDAY_ACTIVITY.mean()
    return int(round(mean_day * WEEKDAY_ACTIVITY[date.weekday()]))


def _sorted(rows: Rows, rng: np.random.Generator) -> Rows:
    tie_break = rng.random(len(rows))
    return rows.take(np.lexsort((tie_break, rows.timestamp)))


def simulate(config: SimulationConfig,
             pop: Optional[population.Population] = None) -> Iterator[Day]:
    """Yields the config.days simulated days in order (`pop`: the config's population)."""
    if pop is None:
        pop = build_population(config)
    totals = _daily_totals(config)
    trips = legitimate.Trips(pop)
    daily_frauds = config.fraud_rate * config.transactions / config.days
    fraudsters = scenarios.Fraudsters(pop, daily_frauds)
    drifts = drift.Drifts(config.drifts, pop, daily_frauds)
    for index in range(-WARMUP_DAYS, config.days):
        date = config.first_date + datetime.timedelta(index)
        total = int(totals[index]) if index >= 0 else _warmup_total(config, date)
        rows = _simulate_day(pop, trips, fraudsters, drifts, index, date, total,
                             _rng(config.seed, _DAY_STREAM, index + WARMUP_DAYS))
        if index >= 0:
            yield Day(index=index, date=date, rows=rows)


def build_population(config: SimulationConfig) -> population.Population:
    """The config's customers and terminals, with the merchants its drifts open."""
    pop = population.build_population(config.num_customers,
                                      _rng(config.seed, _POPULATION_STREAM))
    return drift.open_merchants(config.drifts, pop, _rng(config.seed, _DRIFT_STREAM))


def _simulate_day(pop, trips, fraudsters, drifts, index, date, total, rng) -> Rows:
    """Exactly `total` transactions: the planned frauds, then genuine ones around them."""
    day_start = day_start_timestamp(date)
    trips.advance(rng)
    planned, travel = fraudsters.start_day(index, day_start, rng, drifts.scenario_share(index))
    # A tiny day cannot hold all planned frauds: keep the earliest.
    planned = planned.take(np.argsort(planned.timestamp, kind="stable")[:total])
    travel = min(travel, total - len(planned))
    takeover = min(drifts.takeover_rows(index, rng), total - len(planned) - travel)
    shift = drifts.shift(index)
    legit = legitimate.legitimate_day(pop, trips, day_start,
                                      total - len(planned) - travel - takeover, rng, shift)
    far = fraudsters.impossible_travel(legit, travel, day_start, rng)
    taken = drifts.take_over(Rows.concat([legit, planned, far]), takeover, day_start, rng)
    missing = travel - len(far) + takeover - len(taken)
    if missing:
        # No genuine card-present purchase to jump from, or no online merchant new to a
        # taken-over card: the day stays full with genuine ones.
        legit = Rows.concat([legit, legitimate.legitimate_day(
            pop, trips, day_start, missing, rng, shift)])
    fraudsters.observe(legit, index, day_start, rng)
    rows = Rows.concat([legit, planned, far, taken])
    drifts.observe(rows)
    return _sorted(rows, rng)

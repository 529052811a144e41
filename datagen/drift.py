"""Drift scenarios: from a start day on, the simulated world is not what it was.

- population_shift: from its start day, at once, genuine customers spend more
  (amounts x1.4), buy online twice as often (each customer's card-not-present
  share doubled, at most 1) and make 30% of their purchases at newly opened
  merchants: new terminal ids, card-present ones in every city and online
  ones, of the existing merchant categories. Fraud goes on at the same rate.
- account_takeover: from its start day, a fraud scenario that earlier days do
  not have (scenarios.AccountTakeovers) makes scenarios.TAKEOVER_SHARE of the
  fraud; the other scenarios start that much fewer episodes, so the fraud
  rate stays the configured one (episodes started before go on).

Days before a drift's start day are those of a run without it: its merchants
take no purchase before, and it draws no random number before.
"""
import dataclasses
from typing import Sequence, Tuple

import numpy as np

from components.transactions import FRAUD_SCENARIOS
from datagen import legitimate, population, scenarios
from datagen.rows import Rows

POPULATION_SHIFT = "population_shift"
ACCOUNT_TAKEOVER = "account_takeover"
KINDS = (POPULATION_SHIFT, ACCOUNT_TAKEOVER)
SHIFT = legitimate.Shift(amount=1.4, online=2.0, new_merchants=0.3)
# The merchants a population_shift opens: as many as this share of the
# customers have (see population.open_merchants).
NEW_MERCHANTS_CUSTOMER_SHARE = 0.25


@dataclasses.dataclass(frozen=True)
class Drift:
    kind: str       # one of KINDS
    start_day: int  # 1 is the first written day


def fraud_scenarios(drifts: Sequence[Drift]) -> Tuple[str, ...]:
    """The fraud scenarios a simulation with `drifts` runs, in FRAUD_SCENARIOS order."""
    kinds = {d.kind for d in drifts}
    return tuple(s for s in FRAUD_SCENARIOS if s in scenarios.SCENARIO_SHARE or s in kinds)


def open_merchants(drifts: Sequence[Drift], pop: population.Population,
                   rng: np.random.Generator) -> population.Population:
    """`pop` with the merchants a population_shift of `drifts` opens."""
    if all(d.kind != POPULATION_SHIFT for d in drifts):
        return pop
    customers = max(1, round(NEW_MERCHANTS_CUSTOMER_SHARE * pop.num_customers))
    return population.open_merchants(pop, customers, rng)


class Drifts:
    """What the drifts do on each day; day 0 is the first written day (simulator.Day.index)."""

    def __init__(self, drifts: Sequence[Drift], pop: population.Population,
                 daily_frauds: float):
        self._first_day = {d.kind: d.start_day - 1 for d in drifts}
        self._takeovers = None
        if ACCOUNT_TAKEOVER in self._first_day:
            self._takeovers = scenarios.AccountTakeovers(
                pop, daily_frauds * scenarios.TAKEOVER_SHARE)

    def _runs(self, kind: str, day: int) -> bool:
        return kind in self._first_day and day >= self._first_day[kind]

    def shift(self, day: int) -> legitimate.Shift:
        return SHIFT if self._runs(POPULATION_SHIFT, day) else legitimate.NO_SHIFT

    def scenario_share(self, day: int) -> float:
        """The share of the fraud that the scenarios of every simulation make on `day`."""
        return 1.0 - scenarios.TAKEOVER_SHARE if self._runs(ACCOUNT_TAKEOVER, day) else 1.0

    def takeover_rows(self, day: int, rng: np.random.Generator) -> int:
        return self._takeovers.start_day(rng) if self._runs(ACCOUNT_TAKEOVER, day) else 0

    def take_over(self, today: Rows, count: int, day_start: int,
                  rng: np.random.Generator) -> Rows:
        """The day's account takeovers (`count` rows at most); `today`: its other rows."""
        return self._takeovers.take_over(today, count, day_start, rng) if count else Rows.empty()

    def observe(self, rows: Rows) -> None:
        """Lets account takeovers learn where cards paid (all of each day's rows)."""
        if self._takeovers is not None:
            self._takeovers.observe(rows)

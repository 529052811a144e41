"""Legitimate spending: a day of purchases of the whole population.

Customers shop near home at their usual hours, buy online, sometimes go on
trips and shop in another city, make the odd big purchase or tiny charge, and
have spending sprees. Each of these overlaps a fraud scenario on purpose.
A Shift (a population_shift drift) changes how much, where and how they spend.
"""
import dataclasses

import numpy as np

from datagen import geography, population, spending
from datagen.rows import DAY_SECONDS, LEGITIMATE, Rows

PRIMARY_CARD_SHARE = 0.75
SPREE_PROB = 0.006           # chance per customer-day of a spending spree...
SPREE_RATE = 3.0             # ...with this many times the usual purchases...
SPREE_AMOUNT = 1.4           # ...each this much bigger
BIG_PURCHASE_PROB = 0.003    # a purchase 3-12 times the usual amount
MICRO_PAYMENT_PROB = 0.04    # a tiny online charge (app store, parking)
CARD_CHECK_SHARE = 0.003     # a merchant's tiny card check before a purchase
FLIGHT_KMH = 750.0
FLIGHT_OVERHEAD_S = 5400


@dataclasses.dataclass(frozen=True)
class Shift:
    """A change in genuine spending; the default changes nothing."""

    amount: float = 1.0         # amounts are this many times the usual (tiny charges stay tiny)
    online: float = 1.0         # each customer's card-not-present share, times this (at most 1)
    new_merchants: float = 0.0  # share of purchases at merchants of population.open_merchants


NO_SHIFT = Shift()


class Trips:
    """Who is away from home, in which city, and when they fly out and back today."""

    def __init__(self, pop: population.Population):
        n = pop.num_customers
        self._pop = pop
        self._city_km = geography.city_distance_km()
        self.destination = np.full(n, -1)
        self.day_of_trip = np.zeros(n, dtype=np.int64)
        self.length = np.zeros(n, dtype=np.int64)
        self.departure = np.zeros(n, dtype=np.int64)
        self.flight = np.zeros(n, dtype=np.int64)

    def advance(self, rng: np.random.Generator) -> None:
        """Moves to the next day: trips end, others start (2 days or more)."""
        pop, n = self._pop, self._pop.num_customers
        away = self.destination >= 0
        self.day_of_trip[away] += 1
        self.destination[away & (self.day_of_trip >= self.length)] = -1

        leaving = np.flatnonzero((self.destination < 0) & (rng.random(n) < pop.travel_prob))
        num_cities = len(geography.CITIES)
        dest = rng.choice(num_cities, size=leaving.size, p=geography.CITY_WEIGHTS)
        home = pop.home_city[leaving]
        same = dest == home
        dest[same] = (dest[same] + rng.integers(1, num_cities, same.sum())) % num_cities
        self.destination[leaving] = dest
        self.day_of_trip[leaving] = 0
        self.length[leaving] = 2 + rng.poisson(1.5, leaving.size)

        away = np.flatnonzero(self.destination >= 0)
        km = self._city_km[pop.home_city[away], self.destination[away]]
        self.flight[away] = (km / FLIGHT_KMH * 3600 + FLIGHT_OVERHEAD_S).astype(np.int64)
        latest = np.minimum(18 * 3600, 23 * 3600 - self.flight[away])
        self.departure[away] = rng.uniform(6 * 3600, latest).astype(np.int64)

    def locate(self, customers, seconds, rng):
        """Where each card-present purchase happens: a trip's city, or -1 for home.

        Returns the cities and the times, moved past the flight for purchases
        that would fall while the customer is in the air.
        """
        dest = self.destination[customers]
        away = dest >= 0
        first = away & (self.day_of_trip[customers] == 0)
        last = away & (self.day_of_trip[customers] == self.length[customers] - 1)
        departure = self.departure[customers]
        arrival = departure + self.flight[customers]
        in_air = (first | last) & (seconds >= departure) & (seconds < arrival)
        seconds = np.where(in_air, arrival + rng.integers(0, 1800, seconds.size), seconds)
        seconds = np.minimum(seconds, DAY_SECONDS - 1)
        there = (away & ~first & ~last) | (first & (seconds >= arrival)) \
            | (last & (seconds < departure))
        return np.where(there, dest, -1), seconds


def pick_cards(pop: population.Population, customers, rng):
    """A card of each customer: mostly the first one."""
    n = pop.num_cards[customers]
    other = 1 + (rng.random(customers.size) * (n - 1)).astype(np.int64)
    primary = (rng.random(customers.size) < PRIMARY_CARD_SHARE) | (n == 1)
    return pop.first_card[customers] + np.where(primary, 0, other)


def _card_present_terminals(pop, trips, customers, seconds, rng):
    category = population.pick_categories(pop.cp_category_cdf[customers], rng)
    city, seconds = trips.locate(customers, seconds, rng)
    favourite = rng.choice(population.NEAR_K, size=customers.size, p=population.FAVOURITE_ODDS)
    terminal = pop.near_terminals[customers, category, favourite]
    away = city >= 0
    terminal[away] = population.pick_city_terminals(pop, city[away], category[away], rng)
    return terminal, seconds


def _to_new_merchants(pop, terminal, share, rng):
    """Moves `share` of the purchases at `terminal` to a new merchant of the same category
    (in the same city for card-present ones)."""
    moved = np.flatnonzero(rng.random(terminal.size) < share)
    old = terminal[moved]
    online = pop.terminal_online[old]
    category = pop.terminal_category[old]
    new = np.empty(moved.size, dtype=np.int64)
    new[~online] = population.pick_city_terminals(
        pop, pop.terminal_city[old[~online]], population.CP_INDEX[category[~online]], rng,
        new=True)
    new[online] = population.pick_online_merchants(
        pop, population.CNP_INDEX[category[online]], rng, new=True)
    terminal[moved] = new


def _regular(pop, trips, day_start, count, shift, rng):
    spree = rng.random(pop.num_customers) < SPREE_PROB
    weight = pop.daily_rate * np.where(spree, SPREE_RATE, 1.0)
    customers = np.repeat(np.arange(pop.num_customers),
                          rng.multinomial(count, weight / weight.sum()))
    cards = pick_cards(pop, customers, rng)
    online = rng.random(count) < pop.online_prob[customers] * shift.online
    seconds = spending.seconds_of_day(pop.hour_mean[customers],
                                      pop.hour_sd[customers] * np.where(online, 1.3, 1.0), rng)
    terminal = np.empty(count, dtype=np.int64)
    cp = np.flatnonzero(~online)
    terminal[cp], seconds[cp] = _card_present_terminals(pop, trips, customers[cp], seconds[cp], rng)
    cnp = np.flatnonzero(online)
    terminal[cnp] = population.pick_online_merchants(
        pop, population.pick_categories(pop.cnp_category_cdf[customers[cnp]], rng), rng)
    if shift.new_merchants:
        _to_new_merchants(pop, terminal, shift.new_merchants, rng)

    category = pop.terminal_category[terminal]
    amount = spending.amounts(pop.base_amount[customers], category, rng,
                              np.where(spree[customers], SPREE_AMOUNT, 1.0) * shift.amount)
    big = rng.random(count) < BIG_PURCHASE_PROB
    amount[big] *= rng.uniform(3.0, 12.0, big.sum())
    micro = online & (rng.random(count) < MICRO_PAYMENT_PROB)
    amount[micro] = spending.micro_amounts(micro.sum(), rng)
    timestamp = day_start + seconds
    return Rows.build(timestamp, cards, terminal, amount, LEGITIMATE, timestamp)


def _card_checks(pop, day_start, checks, extra, shift, rng):
    """A tiny card check (sometimes two) at an online merchant, then the purchase there."""
    weight = pop.daily_rate * pop.online_prob
    customers = rng.choice(pop.num_customers, size=checks, p=weight / weight.sum())
    cards = pick_cards(pop, customers, rng)
    merchant = population.pick_online_merchants(
        pop, population.pick_categories(pop.cnp_category_cdf[customers], rng), rng)
    start = spending.seconds_of_day(pop.hour_mean[customers], pop.hour_sd[customers], rng)
    purchase_at = start + rng.integers(30, 1800, checks)
    purchase = spending.amounts(pop.base_amount[customers], pop.terminal_category[merchant], rng,
                                shift.amount)
    twice = rng.choice(checks, size=extra, replace=False)
    seconds = np.concatenate([start, start[twice] + rng.integers(5, 30, extra), purchase_at])
    amount = np.concatenate([spending.micro_amounts(checks + extra, rng), purchase])
    index = np.concatenate([np.arange(checks), twice, np.arange(checks)])
    timestamp = day_start + np.minimum(seconds, DAY_SECONDS - 1)
    return Rows.build(timestamp, cards[index], merchant[index], amount, LEGITIMATE, timestamp)


def legitimate_day(pop: population.Population, trips: Trips, day_start: int, count: int,
                   rng: np.random.Generator, shift: Shift = NO_SHIFT) -> Rows:
    """Exactly `count` legitimate transactions of the day starting at `day_start`.

    `trips` must already be advanced to this day.
    """
    checks = min(rng.binomial(count, CARD_CHECK_SHARE), count // 3)
    extra = rng.binomial(checks, 0.3)
    regular = _regular(pop, trips, day_start, count - 2 * checks - extra, shift, rng)
    return Rows.concat([regular, _card_checks(pop, day_start, checks, extra, shift, rng)])

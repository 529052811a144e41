"""The simulated population: customers with their cards and habits, and the terminals they use.

Everything here is drawn once per seed and never changes during a simulation.
Customers live around a city (geography.CITIES) and have a spending profile:
a typical amount, a daily rate, usual hours, how often they travel and how
much they buy online. Terminals are card-present (a place on the map and a
merchant category) or card-not-present (online merchants, no place).
Merchants that open during the simulation (a population_shift drift) are
drawn with it, numbered after its own terminals (open_merchants).
"""
import dataclasses

import numpy as np
from scipy.spatial import cKDTree

from components.transactions import MERCHANT_CATEGORIES
from datagen import geography

# Categories by channel, as indices into MERCHANT_CATEGORIES.
CP_CATEGORIES = np.array([MERCHANT_CATEGORIES.index(c) for c in (
    "grocery", "fuel", "restaurant", "travel", "electronics", "atm", "luxury")])
CNP_CATEGORIES = np.array([MERCHANT_CATEGORIES.index(c) for c in (
    "online", "travel", "electronics", "luxury")])


def _positions(categories):
    """MERCHANT_CATEGORIES index -> position in `categories` (-1: not there)."""
    position = np.full(len(MERCHANT_CATEGORIES), -1)
    position[categories] = np.arange(categories.size)
    return position


CP_INDEX = _positions(CP_CATEGORIES)
CNP_INDEX = _positions(CNP_CATEGORIES)

# How a typical customer splits purchases across categories, per channel
# (same order as CP_CATEGORIES / CNP_CATEGORIES).
CP_CATEGORY_MIX = np.array([0.32, 0.11, 0.26, 0.03, 0.04, 0.12, 0.02])
CNP_CATEGORY_MIX = np.array([0.78, 0.10, 0.09, 0.03])
# How card-present terminals split across categories.
CP_TERMINAL_MIX = np.array([0.27, 0.12, 0.32, 0.06, 0.08, 0.10, 0.05])

# A customer picks among the NEAR_K nearest terminals of a category with these odds.
NEAR_K = 4
FAVOURITE_ODDS = np.array([0.50, 0.25, 0.15, 0.10])

HOME_SPREAD_KM = 8.0
TERMINAL_SPREAD_KM = 9.0
CP_TERMINALS_PER_CUSTOMER = 0.8
CNP_MERCHANTS_PER_CUSTOMER = 0.05
# Share of card-present terminals whose registered location is far from where
# they are (an acquirer that files the head office): legitimate "jumps".
MISREGISTERED_SHARE = 0.001
# Groups of card-present terminals: one per (city, CP category).
NUM_CITY_GROUPS = len(geography.CITIES) * CP_CATEGORIES.size


@dataclasses.dataclass(frozen=True)
class Population:
    """Customers, cards and terminals as parallel numpy arrays (index = id number)."""

    # Customers.
    home_city: np.ndarray          # int
    base_amount: np.ndarray        # typical purchase amount
    daily_rate: np.ndarray         # relative transactions per day (mean 1)
    hour_mean: np.ndarray          # usual hour of day of purchases
    hour_sd: np.ndarray
    travel_prob: np.ndarray        # chance per day of leaving on a trip
    online_prob: np.ndarray        # share of purchases made card-not-present
    cp_category_cdf: np.ndarray    # (customers, len(CP_CATEGORIES)) cumulative
    cnp_category_cdf: np.ndarray   # (customers, len(CNP_CATEGORIES)) cumulative
    first_card: np.ndarray         # index of the customer's first card
    num_cards: np.ndarray
    near_terminals: np.ndarray     # (customers, len(CP_CATEGORIES), NEAR_K) terminal indices
    # Cards.
    card_customer: np.ndarray
    # Terminals: card-present ones first, then the online merchants.
    terminal_category: np.ndarray  # index into MERCHANT_CATEGORIES
    terminal_online: np.ndarray    # bool: card-not-present merchant
    terminal_city: np.ndarray      # true city (-1 for online merchants)
    terminal_latitude: np.ndarray  # registered location (NaN for online merchants)
    terminal_longitude: np.ndarray
    terminal_traffic: np.ndarray   # expected share of card-present visits
    # Card-present terminals grouped by (city, CP category): terminals of group g
    # are city_terminals[city_start[g]:city_start[g + 1]], g = city * len(CP_CATEGORIES) + k.
    # Merchants of open_merchants have their own groups after these, in both groupings.
    city_terminals: np.ndarray
    city_start: np.ndarray
    # Online merchants grouped by CNP category, with cumulative popularity within a group.
    online_terminals: np.ndarray
    online_start: np.ndarray
    online_popularity_cdf: np.ndarray

    @property
    def num_customers(self) -> int:
        return self.home_city.size

    @property
    def num_cards_total(self) -> int:
        return self.card_customer.size

    @property
    def num_terminals(self) -> int:
        return self.terminal_category.size


def _cumulative_preferences(base_mix, num_customers, concentration, rng):
    """Per-customer category preferences around `base_mix`, as row-wise cumulative sums."""
    prefs = rng.dirichlet(base_mix * concentration, size=num_customers)
    cdf = np.cumsum(prefs, axis=1)
    cdf[:, -1] = 1.0
    return cdf


def _customers(num_customers, rng):
    home_city = rng.choice(len(geography.CITIES), size=num_customers, p=geography.CITY_WEIGHTS)
    home_lat, home_lon = geography.scatter_around(home_city, HOME_SPREAD_KM, rng)
    return dict(
        home_city=home_city,
        home_lat=home_lat,
        home_lon=home_lon,
        base_amount=rng.lognormal(np.log(28.0), 0.45, num_customers),
        daily_rate=rng.gamma(2.0, 0.5, num_customers),
        hour_mean=np.clip(rng.normal(13.5, 2.2, num_customers), 7.0, 21.0),
        hour_sd=rng.uniform(2.0, 4.5, num_customers),
        travel_prob=rng.beta(0.8, 45.0, num_customers),
        online_prob=rng.beta(2.0, 5.0, num_customers),
        cp_category_cdf=_cumulative_preferences(CP_CATEGORY_MIX, num_customers, 20.0, rng),
        cnp_category_cdf=_cumulative_preferences(CNP_CATEGORY_MIX, num_customers, 20.0, rng),
    )


def _cp_terminals(num_customers, rng):
    """Card-present terminals: every city has at least one of each category."""
    num_cities, num_cats = len(geography.CITIES), CP_CATEGORIES.size
    extra = max(0, round(CP_TERMINALS_PER_CUSTOMER * num_customers) - num_cities * num_cats)
    city = np.concatenate([
        np.repeat(np.arange(num_cities), num_cats),
        rng.choice(num_cities, size=extra, p=geography.CITY_WEIGHTS)])
    cp_index = np.concatenate([
        np.tile(np.arange(num_cats), num_cities),
        rng.choice(num_cats, size=extra, p=CP_TERMINAL_MIX)])
    true_lat, true_lon = geography.scatter_around(city, TERMINAL_SPREAD_KM, rng)
    reg_lat, reg_lon = true_lat.copy(), true_lon.copy()
    misregistered = np.flatnonzero(rng.random(city.size) < MISREGISTERED_SHARE)
    elsewhere = (city[misregistered] + rng.integers(1, num_cities, misregistered.size)) % num_cities
    reg_lat[misregistered], reg_lon[misregistered] = geography.scatter_around(
        elsewhere, TERMINAL_SPREAD_KM, rng)
    return dict(city=city, cp_index=cp_index, true_lat=true_lat, true_lon=true_lon,
                reg_lat=reg_lat, reg_lon=reg_lon)


def _online_merchants(num_customers, rng):
    num_cats = CNP_CATEGORIES.size
    count = max(4 * num_cats, round(CNP_MERCHANTS_PER_CUSTOMER * num_customers))
    cnp_index = np.concatenate([
        np.arange(num_cats), rng.choice(num_cats, size=count - num_cats, p=CNP_CATEGORY_MIX)])
    # Zipf-like popularity: a few big online shops and a long tail.
    popularity = 1.0 / rng.permutation(np.arange(1, count + 1)) ** 1.1
    return dict(cnp_index=cnp_index, popularity=popularity)


def _nearest_by_category(home_lat, home_lon, cp):
    """(customers, categories, NEAR_K): each customer's nearest terminals of each category."""
    homes = geography.to_plane_km(home_lat, home_lon)
    places = geography.to_plane_km(cp["true_lat"], cp["true_lon"])
    near = np.empty((home_lat.size, CP_CATEGORIES.size, NEAR_K), dtype=np.int64)
    for k in range(CP_CATEGORIES.size):
        members = np.flatnonzero(cp["cp_index"] == k)
        kk = min(NEAR_K, members.size)
        _, idx = cKDTree(places[members]).query(homes, k=kk)
        idx = idx.reshape(home_lat.size, kk)
        # Fewer terminals than NEAR_K: repeat the nearest ones.
        near[:, k, :] = members[idx[:, np.arange(NEAR_K) % kk]]
    return near


def _grouped(keys, num_groups):
    """Indices sorted by key, and the start offset of each key's group."""
    order = np.argsort(keys, kind="stable")
    start = np.searchsorted(keys[order], np.arange(num_groups + 1))
    return order, start


def _terminal_columns(cp, online):
    """The per-terminal arrays of Population: card-present terminals, then online merchants."""
    num_cp, num_online = cp["city"].size, online["cnp_index"].size
    nan_online = np.full(num_online, np.nan)
    return dict(
        terminal_category=np.concatenate([CP_CATEGORIES[cp["cp_index"]],
                                          CNP_CATEGORIES[online["cnp_index"]]]),
        terminal_online=np.concatenate([np.zeros(num_cp, bool), np.ones(num_online, bool)]),
        terminal_city=np.concatenate([cp["city"], np.full(num_online, -1)]),
        terminal_latitude=np.concatenate([cp["reg_lat"], nan_online]),
        terminal_longitude=np.concatenate([cp["reg_lon"], nan_online]),
    )


def _terminal_groups(cp, online, first_terminal):
    """The pick groups of Population for terminals numbered from `first_terminal`."""
    num_cp_cats = CP_CATEGORIES.size
    city_terminals, city_start = _grouped(cp["city"] * num_cp_cats + cp["cp_index"],
                                          NUM_CITY_GROUPS)
    online_order, online_start = _grouped(online["cnp_index"], CNP_CATEGORIES.size)
    popularity = online["popularity"][online_order]
    popularity_cdf = np.empty_like(popularity)
    for g in range(CNP_CATEGORIES.size):
        group = slice(online_start[g], online_start[g + 1])
        popularity_cdf[group] = np.cumsum(popularity[group]) / popularity[group].sum()
    return dict(
        city_terminals=first_terminal + city_terminals,
        city_start=city_start,
        online_terminals=first_terminal + cp["city"].size + online_order,
        online_start=online_start,
        online_popularity_cdf=popularity_cdf,
    )


def build_population(num_customers: int, rng: np.random.Generator) -> Population:
    """Draws the customers, cards and terminals of a simulation."""
    cust = _customers(num_customers, rng)
    cp = _cp_terminals(num_customers, rng)
    online = _online_merchants(num_customers, rng)
    num_cp = cp["city"].size
    num_online = online["cnp_index"].size

    num_cards = 1 + rng.binomial(2, 0.15, num_customers)
    first_card = np.concatenate([[0], np.cumsum(num_cards)[:-1]])
    card_customer = np.repeat(np.arange(num_customers), num_cards)

    near = _nearest_by_category(cust["home_lat"], cust["home_lon"], cp)
    cp_prefs = np.diff(cust["cp_category_cdf"], axis=1, prepend=0.0)
    visit_weight = (cust["daily_rate"] * (1 - cust["online_prob"]))[:, None, None] \
        * cp_prefs[:, :, None] * FAVOURITE_ODDS[None, None, :]
    traffic = np.zeros(num_cp + num_online)
    np.add.at(traffic, near.ravel(), visit_weight.ravel())
    traffic /= traffic.sum()

    return Population(
        home_city=cust["home_city"],
        base_amount=cust["base_amount"],
        daily_rate=cust["daily_rate"],
        hour_mean=cust["hour_mean"],
        hour_sd=cust["hour_sd"],
        travel_prob=cust["travel_prob"],
        online_prob=cust["online_prob"],
        cp_category_cdf=cust["cp_category_cdf"],
        cnp_category_cdf=cust["cnp_category_cdf"],
        first_card=first_card,
        num_cards=num_cards,
        near_terminals=near,
        card_customer=card_customer,
        terminal_traffic=traffic,
        **_terminal_columns(cp, online),
        **_terminal_groups(cp, online, 0),
    )


def open_merchants(pop: Population, num_customers: int, rng: np.random.Generator) -> Population:
    """`pop` with new merchants, as many as `num_customers` customers have, after its terminals.

    Every city gets new card-present terminals of every category, and every
    online category new merchants. The pick functions choose among them with
    new=True only, so everything `pop` did before stays the same. Their traffic
    is 0: it is known when the population is drawn, before they open.
    """
    cp = _cp_terminals(num_customers, rng)
    online = _online_merchants(num_customers, rng)
    columns = _terminal_columns(cp, online)
    columns["terminal_traffic"] = np.zeros(columns["terminal_category"].size)
    added = {name: np.concatenate([getattr(pop, name), values])
             for name, values in columns.items()}
    groups = _terminal_groups(cp, online, pop.num_terminals)
    # The new groups follow the old ones: their starts continue the old ends.
    for terminals, start in (("city_terminals", "city_start"),
                             ("online_terminals", "online_start")):
        groups[start] = getattr(pop, terminals).size + groups[start][1:]
    groups = {name: np.concatenate([getattr(pop, name), values])
              for name, values in groups.items()}
    return dataclasses.replace(pop, **added, **groups)


def own_online_merchants(pop: Population) -> np.ndarray:
    """The online merchants drawn with the population, without those of open_merchants."""
    return pop.online_terminals[:pop.online_start[CNP_CATEGORIES.size]]


def pick_city_terminals(pop: Population, city, cp_category_index, rng, new=False):
    """A uniformly random card-present terminal of each (city, CP category) pair.

    new: among the merchants of open_merchants instead of the population's own.
    """
    group = np.asarray(city) * CP_CATEGORIES.size + np.asarray(cp_category_index) \
        + (NUM_CITY_GROUPS if new else 0)
    start, stop = pop.city_start[group], pop.city_start[group + 1]
    offset = (rng.random(group.size) * (stop - start)).astype(np.int64)
    return pop.city_terminals[start + offset]


def pick_online_merchants(pop: Population, cnp_category_index, rng, new=False):
    """An online merchant of each given CNP category, by popularity.

    new: among the merchants of open_merchants instead of the population's own.
    """
    cnp_category_index = np.asarray(cnp_category_index)
    out = np.empty(cnp_category_index.size, dtype=np.int64)
    u = rng.random(cnp_category_index.size)
    first_group = CNP_CATEGORIES.size if new else 0
    for g in range(CNP_CATEGORIES.size):
        rows = np.flatnonzero(cnp_category_index == g)
        start, stop = pop.online_start[first_group + g], pop.online_start[first_group + g + 1]
        pos = np.searchsorted(pop.online_popularity_cdf[start:stop], u[rows], side="right")
        out[rows] = pop.online_terminals[start + np.minimum(pos, stop - start - 1)]
    return out


def pick_categories(cdf_rows, rng):
    """One category index per row from per-row cumulative probabilities."""
    u = rng.random(cdf_rows.shape[0])
    return np.minimum((u[:, None] >= cdf_rows).sum(axis=1), cdf_rows.shape[1] - 1)

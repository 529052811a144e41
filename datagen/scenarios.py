"""The fraud scenarios: who gets defrauded, where, when, and when the bank learns of it.

- compromised_terminal: a skimmer sits on a terminal for some days; some cards
  used there are cloned and, days later, cashed out in the evening, mostly at
  the few terminals the city's gang always uses (ATMs, electronics, luxury, fuel).
- compromised_card: stolen card details; for some days the card spends more
  than usual, mostly online.
- impossible_travel: a cloned card is used in a far city minutes or hours from
  a genuine purchase.
- probing: a fraudster tests stolen details with a few tiny online charges,
  then usually makes one large purchase.
- account_takeover (only from the start day of an account_takeover drift, see
  datagen.drift): a fraudster who took over a card's account spends in a
  burst, within an hour, at online merchants the card never paid at.

Each scenario overlaps legitimate behaviour (trips, big purchases, tiny
charges and card checks, sprees). A fraud is reported some days after the
episode's last transaction; all of an episode's rows get that report time as
`label_known_at`.
"""
import collections
import dataclasses
from typing import Dict, List

import numpy as np

from components.transactions import FRAUD_SCENARIOS, MERCHANT_CATEGORIES
from datagen import geography, population, spending
from datagen.rows import DAY_SECONDS, Rows

SCENARIO_CODE = {name: 1 + i for i, name in enumerate(FRAUD_SCENARIOS)}
# Share of fraudulent transactions per scenario of every simulation.
SCENARIO_SHARE = {
    "compromised_terminal": 0.30,
    "compromised_card": 0.30,
    "impossible_travel": 0.15,
    "probing": 0.25,
}
REPORT_DELAY_MEDIAN_S = 3 * DAY_SECONDS
REPORT_DELAY_MIN_S = 2 * 3600
REPORT_DELAY_MAX_S = 45 * DAY_SECONDS

# compromised_card: an episode lasts 1 + Poisson(CARD_DAYS) days with
# 1 + Poisson(CARD_ROWS_PER_DAY) transactions a day.
CARD_DAYS = 2.0
CARD_ROWS_PER_DAY = 2.0
CARD_ONLINE_SHARE = 0.75
CARD_SPIKE = (2.0, 5.0)  # amounts this many times the victim's usual
# probing: 2 + Poisson(PROBES) tiny charges, then the large one with PROBE_CASHOUT odds.
PROBES = 1.5
PROBE_CASHOUT = 0.85
# impossible_travel: 1 + Poisson(TRAVEL_EXTRA_ROWS) transactions in the far city.
TRAVEL_EXTRA_ROWS = 0.3
TRAVEL_MIN_KM = 400.0
TRAVEL_GAP_MEDIAN_S = 2400
# compromised_terminal: a skimmer stays 2 + Poisson(SKIM_DAYS) days and the gang
# clones up to 1 + Poisson(SKIM_CARDS) cards, each visiting card with SKIM_ODDS;
# a cloned card is cashed out 1-6 days later on 1 + Binomial(2, 0.4) days,
# 1 + Poisson(CASHOUT_ROWS_PER_DAY) transactions a day.
SKIM_DAYS = 4.0
SKIM_CARDS = 3.0
SKIM_ODDS = 0.5
CASHOUT_ROWS_PER_DAY = 0.8
CASHOUT_AT_GANG_TERMINAL = 0.7
GANG_TERMINALS = 3
CASHOUT_HOUR = 21.0
# Measured: the share of the card budget a skimmer actually fills.
SKIM_BUDGET_FILLED = 0.73
# account_takeover: once it runs it makes TAKEOVER_SHARE of the fraudulent
# transactions and the other scenarios start that much fewer episodes, so that
# the fraud rate stays the configured one. An episode is one burst of
# 2 + Poisson(TAKEOVER_EXTRA_ROWS) purchases within a window of TAKEOVER_WINDOW_S
# seconds, at amounts TAKEOVER_SPIKE times the victim's usual.
TAKEOVER_SHARE = 0.3
TAKEOVER_EXTRA_ROWS = 2.0
TAKEOVER_WINDOW_S = (300, 3600)
TAKEOVER_SPIKE = (1.5, 4.0)
# Resellable goods first: the odds of an online merchant by its category.
TAKEOVER_TARGET_WEIGHT = {"electronics": 3.0, "luxury": 3.0, "travel": 2.0, "online": 1.0}


def _categories(names):
    return np.array([MERCHANT_CATEGORIES.index(n) for n in names])


def _cp_index(categories):
    """MERCHANT_CATEGORIES indices -> indices into population.CP_CATEGORIES."""
    return population.CP_INDEX[categories]


def _cnp_index(categories):
    return population.CNP_INDEX[categories]


CARD_CNP_CATEGORIES = _cnp_index(_categories(("online", "electronics", "luxury", "travel")))
CARD_CNP_MIX = np.array([0.35, 0.30, 0.15, 0.20])
CARD_CP_CATEGORIES = _cp_index(_categories(("electronics", "luxury", "atm", "fuel", "grocery")))
CARD_CP_MIX = np.array([0.30, 0.15, 0.25, 0.15, 0.15])
CASHOUT_CP_CATEGORIES = _cp_index(_categories(("atm", "electronics", "luxury", "fuel")))
CASHOUT_CP_MIX = np.array([0.45, 0.25, 0.15, 0.15])
TRAVEL_CP_CATEGORIES = _cp_index(_categories(
    ("electronics", "atm", "luxury", "fuel", "grocery", "restaurant")))
TRAVEL_CP_MIX = np.array([0.30, 0.25, 0.15, 0.10, 0.10, 0.10])
PROBE_CASHOUT_CATEGORIES = _cnp_index(_categories(("electronics", "luxury", "travel", "online")))
PROBE_CASHOUT_MIX = np.array([0.40, 0.20, 0.20, 0.20])
ONLINE_CNP_INDEX = _cnp_index(_categories(("online",)))[0]
# Skimmers go where cards are swiped unattended: fuel pumps and ATMs most.
SKIM_TARGET_WEIGHT = {"fuel": 3.0, "atm": 3.0, "restaurant": 1.5, "grocery": 1.0}


def rows_per_episode() -> Dict[str, float]:
    """Expected fraudulent transactions of one episode of each scenario."""
    cashout_rows = (1 + 2 * 0.4) * (1 + CASHOUT_ROWS_PER_DAY)
    return {
        "compromised_terminal": (1 + SKIM_CARDS) * SKIM_BUDGET_FILLED * cashout_rows,
        "compromised_card": (1 + CARD_DAYS) * (1 + CARD_ROWS_PER_DAY),
        "impossible_travel": 1 + TRAVEL_EXTRA_ROWS,
        "probing": 2 + PROBES + PROBE_CASHOUT,
    }


def report_times(last_timestamp, rng):
    """When each episode ending at `last_timestamp` is reported as fraud."""
    delay = rng.lognormal(np.log(REPORT_DELAY_MEDIAN_S), 0.8, np.size(last_timestamp))
    return np.asarray(last_timestamp) + np.clip(delay, REPORT_DELAY_MIN_S,
                                                REPORT_DELAY_MAX_S).astype(np.int64)


def _pick(options, mix, size, rng):
    return options[rng.choice(options.size, size=size, p=mix)]


def _episode_rows(episode, timestamp, card, terminal, amount, scenario, rng):
    """Rows of episodes (row -> episode index), labelled at each episode's report time."""
    last = np.full(episode.max(initial=-1) + 1, np.iinfo(np.int64).min)
    np.maximum.at(last, episode, timestamp)
    report = report_times(last, rng)
    return Rows.build(timestamp, card, terminal, amount, SCENARIO_CODE[scenario], report[episode])


@dataclasses.dataclass
class _Skimmer:
    terminal: int
    city: int
    last_day: int
    budget: int
    gang_terminals: np.ndarray
    skimmed: set


class Fraudsters:
    """All fraud activity, day by day. Call, for each simulated day in order:

    1. `start_day(day, day_start, rng)` -> the fraudulent rows already planned
       for the day, and how many impossible-travel rows to add to them;
    2. `impossible_travel(legit, count, day_start, rng)` once the day's
       legitimate rows exist (it needs genuine purchases to jump from);
    3. `observe(legit, day, day_start, rng)`, which lets skimmers record the
       cards used at their terminals.
    """

    def __init__(self, pop: population.Population, daily_frauds: float):
        self._pop = pop
        per_episode = rows_per_episode()
        self._episodes_per_day = {
            name: daily_frauds * share / per_episode[name]
            for name, share in SCENARIO_SHARE.items()}
        self._pending: Dict[int, List[Rows]] = collections.defaultdict(list)
        self._skimmers: List[_Skimmer] = []
        # city -> the terminals where the city's gang cashes out cloned cards.
        self._gang_terminals: Dict[int, np.ndarray] = {}
        self._city_km = geography.city_distance_km()
        # Impossible-travel transactions per episode started today (see start_day).
        self._travel_rows = np.zeros(0, dtype=np.int64)
        target = np.zeros(pop.num_terminals)
        for name, weight in SKIM_TARGET_WEIGHT.items():
            target[pop.terminal_category == MERCHANT_CATEGORIES.index(name)] = weight
        target *= pop.terminal_traffic
        self._skim_target_p = target / target.sum()

    def start_day(self, day: int, day_start: int, rng: np.random.Generator,
                  share: float = 1.0):
        """Starts the day's new episodes, `share` of the usual number.

        Returns the rows planned for today and the number of impossible-travel rows to add.
        """
        rate = {name: episodes * share for name, episodes in self._episodes_per_day.items()}
        cards = rng.poisson(rate["compromised_card"])
        self._plan(day, self._compromised_cards(day_start, cards, rng))
        self._plan(day, self._probes(day_start, rng.poisson(rate["probing"]), rng))
        self._start_skimmers(day, rng.poisson(rate["compromised_terminal"]), rng)
        travel_episodes = rng.poisson(rate["impossible_travel"])
        self._travel_rows = 1 + rng.poisson(TRAVEL_EXTRA_ROWS, travel_episodes)
        return Rows.concat(self._pending.pop(day, [])), int(self._travel_rows.sum())

    def _plan(self, day, rows_and_offsets):
        """Files rows under the day they happen on (offset in days from `day`)."""
        rows, offsets = rows_and_offsets
        for offset in np.unique(offsets):
            self._pending[day + int(offset)].append(rows.take(offsets == offset))

    def _fraud_seconds(self, cards, rng):
        """Fraudsters keep their own hours half the time, the victim's otherwise."""
        pop = self._pop
        customers = pop.card_customer[cards]
        usual = spending.seconds_of_day(pop.hour_mean[customers], pop.hour_sd[customers], rng)
        anytime = rng.integers(0, DAY_SECONDS, cards.size)
        return np.where(rng.random(cards.size) < 0.5, anytime, usual)

    def _compromised_cards(self, day_start, episodes, rng):
        pop = self._pop
        cards = rng.integers(0, pop.num_cards_total, episodes)
        days = 1 + rng.poisson(CARD_DAYS, episodes)
        spike = rng.uniform(*CARD_SPIKE, episodes)
        # One entry per (episode, day), then one per row.
        ep_day = np.repeat(np.arange(episodes), days)
        offset = np.concatenate([np.arange(d) for d in days]) if episodes else np.zeros(0, int)
        per_day = 1 + rng.poisson(CARD_ROWS_PER_DAY, ep_day.size)
        episode, offset = np.repeat(ep_day, per_day), np.repeat(offset, per_day)
        card = cards[episode]
        customers = pop.card_customer[card]
        terminal = np.empty(card.size, dtype=np.int64)
        online = rng.random(card.size) < CARD_ONLINE_SHARE
        terminal[online] = population.pick_online_merchants(
            pop, _pick(CARD_CNP_CATEGORIES, CARD_CNP_MIX, online.sum(), rng), rng)
        terminal[~online] = population.pick_city_terminals(
            pop, pop.home_city[customers[~online]],
            _pick(CARD_CP_CATEGORIES, CARD_CP_MIX, (~online).sum(), rng), rng)
        timestamp = day_start + offset * DAY_SECONDS + self._fraud_seconds(card, rng)
        amount = spending.amounts(pop.base_amount[customers], pop.terminal_category[terminal],
                                  rng, spike[episode])
        return _episode_rows(episode, timestamp, card, terminal, amount,
                             "compromised_card", rng), offset

    def _probes(self, day_start, episodes, rng):
        pop = self._pop
        cards = rng.integers(0, pop.num_cards_total, episodes)
        probes = 2 + rng.poisson(PROBES, episodes)
        cashout = rng.random(episodes) < PROBE_CASHOUT
        online = pop.online_terminals[pop.online_start[ONLINE_CNP_INDEX]:
                                      pop.online_start[ONLINE_CNP_INDEX + 1]]
        # Half the testers stay on one merchant; the others hop between obscure ones.
        one_merchant = rng.random(episodes) < 0.5
        first_merchant = online[rng.integers(0, online.size, episodes)]
        episode = np.repeat(np.arange(episodes), probes)
        merchant = np.where(one_merchant[episode], first_merchant[episode],
                            online[rng.integers(0, online.size, episode.size)])
        start = rng.integers(0, 20 * 3600, episodes)
        gaps = rng.integers(10, 300, episode.size)
        gaps[np.cumsum(probes) - probes] = 0  # each episode's first probe starts it
        seconds = start[episode] + _cumsum_by_group(gaps, probes)
        amount = spending.micro_amounts(episode.size, rng)

        big = np.flatnonzero(cashout)
        last_probe = seconds[np.cumsum(probes) - 1][big]
        big_seconds = last_probe + rng.integers(300, 6 * 3600, big.size)
        big_merchant = population.pick_online_merchants(
            pop, _pick(PROBE_CASHOUT_CATEGORIES, PROBE_CASHOUT_MIX, big.size, rng), rng)
        big_amount = rng.lognormal(np.log(250.0), 0.9, big.size)

        episode = np.concatenate([episode, big])
        seconds = np.minimum(np.concatenate([seconds, big_seconds]), DAY_SECONDS - 1)
        rows = _episode_rows(episode, day_start + seconds, cards[episode],
                             np.concatenate([merchant, big_merchant]),
                             np.concatenate([amount, big_amount]), "probing", rng)
        return rows, np.zeros(episode.size, dtype=np.int64)

    def impossible_travel(self, legit: Rows, count: int, day_start: int,
                          rng: np.random.Generator) -> Rows:
        """Cloned-card purchases in a far city, near in time to genuine card-present ones."""
        pop = self._pop
        per_episode = self._travel_rows
        anchors = np.flatnonzero(~pop.terminal_online[legit.terminal])
        if not per_episode.size or not anchors.size:
            return Rows.empty()
        anchor = anchors[rng.integers(0, anchors.size, per_episode.size)]
        card = legit.card[anchor]
        from_city = pop.terminal_city[legit.terminal[anchor]]
        far = self._city_km[from_city] >= TRAVEL_MIN_KM
        weight = far * geography.CITY_WEIGHTS[None, :]
        cdf = np.cumsum(weight / weight.sum(axis=1, keepdims=True), axis=1)
        city = np.minimum((rng.random(card.size)[:, None] >= cdf).sum(axis=1), cdf.shape[1] - 1)

        gap = rng.lognormal(np.log(TRAVEL_GAP_MEDIAN_S), 1.0, card.size).astype(np.int64)
        after = rng.random(card.size) < 0.85
        first = legit.timestamp[anchor] - day_start + np.where(after, gap, -gap)
        episode = np.repeat(np.arange(card.size), per_episode)
        steps = rng.integers(120, 1800, episode.size)
        steps[np.cumsum(per_episode) - per_episode] = 0
        seconds = np.clip(first[episode] + _cumsum_by_group(steps, per_episode), 0,
                          DAY_SECONDS - 1)
        terminal = population.pick_city_terminals(
            pop, city[episode], _pick(TRAVEL_CP_CATEGORIES, TRAVEL_CP_MIX, episode.size, rng), rng)
        customers = pop.card_customer[card[episode]]
        amount = spending.amounts(pop.base_amount[customers], pop.terminal_category[terminal],
                                  rng, rng.uniform(1.0, 2.5, episode.size))
        rows = _episode_rows(episode, day_start + seconds, card[episode], terminal, amount,
                             "impossible_travel", rng)
        return rows.take(np.arange(min(count, len(rows))))

    def _start_skimmers(self, day, count, rng):
        pop = self._pop
        terminals = rng.choice(pop.num_terminals, size=count, p=self._skim_target_p)
        for terminal in terminals:
            city = int(pop.terminal_city[terminal])
            if city not in self._gang_terminals:
                self._gang_terminals[city] = population.pick_city_terminals(
                    pop, np.full(GANG_TERMINALS, city),
                    _pick(CASHOUT_CP_CATEGORIES, CASHOUT_CP_MIX, GANG_TERMINALS, rng), rng)
            gang = self._gang_terminals[city]
            self._skimmers.append(_Skimmer(
                terminal=int(terminal), city=city, last_day=day + 1 + rng.poisson(SKIM_DAYS),
                budget=1 + rng.poisson(SKIM_CARDS), gang_terminals=gang, skimmed=set()))

    def observe(self, legit: Rows, day: int, day_start: int, rng: np.random.Generator) -> None:
        """Skimmers copy some cards swiped at their terminals today; the gang plans cash-outs."""
        cloned, owners = [], []
        for skimmer in self._skimmers:
            swiped = legit.card[legit.terminal == skimmer.terminal]
            for card in np.unique(swiped):
                if skimmer.budget and card not in skimmer.skimmed and rng.random() < SKIM_ODDS:
                    skimmer.skimmed.add(int(card))
                    skimmer.budget -= 1
                    cloned.append(int(card))
                    owners.append(skimmer)
        self._skimmers = [s for s in self._skimmers if s.last_day > day and s.budget]
        if cloned:
            self._plan(day, self._cashouts(np.array(cloned), owners, day_start, rng))

    def _cashouts(self, cards, skimmers, day_start, rng):
        pop = self._pop
        delay = rng.integers(1, 7, cards.size)
        active = 1 + rng.binomial(2, 0.4, cards.size)
        card_day = np.repeat(np.arange(cards.size), active)
        offset = np.repeat(delay, active) + np.concatenate([np.arange(a) for a in active])
        per_day = 1 + rng.poisson(CASHOUT_ROWS_PER_DAY, card_day.size)
        episode, offset = np.repeat(card_day, per_day), np.repeat(offset, per_day)
        gangs = np.stack([s.gang_terminals for s in skimmers])
        gang = gangs[episode, rng.integers(0, GANG_TERMINALS, episode.size)]
        city = np.array([s.city for s in skimmers])[episode]
        elsewhere = population.pick_city_terminals(
            pop, city, _pick(CASHOUT_CP_CATEGORIES, CASHOUT_CP_MIX, episode.size, rng), rng)
        terminal = np.where(rng.random(episode.size) < CASHOUT_AT_GANG_TERMINAL, gang, elsewhere)
        hours = np.mod(rng.normal(CASHOUT_HOUR, 3.0, episode.size), 24.0)
        seconds = np.minimum((hours * 3600).astype(np.int64), DAY_SECONDS - 1)
        card = cards[episode]
        amount = spending.amounts(pop.base_amount[pop.card_customer[card]],
                                  pop.terminal_category[terminal], rng,
                                  rng.uniform(1.5, 3.0, episode.size))
        timestamp = day_start + offset * DAY_SECONDS + seconds
        return _episode_rows(episode, timestamp, card, terminal, amount,
                             "compromised_terminal", rng), offset


class AccountTakeovers:
    """account_takeover episodes. Call, for each simulated day in order:

    1. on the days it runs, `start_day(rng)` before the day's genuine rows
       exist -> how many rows to keep for takeovers;
    2. then `take_over(today, count, day_start, rng)` with the day's other rows;
    3. `observe(rows)` with all of the day's rows, on every day, so that a
       takeover goes where its card never paid before.
    """

    def __init__(self, pop: population.Population, daily_frauds: float):
        self._pop = pop
        self._episodes_per_day = daily_frauds / (2 + TAKEOVER_EXTRA_ROWS)
        # Not the merchants a population_shift opens: they may not be open yet.
        self._online = population.own_online_merchants(pop)
        weight_of = np.array([TAKEOVER_TARGET_WEIGHT.get(c, 0.0) for c in MERCHANT_CATEGORIES])
        self._weight = weight_of[pop.terminal_category]
        # card * num_terminals + terminal of every online payment so far, sorted.
        self._paid = np.zeros(0, dtype=np.int64)
        self._sizes = np.zeros(0, dtype=np.int64)

    def _payments(self, rows: Rows) -> np.ndarray:
        online = self._pop.terminal_online[rows.terminal]
        return rows.card[online] * self._pop.num_terminals + rows.terminal[online]

    def observe(self, rows: Rows) -> None:
        self._paid = np.union1d(self._paid, self._payments(rows))

    def start_day(self, rng: np.random.Generator) -> int:
        """Starts the day's episodes; returns how many rows they have."""
        episodes = rng.poisson(self._episodes_per_day)
        self._sizes = 2 + rng.poisson(TAKEOVER_EXTRA_ROWS, episodes)
        return int(self._sizes.sum())

    def take_over(self, today: Rows, count: int, day_start: int,
                  rng: np.random.Generator) -> Rows:
        """At most `count` rows of the day's episodes; `today`: the day's other rows.

        A card that already paid at every online merchant has no takeover.
        """
        pop = self._pop
        paid = np.union1d(self._paid, self._payments(today))
        cards = rng.integers(0, pop.num_cards_total, self._sizes.size)
        merchants = [self._unpaid_merchants(card, size, paid, rng)
                     for card, size in zip(cards, self._sizes)]
        episode = np.repeat(np.arange(cards.size), [m.size for m in merchants])
        start = rng.integers(0, DAY_SECONDS - TAKEOVER_WINDOW_S[1], cards.size)
        window = rng.integers(*TAKEOVER_WINDOW_S, cards.size)
        seconds = start[episode] + (rng.random(episode.size) * window[episode]).astype(np.int64)
        card = cards[episode]
        terminal = np.concatenate([np.zeros(0, dtype=np.int64), *merchants])
        amount = spending.amounts(pop.base_amount[pop.card_customer[card]],
                                  pop.terminal_category[terminal], rng,
                                  rng.uniform(*TAKEOVER_SPIKE, episode.size))
        rows = _episode_rows(episode, day_start + seconds, card, terminal, amount,
                             "account_takeover", rng)
        return rows.take(np.arange(min(count, len(rows))))

    def _unpaid_merchants(self, card, size, paid, rng):
        """`size` online merchants where `card` never paid (`paid`: the payment codes)."""
        first = card * self._pop.num_terminals
        low, high = np.searchsorted(paid, [first, first + self._pop.num_terminals])
        unpaid = np.setdiff1d(self._online, paid[low:high] - first, assume_unique=True)
        if not unpaid.size:
            return unpaid
        weight = self._weight[unpaid]
        return rng.choice(unpaid, size=size, p=weight / weight.sum())


def _cumsum_by_group(values, sizes):
    """Cumulative sums restarting at each group of consecutive `sizes` entries."""
    total = np.cumsum(values)
    starts = np.cumsum(sizes) - sizes
    before = np.repeat(total[starts] - values[starts], sizes)
    return total - before

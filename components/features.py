"""The transaction features: one definition, used by the batch and the online driver.

Every feature of a transaction is computed only from what was known before it.
"Earlier" means before in (timestamp, transaction_id) order; a window of W
seconds holds the earlier transactions with `t - ts < W`, so a transaction at
the same second counts (dt = 0). A fraud label counts from its
`label_known_at` on, inclusive: a label known at exactly `t` is known at `t`.

The definitions are small stateful per-key classes, fed one key's transactions
in order with `features_for(txn)` then `record(txn)`:

- `CardHistory`: per-card counts and amount sums over 1 h, 24 h, 7 d, 30 d;
  seconds since the previous transaction; distance and implied speed from the
  previous card-present transaction; amount relative to the 30-day mean.
- `CardProfile`: the card's usual behaviour over its earlier 30 days (where,
  when, at which merchant categories, on which channel, how much per
  category) and how far the transaction departs from it.
- `TerminalHistory`: the terminal's fraud rate over 7 d and 30 d among its
  earlier transactions whose label is already known.

Two drivers run exactly these classes: FeatureGen (components/feature_gen,
Apache Beam, grouped by card and by terminal) and `OnlineFeatureBuilder`
(below, one transaction at a time, for the risk engine); both hold a card's
two classes together in a `CardState`.

A missing value is an absent feature, never a sentinel number: see
OPTIONAL_FEATURES.
"""
import bisect
import collections
import functools
import heapq
import math
import struct
from typing import Any, Deque, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

from components.transactions import Transaction

HOUR = 3600
DAY = 24 * HOUR
CARD_WINDOWS = (("1h", HOUR), ("24h", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY))
TERMINAL_WINDOWS = (("7d", 7 * DAY), ("30d", 30 * DAY))
# The longest window: state older than this can never affect a feature again.
HORIZON = 30 * DAY
# A card's usual behaviour is taken over the whole horizon: the longest history
# a window already keeps, so the profile adds no older state.
PROFILE_WINDOW = HORIZON
EARTH_RADIUS_KM = 6371.0088

LABEL_KEY = "is_fraud"

# Feature name -> type ('int' -> int64, 'float' -> float, 'string' -> bytes).
PASSTHROUGH_FEATURES = {
    "transaction_id": "string",
    "timestamp": "int",
    "card_id": "string",
    "customer_id": "string",
    "terminal_id": "string",
    LABEL_KEY: "int",
    # The simulated fraud pattern ('' for legitimate): for analysis only.
    "fraud_scenario": "string",
}

MODEL_FEATURES = {
    "amount": "float",
    "merchant_category": "string",
    "channel": "string",
    "hour_of_day": "int",
    "is_weekend": "int",
    "is_night": "int",
    **{f"card_txn_count_{name}": "int" for name, _ in CARD_WINDOWS},
    **{f"card_amount_sum_{name}": "float" for name, _ in CARD_WINDOWS},
    "seconds_since_prev_txn": "float",
    "distance_from_prev_km": "float",
    "speed_from_prev_kmh": "float",
    "amount_to_mean_30d": "float",
    "distance_from_usual_location_km": "float",
    "hours_from_usual_time": "float",
    "merchant_category_share_30d": "float",
    "channel_share_30d": "float",
    "amount_to_category_mean_30d": "float",
    **{f"terminal_fraud_rate_{name}": "float" for name, _ in TERMINAL_WINDOWS},
}

# The model features by the computation that produces them together: the unit
# whose cost the ledger measures (a card's windows cost one pass over its history).
FEATURE_GROUPS = {
    "transaction": ("amount", "merchant_category", "channel"),
    "calendar": ("hour_of_day", "is_weekend", "is_night"),
    "card_history": tuple(name for name in MODEL_FEATURES
                          if name.startswith("card_") or name in (
                              "seconds_since_prev_txn", "distance_from_prev_km",
                              "speed_from_prev_kmh", "amount_to_mean_30d")),
    # One pass over the card's 30-day profile, kept apart from the windows above.
    "card_profile": ("distance_from_usual_location_km", "hours_from_usual_time",
                     "merchant_category_share_30d", "channel_share_30d",
                     "amount_to_category_mean_30d"),
    "terminal_history": tuple(f"terminal_fraud_rate_{name}" for name, _ in TERMINAL_WINDOWS),
}

# Model features absent from an example when undefined for its transaction.
OPTIONAL_FEATURES = frozenset({
    "seconds_since_prev_txn",   # the card's first transaction
    "distance_from_prev_km",    # card-not-present, or no earlier card-present one
    "speed_from_prev_kmh",
    "amount_to_mean_30d",       # no earlier transaction in 30 d (or a zero mean)
    # card-not-present, or no earlier located card-present transaction in 30 d
    "distance_from_usual_location_km",
    "hours_from_usual_time",    # no earlier transaction in 30 d (or no mean direction)
    "merchant_category_share_30d",  # no earlier transaction in 30 d
    "channel_share_30d",
    "amount_to_category_mean_30d",  # none at this category in 30 d (or a zero mean)
    "terminal_fraud_rate_7d",   # no earlier labelled transaction in the window
    "terminal_fraud_rate_30d",
})

FEATURE_TYPES = {**PASSTHROUGH_FEATURES, **MODEL_FEATURES}
# The groups a card's history computes (CardState).
CARD_GROUPS = ("card_history", "card_profile")


def selected_features(exclude: Iterable[str] = ()) -> Tuple[str, ...]:
    """The model features without `exclude`, in MODEL_FEATURES order.

    A bank drops a feature that costs more than it is worth (the ledger's
    feature table); a name that is not a model feature is refused rather than
    ignored, since a typo would otherwise keep the feature silently.
    """
    exclude = set(exclude)
    unknown = sorted(exclude - set(MODEL_FEATURES))
    if unknown:
        raise ValueError(f"features.exclude: {unknown} are not model features "
                         f"(model features: {', '.join(MODEL_FEATURES)})")
    selected = tuple(name for name in MODEL_FEATURES if name not in exclude)
    if not selected:
        raise ValueError("features.exclude leaves the model no feature")
    return selected


def feature_groups(names: Iterable[str]) -> FrozenSet[str]:
    """The FEATURE_GROUPS that compute any of `names`."""
    names = set(names)
    return frozenset(group for group, members in FEATURE_GROUPS.items() if names & set(members))


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def calendar_features(timestamp: int) -> Dict[str, int]:
    """Hour of day, weekend and night flags of a Unix timestamp, in UTC."""
    hour = (timestamp // HOUR) % 24
    # 1970-01-01 was a Thursday: weekday 3 with Monday = 0.
    weekday = (timestamp // DAY + 3) % 7
    return {
        "hour_of_day": hour,
        "is_weekend": int(weekday >= 5),
        "is_night": int(hour < 6 or hour >= 22),
    }


def _location(txn: Transaction) -> Optional[Tuple[float, float]]:
    """The place of a card-present transaction, or None when it has none."""
    if txn.card_present and txn.latitude is not None and txn.longitude is not None:
        return txn.latitude, txn.longitude
    return None


class _Clock:
    """The time a per-key history has advanced to; refuses to go back.

    Taking features advances a history (windows drop old entries, labels
    become known), so a transaction older than that time would be misjudged.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self.now: Optional[int] = None

    def advance(self, txn: Transaction) -> None:
        if self.now is not None and txn.timestamp < self.now:
            raise ValueError(
                f"transaction {txn.transaction_id} at {txn.timestamp} is older than the "
                f"history of its {self.kind} (at {self.now}); feed transactions in "
                "(timestamp, transaction_id) order")
        self.now = txn.timestamp


def _micros(amount: float) -> int:
    """An amount in integer micro-units.

    Sums of them leave no rounding residue when entries leave a window: a
    window of zero amounts sums to exactly 0.
    """
    return round(amount * 1e6)


_COUNT_NAMES = tuple(f"card_txn_count_{name}" for name, _ in CARD_WINDOWS)
_SUM_NAMES = tuple(f"card_amount_sum_{name}" for name, _ in CARD_WINDOWS)


class CardHistory:
    """The features of one card's transactions, fed in (timestamp, transaction_id) order.

    The windows share one list of the card's transactions, oldest first: a
    window is the list's tail from its own start index on, with its amount sum
    kept as entries leave it. (One list rather than a queue per window: each
    transaction is stored once, and a window advances by moving an index.)
    Memory: the transactions of the last 30 days plus a constant; entries
    older than the longest window are dropped once they are half the list.
    """

    def __init__(self):
        self._clock = _Clock("card")
        self._times: List[int] = []
        self._micros: List[int] = []
        self._starts = [0] * len(CARD_WINDOWS)
        self._sums = [0] * len(CARD_WINDOWS)
        self._advanced_to: Optional[int] = None
        self._last_timestamp: Optional[int] = None
        # (timestamp, latitude, longitude) of the last located card-present transaction.
        self._last_fix: Optional[Tuple[int, float, float]] = None

    def features_for(self, txn: Transaction) -> Dict[str, Any]:
        """The card features of `txn`, from the transactions recorded before it."""
        self._clock.advance(txn)
        t = txn.timestamp
        self._advance(t)
        total = len(self._times)
        out: Dict[str, Any] = {}
        for count_name, sum_name, start, micros in zip(_COUNT_NAMES, _SUM_NAMES, self._starts,
                                                       self._sums):
            out[count_name] = total - start
            out[sum_name] = micros / 1e6
        if self._last_timestamp is not None:
            out["seconds_since_prev_txn"] = float(t - self._last_timestamp)
        here = _location(txn)
        if here is not None and self._last_fix is not None:
            prev_t, prev_lat, prev_lon = self._last_fix
            distance = haversine_km(prev_lat, prev_lon, here[0], here[1])
            out["distance_from_prev_km"] = distance
            out["speed_from_prev_kmh"] = distance / max(t - prev_t, 1) * 3600.0
        month_count, month_micros = total - self._starts[-1], self._sums[-1]
        if month_count and month_micros > 0:
            out["amount_to_mean_30d"] = txn.amount * month_count / (month_micros / 1e6)
        return out

    def record(self, txn: Transaction) -> None:
        """Adds `txn` to the history, after its features were taken."""
        self._clock.advance(txn)
        t = txn.timestamp
        self._advance(t)
        micros = _micros(txn.amount)
        self._times.append(t)
        self._micros.append(micros)
        self._sums = [total + micros for total in self._sums]
        self._last_timestamp = t
        here = _location(txn)
        if here is not None:
            self._last_fix = (t, here[0], here[1])

    def _advance(self, t: int) -> None:
        """Moves each window's start past the entries that are out of it at time `t`."""
        if t == self._advanced_to:  # features_for then record: nothing left since
            return
        self._advanced_to = t
        times, micros, end = self._times, self._micros, len(self._times)
        for index, (_, seconds) in enumerate(CARD_WINDOWS):
            start, total = self._starts[index], self._sums[index]
            while start < end and t - times[start] >= seconds:
                total -= micros[start]
                start += 1
            self._starts[index], self._sums[index] = start, total
        expired = self._starts[-1]  # out of the longest window: out of every window
        if expired > 32 and 2 * expired > end:
            del times[:expired]
            del micros[:expired]
            self._starts = [start - expired for start in self._starts]


# Fixed-point scale of the unit vectors summed for a card's usual time and
# place: integer sums, like the micro-unit amounts, come back to exactly zero
# when their entries leave the window (1e-9 of the Earth's radius is 6 mm).
_UNIT = 10 ** 9


def _fixed(*components: float) -> Tuple[int, ...]:
    return tuple(round(c * _UNIT) for c in components)


# One entry: a transaction's features and then its record ask for the same one.
@functools.lru_cache(maxsize=1)
def _clock_vector(timestamp: int) -> Tuple[int, ...]:
    """The UTC time of day on the unit circle: 23:59 sits next to 00:00."""
    angle = 2 * math.pi * (timestamp % DAY) / DAY
    return _fixed(math.cos(angle), math.sin(angle))


def _earth_vector(lat: float, lon: float) -> Tuple[int, ...]:
    """A place as a unit vector from the Earth's centre.

    Their sum points at a sound centroid anywhere, the antimeridian and the
    poles included, which averaging degrees does not.
    """
    phi, lmb = math.radians(lat), math.radians(lon)
    return _fixed(math.cos(phi) * math.cos(lmb), math.cos(phi) * math.sin(lmb), math.sin(phi))


def _accumulate(total: List[int], vector: Tuple[int, ...], sign: int) -> None:
    for i, component in enumerate(vector):
        total[i] += sign * component


def _hours_from(clock: Tuple[int, ...], usual: List[int]) -> Optional[float]:
    """Hours (0-12) between a time of day and the direction of a sum of clock vectors.

    None when the sum has no direction (no entries, or times that cancel out).
    """
    if not any(usual):
        return None
    (c, s), (uc, us) = clock, usual
    return math.atan2(abs(c * us - s * uc), c * uc + s * us) / math.pi * 12


def _centroid(total: List[int]) -> Optional[Tuple[float, float]]:
    """(latitude, longitude) of the direction of a sum of Earth vectors, or None."""
    x, y, z = total
    if not (x or y or z):
        return None
    return math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x))


class CardProfile:
    """One card's usual behaviour, and how far a transaction departs from it.

    Fed like CardHistory. The baseline is the card's earlier transactions in
    the last 30 days (same window rule as CardHistory), not exponentially
    decayed running statistics: a value then depends on the last 30 days of
    the stream only, so the risk engine warmed up on a 30-day replay agrees
    with FeatureGen run over the whole history, and no half-life needs tuning.
    Memory: one entry per transaction of the last 30 days, and a tally per
    merchant category and channel among them.
    """

    def __init__(self):
        self._clock = _Clock("card")
        # (timestamp, merchant_category, channel, amount micros, clock vector, Earth vector).
        self._entries: Deque[tuple] = collections.deque()
        self._by_category: Dict[str, List[int]] = {}  # -> [transactions, amount micros]
        self._by_channel: Dict[str, int] = {}
        self._time_of_day = [0, 0]
        self._place = [0, 0, 0]  # of the located card-present transactions only

    def features_for(self, txn: Transaction) -> Dict[str, float]:
        """The profile features of `txn`, from the card's earlier 30 days."""
        self._clock.advance(txn)
        self._advance(txn.timestamp)
        count = len(self._entries)
        if not count:
            return {}
        in_category, category_micros = self._by_category.get(txn.merchant_category, (0, 0))
        out = {
            "merchant_category_share_30d": in_category / count,
            "channel_share_30d": self._by_channel.get(txn.channel, 0) / count,
        }
        if category_micros > 0:
            out["amount_to_category_mean_30d"] = txn.amount * in_category / (category_micros / 1e6)
        hours = _hours_from(_clock_vector(txn.timestamp), self._time_of_day)
        if hours is not None:
            out["hours_from_usual_time"] = hours
        here, usual = _location(txn), _centroid(self._place)
        if here is not None and usual is not None:
            out["distance_from_usual_location_km"] = haversine_km(*usual, *here)
        return out

    def record(self, txn: Transaction) -> None:
        """Adds `txn` to the profile, after its features were taken."""
        self._clock.advance(txn)
        self._advance(txn.timestamp)
        here = _location(txn)
        entry = (txn.timestamp, txn.merchant_category, txn.channel, _micros(txn.amount),
                 _clock_vector(txn.timestamp), None if here is None else _earth_vector(*here))
        self._entries.append(entry)
        self._tally(entry, 1)

    def _advance(self, t: int) -> None:
        entries = self._entries
        while entries and t - entries[0][0] >= PROFILE_WINDOW:
            self._tally(entries.popleft(), -1)

    def _tally(self, entry: tuple, sign: int) -> None:
        _, category, channel, micros, clock, place = entry
        tally = self._by_category.setdefault(category, [0, 0])
        tally[0] += sign
        tally[1] += sign * micros
        if not tally[0]:
            del self._by_category[category]
        self._by_channel[channel] = self._by_channel.get(channel, 0) + sign
        if not self._by_channel[channel]:
            del self._by_channel[channel]
        _accumulate(self._time_of_day, clock, sign)
        if place is not None:
            _accumulate(self._place, place, sign)


class CardState:
    """Everything the features remember of one card: its CardHistory and CardProfile.

    Fed like each of them. They stay two classes because they are two
    feature groups, whose costs the ledger measures apart; `groups` leaves out
    a group no selected feature needs, which is then neither computed nor kept.
    """

    def __init__(self, groups: Iterable[str] = CARD_GROUPS):
        groups = set(groups)
        self.history = CardHistory() if "card_history" in groups else None
        self.profile = CardProfile() if "card_profile" in groups else None
        self._parts = [part for part in (self.history, self.profile) if part is not None]

    def features_for(self, txn: Transaction) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for part in self._parts:
            out.update(part.features_for(txn))
        return out

    def record(self, txn: Transaction) -> None:
        for part in self._parts:
            part.record(txn)


class TerminalHistory:
    """The fraud rates of one terminal, fed in (timestamp, transaction_id) order.

    A recorded transaction's label waits in a heap ordered by `label_known_at`;
    when the stream reaches that time it moves into sorted lists of timestamps
    (all labelled, and frauds), which answer a window count with one bisect.
    Memory: the transactions of the last 30 days plus the labels still pending.
    """

    def __init__(self):
        self._clock = _Clock("terminal")
        self._pending: List[Tuple[int, int, int]] = []  # (known_at, timestamp, is_fraud)
        self._labelled: List[int] = []  # sorted timestamps with a known label
        self._frauds: List[int] = []    # sorted timestamps with a known fraud label

    def features_for(self, txn: Transaction) -> Dict[str, float]:
        """The terminal features of `txn`, from labels known at its timestamp."""
        self._clock.advance(txn)
        t = txn.timestamp
        self._advance(t)
        out = {}
        for name, seconds in TERMINAL_WINDOWS:
            oldest_excluded = t - seconds
            labelled = len(self._labelled) - bisect.bisect_right(self._labelled, oldest_excluded)
            if labelled:
                frauds = len(self._frauds) - bisect.bisect_right(self._frauds, oldest_excluded)
                out[f"terminal_fraud_rate_{name}"] = frauds / labelled
        return out

    def record(self, txn: Transaction) -> None:
        """Adds `txn`; its label, if it carries one with a time, becomes known then."""
        self._clock.advance(txn)
        if txn.is_fraud is not None and txn.label_known_at is not None:
            self.add_label(txn.timestamp, txn.is_fraud, txn.label_known_at)

    def add_label(self, timestamp: int, is_fraud: int, known_at: int) -> None:
        """The label of a recorded transaction at `timestamp`, known from `known_at` on."""
        heapq.heappush(self._pending, (known_at, timestamp, int(bool(is_fraud))))

    def _advance(self, t: int) -> None:
        horizon = t - HORIZON
        while self._pending and self._pending[0][0] <= t:
            _, timestamp, is_fraud = heapq.heappop(self._pending)
            if timestamp > horizon:
                bisect.insort(self._labelled, timestamp)
                if is_fraud:
                    bisect.insort(self._frauds, timestamp)
        for timestamps in (self._labelled, self._frauds):
            expired = bisect.bisect_right(timestamps, horizon)
            if expired:
                del timestamps[:expired]


def transaction_features(txn: Transaction, card: Mapping[str, Any],
                         terminal: Mapping[str, Any]) -> Dict[str, Any]:
    """The full feature dict of a transaction: passthrough, raw, calendar, history.

    The label fields are included only when the transaction carries a label.
    """
    out: Dict[str, Any] = {
        "transaction_id": txn.transaction_id,
        "timestamp": txn.timestamp,
        "card_id": txn.card_id,
        "customer_id": txn.customer_id,
        "terminal_id": txn.terminal_id,
        "amount": txn.amount,
        "merchant_category": txn.merchant_category,
        "channel": txn.channel,
    }
    if txn.is_fraud is not None:
        out[LABEL_KEY] = txn.is_fraud
        out["fraud_scenario"] = txn.fraud_scenario or ""
    out.update(calendar_features(txn.timestamp))
    out.update(card)
    out.update(terminal)
    return out


def sort_key(txn: Transaction) -> Tuple[int, str]:
    """The order in which "earlier" is defined."""
    return txn.timestamp, txn.transaction_id


class OnlineFeatureBuilder:
    """Features of a live transaction stream, equal to FeatureGen's on the same stream.

    Feed every transaction in (timestamp, transaction_id) order:

        feats = builder.features(txn)   # from the history before txn; for scoring
        builder.observe(txn)            # then add txn to the history

    or `builder.update(txn)`, which does both and returns the features.

    Labels: a transaction observed with `is_fraud` and `label_known_at` set
    (a replayed history) has its label counted from `label_known_at` on. A live
    transaction is observed without them; its label arrives later through
    `record_label(transaction_id, is_fraud, known_at)`.

    Memory: per card and terminal, the transactions of the last 30 days plus a
    constant; unlabelled transactions are remembered for labels for 30 days.
    """

    def __init__(self, features: Optional[Iterable[str]] = None):
        # The model features to compute (all by default): a group no selected
        # feature belongs to is not computed, and its state is not kept.
        self.model_features = tuple(MODEL_FEATURES if features is None else features)
        unknown = sorted(set(self.model_features) - set(MODEL_FEATURES))
        if unknown:
            raise ValueError(f"not model features: {unknown}")
        groups = feature_groups(self.model_features)
        self._card_groups = tuple(group for group in CARD_GROUPS if group in groups)
        self._uses_labels = "terminal_history" in groups
        self._keep = (None if features is None
                      else set(PASSTHROUGH_FEATURES) | set(self.model_features))
        self._cards: Dict[str, CardState] = {}
        self._terminals: Dict[str, TerminalHistory] = {}
        # transaction_id -> (terminal_id, timestamp) of observed, unlabelled transactions.
        self._awaiting_label: Dict[str, Tuple[str, int]] = {}
        self._awaiting_order: Deque[Tuple[int, str]] = collections.deque()

    def features(self, txn: Transaction) -> Dict[str, Any]:
        """The feature dict of `txn` (see `transaction_features`), the selected features only.

        Records nothing, but moves the card's and terminal's histories to
        txn's time: a later call with an older transaction is refused.
        """
        card = (self._cards.get(txn.card_id) or CardState(self._card_groups)).features_for(txn)
        terminal = {}
        if self._uses_labels:
            terminal = (self._terminals.get(txn.terminal_id) or TerminalHistory()).features_for(txn)
        out = transaction_features(txn, card, terminal)
        if self._keep is None:
            return out
        return {name: value for name, value in out.items() if name in self._keep}

    def observe(self, txn: Transaction) -> None:
        """Adds `txn` to the card and terminal histories."""
        card = self._cards.get(txn.card_id)
        if card is None:
            card = self._cards[txn.card_id] = CardState(self._card_groups)
        card.record(txn)
        if not self._uses_labels:
            return
        terminal = self._terminals.get(txn.terminal_id)
        if terminal is None:
            terminal = self._terminals[txn.terminal_id] = TerminalHistory()
        terminal.record(txn)
        self._forget_before(txn.timestamp - HORIZON)
        if txn.is_fraud is None or txn.label_known_at is None:
            self._awaiting_label[txn.transaction_id] = (txn.terminal_id, txn.timestamp)
            self._awaiting_order.append((txn.timestamp, txn.transaction_id))

    def update(self, txn: Transaction) -> Dict[str, Any]:
        """`features(txn)` then `observe(txn)`; returns the features."""
        out = self.features(txn)
        self.observe(txn)
        return out

    def record_label(self, transaction_id: str, is_fraud: int, known_at: int) -> bool:
        """The label of an observed transaction, known from `known_at` on.

        Returns False, changing nothing, when the transaction was not observed
        without a label in the last 30 days (a label that can no longer count,
        or a second label for the same transaction), or when no selected
        feature uses labels.
        """
        entry = self._awaiting_label.pop(transaction_id, None)
        if entry is None:
            return False
        terminal_id, timestamp = entry
        self._terminals[terminal_id].add_label(timestamp, is_fraud, known_at)
        return True

    def _forget_before(self, horizon: int) -> None:
        while self._awaiting_order and self._awaiting_order[0][0] <= horizon:
            _, transaction_id = self._awaiting_order.popleft()
            self._awaiting_label.pop(transaction_id, None)


_ONE_BYTE = [bytes((i,)) for i in range(128)]


def _varint(value: int) -> bytes:
    """Protocol-buffer base-128 varint; a negative int64 takes ten bytes."""
    if 0 <= value < 128:
        return _ONE_BYTE[value]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Feature's oneof field of each kind: bytes_list = 1, float_list = 2, int64_list = 3.
_LIST_TAGS = {"string": b"\x0a", "float": b"\x12", "int": b"\x1a"}


@functools.lru_cache(maxsize=4096)
def _entry_prefix(name: str, kind: str, size: int) -> bytes:
    """A Features.feature map entry for `name` up to its one value of `size` encoded bytes.

    Example.features = 1; Features.feature = 1, a map entry of key = 1 and
    value = 2 (a Feature); each XxxList holds its values in field 1.
    """
    key = name.encode("utf-8")
    value_list = b"\x0a" + _varint(size)
    feature = _LIST_TAGS[kind] + _varint(len(value_list) + size) + value_list
    entry = (b"\x0a" + _varint(len(key)) + key
             + b"\x12" + _varint(len(feature) + size) + feature)
    return b"\x0a" + _varint(len(entry) + size) + entry


_PACK_FLOAT32 = struct.Struct("<f").pack
# A float feature's value is always four bytes: its whole entry prefix is fixed.
_FLOAT_PREFIXES = {name: _entry_prefix(name, "float", 4)
                   for name, kind in FEATURE_TYPES.items() if kind == "float"}
# So is an int feature's below 128 (one varint byte): most counts, hours and flags.
_SMALL_INT_PREFIXES = {name: _entry_prefix(name, "int", 1)
                       for name, kind in FEATURE_TYPES.items() if kind == "int"}
_STRING_FEATURES = frozenset(name for name, kind in FEATURE_TYPES.items() if kind == "string")


def _value_error(name: str, value: Any) -> ValueError:
    if value is None:
        return ValueError(f"feature '{name}' is None; leave an undefined feature out")
    return ValueError(f"feature '{name}': {value!r} is not a float32")


def _int_or_bytes(name: str, value: Any) -> Tuple[str, bytes]:
    """(kind, encoded value) of an int or string feature."""
    kind = FEATURE_TYPES.get(name)
    if kind is None:
        raise ValueError(f"unknown feature '{name}'")
    if value is None:
        raise _value_error(name, value)
    if kind == "int":
        return kind, _varint(int(value))
    return kind, value if isinstance(value, bytes) else str(value).encode("utf-8")


def serialize_example(features: Mapping[str, Any]) -> bytes:
    """The serialized tf.train.Example of a feature dict, one value per feature.

    Written directly in the protocol-buffer wire format: building the message
    field by field took three times as long and dominated FeatureGen's run
    time. `to_example` parses this; the tests check it against TensorFlow's
    parser. An absent feature is left out of the dict; None and unknown names
    are errors.
    """
    entries = []
    append = entries.append
    for name, value in features.items():
        prefix = _FLOAT_PREFIXES.get(name)
        if prefix is not None:
            try:
                append(prefix)
                append(_PACK_FLOAT32(value))
            except (OverflowError, struct.error) as err:
                raise _value_error(name, value) from err
        elif type(value) is int and 0 <= value < 128 and name in _SMALL_INT_PREFIXES:
            append(_SMALL_INT_PREFIXES[name])
            append(_ONE_BYTE[value])
        elif type(value) is str and name in _STRING_FEATURES:
            data = value.encode("utf-8")
            append(_entry_prefix(name, "string", len(data)))
            append(data)
        else:
            kind, data = _int_or_bytes(name, value)
            append(_entry_prefix(name, kind, len(data)))
            append(data)
    body = b"".join(entries)
    return b"\x0a" + _varint(len(body)) + body


def to_example(features: Mapping[str, Any]):
    """The tf.train.Example of a feature dict (see `serialize_example`)."""
    from tensorflow.core.example import example_pb2  # pylint: disable=import-outside-toplevel

    return example_pb2.Example.FromString(serialize_example(features))


def from_example(example) -> Dict[str, Any]:
    """The feature dict of a tf.train.Example written by `to_example`."""
    out: Dict[str, Any] = {}
    for name, feature in example.features.feature.items():
        kind = FEATURE_TYPES.get(name)
        if kind == "int":
            out[name] = feature.int64_list.value[0]
        elif kind == "float":
            out[name] = feature.float_list.value[0]
        elif kind == "string":
            out[name] = feature.bytes_list.value[0].decode("utf-8")
        else:
            raise ValueError(f"unknown feature '{name}'")
    return out

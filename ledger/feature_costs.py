"""What each model feature costs to compute and to send, per transaction.

Features are computed in groups (components/features.FEATURE_GROUPS: a card's
windows are one pass over its history), so a group is what is timed, and its
cost is shared equally by its features:

- online: microseconds per transaction in the online driver's steps over a
  fixed stream, each group timed on its own (the risk engine's cost);
- batch: the group's share of FeatureGen's CPU, from a profile of the Beam
  batch driver on the same stream (what the rest of FeatureGen's CPU does -
  reading, shuffling, writing - is shared by every feature);
- request bytes: what the feature adds to the serialized tf.Example a client
  sends to serving_default.
"""
import collections
import cProfile
import dataclasses
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
from typing import Dict, List, Sequence

from components import features
from components.feature_gen import executor
from components.feature_gen.raw_data import list_partitions, read_transactions
from components.transactions import Transaction

# The functions that compute each group, in both drivers.
_GROUP_FUNCTIONS = {
    "calendar": (features.calendar_features,),
    "card_history": (features.CardHistory.features_for, features.CardHistory.record),
    "card_profile": (features.CardProfile.features_for, features.CardProfile.record),
    "terminal_history": (features.TerminalHistory.features_for, features.TerminalHistory.record,
                         features.TerminalHistory.add_label),
}


def _profile_key(function) -> tuple:
    code = function.__code__
    return code.co_filename, code.co_firstlineno, code.co_name


@dataclasses.dataclass
class FeatureCost:
    name: str
    group: str
    cost_us_per_txn: float
    batch_cpu_share: float
    request_bytes: float


def online_group_microseconds(stream: Sequence[Transaction]) -> Dict[str, float]:
    """Microseconds per transaction of each group, the online driver's steps timed one by one.

    The stream is replayed as OnlineFeatureBuilder replays it (features from the
    history before each transaction, then the transaction recorded); the cost
    of reading the clock is measured and taken off each reading.
    """
    cards = collections.defaultdict(features.CardState)
    terminals = collections.defaultdict(features.TerminalHistory)
    spent = dict.fromkeys(features.FEATURE_GROUPS, 0)
    clock = time.perf_counter_ns
    for txn in sorted(stream, key=features.sort_key):
        state = cards[txn.card_id]
        t0 = clock()
        card = state.history.features_for(txn)
        state.history.record(txn)
        t1 = clock()
        card.update(state.profile.features_for(txn))
        state.profile.record(txn)
        t2 = clock()
        terminal = terminals[txn.terminal_id].features_for(txn)
        terminals[txn.terminal_id].record(txn)
        t3 = clock()
        features.calendar_features(txn.timestamp)
        t4 = clock()
        features.transaction_features(txn, card, terminal)
        t5 = clock()
        spent["card_history"] += t1 - t0
        spent["card_profile"] += t2 - t1
        spent["terminal_history"] += t3 - t2
        spent["calendar"] += t4 - t3
        # Assembling the dict also takes the calendar features once more.
        spent["transaction"] += max(0, (t5 - t4) - (t4 - t3))
    overhead = _clock_overhead_ns(clock)
    return {group: max(0.0, total / len(stream) - overhead) / 1000
            for group, total in spent.items()}


def _clock_overhead_ns(clock, samples: int = 20000) -> float:
    started = clock()
    for _ in range(samples):
        clock()
    return (clock() - started) / samples


def batch_group_shares(partitions: Sequence[str]) -> Dict[str, float]:
    """Each group's share of the CPU of FeatureGen's Beam pipeline over the given days."""
    profiles = _ThreadProfiles()
    with tempfile.TemporaryDirectory(prefix="riskpipe-featuregen-") as work:
        input_base = os.path.join(work, "raw")
        os.makedirs(input_base)
        for path in partitions:  # the days' files, where FeatureGen looks for them
            day = os.path.join(input_base, os.path.basename(os.path.dirname(path)))
            os.makedirs(day)
            shutil.copyfile(path, os.path.join(day, os.path.basename(path)))
        with profiles:
            executor.featurize(input_base, os.path.join(work, "out"), eval_days=1)
    stats = profiles.stats()
    cumulative = {key: entry[3] for key, entry in stats.stats.items()}
    shares = {group: sum(cumulative.get(_profile_key(f), 0.0) for f in functions) / stats.total_tt
              for group, functions in _GROUP_FUNCTIONS.items()}
    shares["transaction"] = 0.0  # raw fields are copied, not computed
    return shares


class _ThreadProfiles:
    """cProfile of every thread started while installed, by CPU time (Beam runs DoFns on its own)."""

    def __init__(self):
        self._profiles: List[cProfile.Profile] = []

    def _start(self, *_):
        sys.setprofile(None)
        profile = cProfile.Profile(time.thread_time)
        self._profiles.append(profile)
        profile.enable()

    def __enter__(self):
        threading.setprofile(self._start)
        self._start()

    def __exit__(self, *exc):
        threading.setprofile(None)
        self._profiles[0].disable()

    def stats(self) -> pstats.Stats:
        return pstats.Stats(*self._profiles)


def request_bytes(stream_features: Sequence[Dict]) -> Dict[str, float]:
    """Mean bytes each model feature adds to a serialized tf.Example."""
    added = dict.fromkeys(features.MODEL_FEATURES, 0)
    for row in stream_features:
        present = {k: v for k, v in row.items() if k in features.MODEL_FEATURES and v is not None}
        whole = len(features.serialize_example(present))
        for name in present:
            without = {k: v for k, v in present.items() if k != name}
            added[name] += whole - len(features.serialize_example(without))
    return {name: total / len(stream_features) for name, total in added.items()}


def feature_costs(input_base: str, min_transactions: int) -> List[FeatureCost]:
    """The online, batch and request cost of every model feature.

    Measured over the first days of the raw data that hold at least
    `min_transactions` transactions (and at least two days, for FeatureGen's split).
    """
    partitions = first_partitions(input_base, min_transactions)
    stream = sorted((txn for path in partitions for txn in read_transactions(path)),
                    key=features.sort_key)
    online = online_group_microseconds(stream)
    batch = batch_group_shares(partitions)
    builder = features.OnlineFeatureBuilder()
    sizes = request_bytes([builder.update(txn) for txn in stream])
    costs = []
    for group, names in features.FEATURE_GROUPS.items():
        for name in names:
            costs.append(FeatureCost(name, group, online[group] / len(names),
                                     batch[group] / len(names), sizes[name]))
    return costs


def first_partitions(input_base: str, min_transactions: int) -> List[str]:
    """The CSV files of the first days holding at least `min_transactions` rows (two days at least)."""
    chosen, rows = [], 0
    for _, path in list_partitions(input_base):
        chosen.append(path)
        with open(path, "rb") as f:
            rows += sum(1 for _ in f) - 1
        if rows >= min_transactions and len(chosen) >= 2:
            break
    return chosen

"""Small synthetic raw-transaction streams in the partition layout, for FeatureGen's tests.

Timestamps fall on a coarse grid so that a stream is rich in the edge cases the
features must get right: equal timestamps on one card or terminal, labels
known exactly at a later transaction's timestamp, card-not-present
transactions between card-present ones.
"""
import collections
import csv
import datetime
import os
import random
from typing import Iterable, List

from components.transactions import (MERCHANT_CATEGORIES, PARTITION_FORMAT, RAW_COLUMNS,
                                     Transaction)

GRID_SECONDS = 600
START = 1_700_006_400  # 2023-11-15 00:00:00 UTC


def random_stream(n: int, days: int = 20, cards: int = 40, terminals: int = 15,
                  seed: int = 7) -> List[Transaction]:
    """`n` transactions over `days` days, in (timestamp, transaction_id) order."""
    rng = random.Random(seed)
    places = [(rng.uniform(40.0, 52.0), rng.uniform(-5.0, 15.0)) for _ in range(terminals)]
    risky = set(rng.sample(range(terminals), max(1, terminals // 4)))
    slots = days * 86400 // GRID_SECONDS
    txns = []
    for i in range(n):
        card = rng.randrange(cards)
        terminal = rng.randrange(terminals)
        timestamp = START + rng.randrange(slots) * GRID_SECONDS
        present = rng.random() < 0.6
        lat, lon = places[terminal] if present else (None, None)
        fraud = int(rng.random() < (0.3 if terminal in risky else 0.03))
        delay = rng.choice((0, 1, 6, 36, 144, 1008)) * GRID_SECONDS
        txns.append(Transaction(
            transaction_id=f"t{i:06d}",
            timestamp=timestamp,
            card_id=f"c{card:03d}",
            customer_id=f"u{card // 2:03d}",
            terminal_id=f"m{terminal:03d}",
            amount=round(rng.lognormvariate(3.0, 1.0), 2) if rng.random() > 0.02 else 0.0,
            merchant_category=rng.choice(MERCHANT_CATEGORIES),
            channel="card_present" if present else "card_not_present",
            latitude=lat,
            longitude=lon,
            is_fraud=fraud,
            fraud_scenario="compromised_terminal" if fraud else "",
            label_known_at=timestamp + delay,
        ))
    return sorted(txns, key=lambda t: (t.timestamp, t.transaction_id))


def _cell(value) -> str:
    return "" if value is None else str(value)


def write_partitions(transactions: Iterable[Transaction], input_base: str) -> List[str]:
    """Writes `<input_base>/date=YYYY-MM-DD/transactions.csv` files; returns their paths."""
    by_day = collections.defaultdict(list)
    for txn in transactions:
        day = datetime.datetime.fromtimestamp(txn.timestamp, datetime.timezone.utc).date()
        by_day[day.isoformat()].append(txn)
    paths = []
    for day, rows in sorted(by_day.items()):
        path = os.path.join(input_base, PARTITION_FORMAT.format(date=day))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(RAW_COLUMNS)
            for txn in rows:
                writer.writerow([_cell(getattr(txn, name)) for name in RAW_COLUMNS])
        paths.append(path)
    return paths

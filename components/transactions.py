"""The raw-transaction contract: the columns a bank maps its own export onto.

The simulator writes these columns, FeatureGen and the risk engine read them.
Times are integer Unix seconds (UTC). `latitude`/`longitude` are empty for
card-not-present transactions. `is_fraud`, `fraud_scenario` and
`label_known_at` are labels, known only later; they never feed a model input.
"""
from typing import NamedTuple, Optional

# Column name -> Python type of its values, in file order.
RAW_COLUMNS = {
    "transaction_id": str,
    "timestamp": int,
    "card_id": str,
    "customer_id": str,
    "terminal_id": str,
    "amount": float,
    "merchant_category": str,
    "channel": str,
    "latitude": float,
    "longitude": float,
    "is_fraud": int,
    "fraud_scenario": str,
    "label_known_at": int,
}

# Columns that may be empty in a row.
OPTIONAL_COLUMNS = frozenset({"latitude", "longitude", "fraud_scenario"})
# The label columns: known only later, so a transaction scored online lacks them.
LABEL_COLUMNS = ("is_fraud", "fraud_scenario", "label_known_at")

MERCHANT_CATEGORIES = (
    "grocery", "fuel", "restaurant", "online", "travel", "electronics", "atm", "luxury",
)
CHANNELS = ("card_present", "card_not_present")
FRAUD_SCENARIOS = (
    "compromised_terminal", "compromised_card", "impossible_travel", "probing",
    "account_takeover",
)

# Raw data layout: one CSV per day, a Hive-style date partition.
PARTITION_GLOB = "date=*/transactions.csv"
PARTITION_FORMAT = "date={date}/transactions.csv"  # date as YYYY-MM-DD


class Transaction(NamedTuple):
    """One raw transaction, as parsed from a row of the contract.

    A named tuple rather than a dataclass: FeatureGen builds one per row at
    each of its steps, and a tuple is built six times faster and crosses Beam's
    shuffles as its plain fields (`tuple(txn)`).
    """

    transaction_id: str
    timestamp: int
    card_id: str
    customer_id: str
    terminal_id: str
    amount: float
    merchant_category: str
    channel: str
    latitude: Optional[float] = None
    longitude: Optional[float] = None
    is_fraud: Optional[int] = None
    fraud_scenario: str = ""
    label_known_at: Optional[int] = None

    @property
    def card_present(self) -> bool:
        return self.channel == "card_present"

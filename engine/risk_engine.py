"""The risk engine: one transaction -> online features -> route -> score -> policy -> record.

Transactions must come in (timestamp, transaction_id) order, the order in which
FeatureGen defines "earlier", so the features sent to the model equal the
features it was trained on. A transaction that gets no score (every attempt
failed) still gets a decision, by the rules and the policy's `on_model_error`,
and its record carries the error: nothing is dropped silently.

A record is a flat dict, written as one JSON line or one CSV row; `summarize`
turns records into per-model-version figures for `riskpipe score` and
`riskpipe rollout status`.
"""
import dataclasses
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional

from common.serving_contract import SERVING_RAW
from components.features import MODEL_FEATURES, OnlineFeatureBuilder
from components.transactions import Transaction
from engine.client import RiskEngineClient, ScoringError
from engine.policy import APPROVE, ACTIONS, Facts, Policy, card_age_days
from engine.routing import CANARY, STABLE, Router, other_label

UNSCORED = "unscored"  # the version key of records that got no score

# Record fields in output order (the CSV header).
RECORD_FIELDS = (
    "transaction_id", "timestamp", "card_id", "decision", "score", "model_version",
    "version_label", "rules_fired", "reasons", "error", "latency_ms", "grpc_ms", "attempts",
    "server", "is_fraud", "shadow_label", "shadow_model_version", "shadow_score",
    "shadow_decision", "shadow_agrees", "shadow_error",
)


# The features the policy's rules read (Facts): computed whatever the models take.
POLICY_FEATURES = ("speed_from_prev_kmh",)


def served_features(client: RiskEngineClient, router: Router) -> List[str]:
    """The model features the routed versions take (their serving_raw inputs) and the policy reads.

    The engine computes these and no others: a feature a bank excluded from
    its model (`features.exclude`) costs nothing online. Read once, at start:
    a canary that takes a feature outside this set needs an engine restart.
    Every feature when a version cannot tell (not loaded yet, no serving_raw):
    its transactions then get the model's error and the policy's decision,
    as they would have anyway.
    """
    routing = router.current()
    labels = ([None] if router.path is None
              else [STABLE, CANARY] if routing.has_canary else [STABLE])
    needed = set(POLICY_FEATURES)
    for label in labels:
        try:
            _, signatures = client.signature_defs(label=label)
            needed.update(signatures[SERVING_RAW].inputs)
        except (ScoringError, KeyError):  # not loaded yet, or no serving_raw
            return list(MODEL_FEATURES)
    return [name for name in MODEL_FEATURES if name in needed]


class RiskEngine:
    """Scores a time-ordered transaction stream; holds the online feature state."""

    def __init__(self, client: RiskEngineClient, policy: Policy, router: Router,
                 shadow: bool = False, features: Optional[OnlineFeatureBuilder] = None):
        self.client = client
        self.policy = policy
        self.router = router
        # Shadow every transaction even when the routing file does not ask for it.
        self.force_shadow = shadow
        self.features = features or OnlineFeatureBuilder()
        # card_id -> timestamp of the card's first transaction seen (its age for the rules).
        self._first_seen: Dict[str, int] = {}

    def facts(self, txn: Transaction, feats: Mapping[str, Any]) -> Facts:
        first = self._first_seen.setdefault(txn.card_id, txn.timestamp)
        return Facts(amount=txn.amount, merchant_category=txn.merchant_category,
                     card_age_days=card_age_days(first, txn.timestamp),
                     speed_kmh=feats.get("speed_from_prev_kmh"))

    def observe(self, txn: Transaction) -> None:
        """Adds a past transaction to the online state (features, card age) without scoring."""
        self.features.observe(txn)
        self._first_seen.setdefault(txn.card_id, txn.timestamp)

    def score(self, txn: Transaction) -> Dict[str, Any]:
        """The decision record of one transaction (its features then join the history)."""
        start = time.perf_counter()
        feats = self.features.features(txn)
        self.features.observe(txn)
        facts = self.facts(txn, feats)
        routing = self.router.current()
        label = self.router.label_for(txn.card_id)
        record = self._decide(txn, feats, facts, label)
        if label is not None and routing.has_canary and (routing.shadow or self.force_shadow):
            self._shadow(record, feats, facts, other_label(label))
        record["latency_ms"] = (time.perf_counter() - start) * 1e3
        return record

    def _decide(self, txn: Transaction, feats, facts: Facts, label: Optional[str]) -> Dict:
        record = {name: None for name in RECORD_FIELDS}
        record.update(transaction_id=txn.transaction_id, timestamp=txn.timestamp,
                      card_id=txn.card_id, version_label=label, is_fraud=txn.is_fraud,
                      error="")
        try:
            result = self.client.predict(feats, label=label)
        except ScoringError as err:
            decision = self.policy.decide(facts, None, None, model_error=str(err))
            record["error"] = f"{err.code}: {err}"
        else:
            decision = self.policy.decide(facts, result.score, result.model_version)
            record.update(grpc_ms=result.latency_seconds * 1e3, attempts=result.attempts,
                          server=result.address)
        record.update(decision=decision.action, score=decision.score,
                      model_version=decision.model_version,
                      rules_fired=list(decision.rules_fired), reasons=list(decision.reasons))
        return record

    def _shadow(self, record: Dict, feats, facts: Facts, label: str) -> None:
        """Scores on the other label too and records whether it would decide the same."""
        record["shadow_label"] = label
        try:
            result = self.client.predict(feats, label=label)
        except ScoringError as err:
            record["shadow_error"] = f"{err.code}: {err}"
            return
        shadow = self.policy.decide(facts, result.score, result.model_version)
        record.update(shadow_model_version=result.model_version, shadow_score=result.score,
                      shadow_decision=shadow.action,
                      shadow_agrees=shadow.action == record["decision"])

# --- summaries ---------------------------------------------------------------------------


def percentile(values: List[float], q: float) -> Optional[float]:
    """The q-th percentile (0..100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(min(rank, len(ordered))) - 1]


@dataclasses.dataclass
class VersionSummary:
    """The figures of the records scored by one model version."""

    requests: int = 0
    decisions: Dict[str, int] = dataclasses.field(
        default_factory=lambda: {action: 0 for action in ACTIONS})
    labelled: int = 0
    frauds: int = 0
    fraud_caught: int = 0      # a fraud decided REVIEW or BLOCK
    fraud_missed: int = 0      # a fraud decided APPROVE
    legit_flagged: int = 0     # a legitimate transaction decided REVIEW or BLOCK
    errors: int = 0
    latencies_ms: List[float] = dataclasses.field(default_factory=list)
    grpc_ms: List[float] = dataclasses.field(default_factory=list)
    scores: List[float] = dataclasses.field(default_factory=list)
    shadow_compared: int = 0
    shadow_agreed: int = 0

    def add(self, record: Mapping[str, Any]) -> None:
        self.requests += 1
        self.decisions[record["decision"]] = self.decisions.get(record["decision"], 0) + 1
        if record.get("error"):
            self.errors += 1
        if record.get("latency_ms") is not None:
            self.latencies_ms.append(float(record["latency_ms"]))
        if record.get("grpc_ms") is not None:
            self.grpc_ms.append(float(record["grpc_ms"]))
        if record.get("score") is not None:
            self.scores.append(float(record["score"]))
        if record.get("shadow_agrees") is not None:
            self.shadow_compared += 1
            self.shadow_agreed += bool(record["shadow_agrees"])
        if record.get("is_fraud") is None:
            return
        self.labelled += 1
        flagged = record["decision"] != APPROVE
        if int(record["is_fraud"]):
            self.frauds += 1
            self.fraud_caught += flagged
            self.fraud_missed += not flagged
        else:
            self.legit_flagged += flagged

    def figures(self) -> Dict[str, Any]:
        legit = self.labelled - self.frauds
        return {
            "requests": self.requests,
            "decisions": dict(self.decisions),
            "errors": self.errors,
            "labelled": self.labelled,
            "fraud_caught": self.fraud_caught,
            "fraud_missed": self.fraud_missed,
            "false_positive_rate": self.legit_flagged / legit if legit else None,
            "latency_ms_p50": percentile(self.latencies_ms, 50),
            "latency_ms_p99": percentile(self.latencies_ms, 99),
            "grpc_ms_p50": percentile(self.grpc_ms, 50),
            "grpc_ms_p99": percentile(self.grpc_ms, 99),
            "score_p50": percentile(self.scores, 50),
            "score_p90": percentile(self.scores, 90),
            "score_p99": percentile(self.scores, 99),
            "score_mean": sum(self.scores) / len(self.scores) if self.scores else None,
            "shadow_compared": self.shadow_compared,
            "shadow_agreement": (self.shadow_agreed / self.shadow_compared
                                 if self.shadow_compared else None),
        }


def summarize(records: Iterable[Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Model version (as text, or 'unscored') -> its figures; plus 'all'."""
    by_version: Dict[str, VersionSummary] = {}
    overall = VersionSummary()
    for record in records:
        version = record.get("model_version")
        key = UNSCORED if version is None else str(version)
        by_version.setdefault(key, VersionSummary()).add(record)
        overall.add(record)
    out = {key: summary.figures() for key, summary in sorted(by_version.items())}
    out["all"] = overall.figures()
    return out

"""RiskEngine: shadow comparison, card age for the rules, and errors kept on the record."""
import grpc

from components.transactions import Transaction
from engine_helpers import RecordingPredictionService, start_recording_server
from engine.client import ClientOptions, RiskEngineClient
from engine.policy import parse_policy
from engine.risk_engine import RiskEngine, summarize
from engine.routing import CANARY, STABLE, ModelRouting, Router, write_model_routing

POLICY = parse_policy({
    "thresholds": {"review": 0.5, "block": 0.9},
    "rules": [{"name": "new_card_large_amount", "type": "new_card_amount",
               "amount_above": 1000, "card_age_under_days": 7, "action": "REVIEW"}],
})
DAY = 86400


def txn(i, card="c1", amount=20.0, timestamp=None):
    return Transaction(transaction_id=f"t{i}", timestamp=timestamp or 1_700_000_000 + i * 60,
                       card_id=card, customer_id="u1", terminal_id="m1", amount=amount,
                       merchant_category="grocery", channel="card_not_present")


def engine_on(service, routing_path=None, shadow=False):
    server, address = start_recording_server(service)
    client = RiskEngineClient(ClientOptions(addresses=(address,), max_attempts=1))
    engine = RiskEngine(client, POLICY, Router("fraud", routing_path, refresh_seconds=0.0),
                        shadow=shadow)
    return engine, lambda: (client.close(), server.stop(grace=None))


def by_label(stable_score, canary_score):
    return lambda request: (canary_score if request.model_spec.version_label == CANARY
                            else stable_score)


def test_shadow_mode_records_disagreements(tmp_path):
    routing = str(tmp_path / "r.json")
    write_model_routing(routing, "fraud", ModelRouting(canary_version=2, canary_share=0.0,
                                                       shadow=True))
    service = RecordingPredictionService(score_for=by_label(0.1, 0.95))
    engine, stop = engine_on(service, routing)
    try:
        records = [engine.score(txn(i, card=f"c{i}")) for i in range(20)]
    finally:
        stop()
    assert len(service.requests) == 40  # every transaction on both labels
    for record in records:
        assert record["version_label"] == STABLE and record["decision"] == "APPROVE"
        assert record["shadow_label"] == CANARY and record["shadow_decision"] == "BLOCK"
        assert record["shadow_agrees"] is False and record["shadow_score"] > 0.9
    summary = summarize(records)["all"]
    assert summary["shadow_compared"] == 20 and summary["shadow_agreement"] == 0.0


def test_shadow_failure_is_kept_apart_from_the_decision(tmp_path):
    routing = str(tmp_path / "r.json")
    write_model_routing(routing, "fraud", ModelRouting(canary_version=2, canary_share=0.0))

    def canary_down(request):
        if request.model_spec.version_label == CANARY:
            return grpc.StatusCode.NOT_FOUND, "Servable not found"
        return None

    engine, stop = engine_on(RecordingPredictionService(fail_when=canary_down), routing,
                             shadow=True)
    try:
        record = engine.score(txn(1))
    finally:
        stop()
    assert record["error"] == "" and record["score"] is not None
    assert record["shadow_error"].startswith("NOT_FOUND")
    assert record["shadow_agrees"] is None


def test_card_age_counts_from_the_first_transaction_seen():
    engine, stop = engine_on(RecordingPredictionService(score_for=lambda r: 0.1))
    try:
        first = engine.score(txn(1, amount=5000, timestamp=1_700_000_000))
        week_later = engine.score(txn(2, amount=5000, timestamp=1_700_000_000 + 7 * DAY))
        other_card = engine.score(txn(3, card="c2", amount=5000,
                                      timestamp=1_700_000_000 + 7 * DAY + 1))
    finally:
        stop()
    assert first["rules_fired"] == ["new_card_large_amount"] and first["decision"] == "REVIEW"
    assert week_later["rules_fired"] == [] and week_later["decision"] == "APPROVE"
    assert other_card["rules_fired"] == ["new_card_large_amount"]


def test_history_makes_a_card_old_without_scoring_it():
    service = RecordingPredictionService(score_for=lambda r: 0.1)
    engine, stop = engine_on(service)
    try:
        engine.observe(txn(1, timestamp=1_700_000_000))
        record = engine.score(txn(2, amount=5000, timestamp=1_700_000_000 + 30 * DAY))
    finally:
        stop()
    assert len(service.requests) == 1
    assert record["rules_fired"] == []

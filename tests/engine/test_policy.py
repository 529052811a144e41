"""The decision policy: rules, thresholds, exact boundaries, and validation messages."""
import pytest

from engine.policy import (APPROVE, BLOCK, REVIEW, Facts, PolicyError, default_policy_path,
                            load_policy, parse_policy)

POLICY = {
    "thresholds": {"review": 0.5, "block": 0.9},
    "on_model_error": "REVIEW",
    "rules": [
        {"name": "blocked_category", "type": "merchant_category",
         "categories": ["gambling"], "action": "BLOCK"},
        {"name": "new_card_large_amount", "type": "new_card_amount",
         "amount_above": 1000, "card_age_under_days": 7, "action": "REVIEW"},
        {"name": "impossible_travel", "type": "travel_speed",
         "speed_above_kmh": 1000, "action": "BLOCK"},
    ],
}


@pytest.fixture(name="policy")
def fixture_policy():
    return parse_policy(POLICY)


def facts(amount=50.0, category="grocery", age_days=100.0, speed=None):
    return Facts(amount=amount, merchant_category=category, card_age_days=age_days,
                 speed_kmh=speed)


@pytest.mark.parametrize("score, expected", [
    (0.0, APPROVE),
    (0.4999999, APPROVE),
    (0.5, REVIEW),          # exactly at the review threshold
    (0.8999999, REVIEW),
    (0.9, BLOCK),           # exactly at the block threshold
    (1.0, BLOCK),
])
def test_score_thresholds_at_and_around_each_boundary(policy, score, expected):
    decision = policy.decide(facts(), score, 7)
    assert decision.action == expected
    assert decision.rules_fired == ()
    assert decision.score == score
    assert decision.model_version == 7


@pytest.mark.parametrize("amount, age_days, fires", [
    (1000.0, 1.0, False),       # amount exactly at the limit is not above it
    (1000.01, 1.0, True),
    (1000.01, 7.0, False),      # a card exactly 7 days old is not under 7 days
    (1000.01, 6.999, True),
    (5000.0, 0.0, True),        # the card's first transaction
])
def test_new_card_amount_rule_boundaries(policy, amount, age_days, fires):
    decision = policy.decide(facts(amount=amount, age_days=age_days), 0.1, 1)
    assert ("new_card_large_amount" in decision.rules_fired) is fires
    assert decision.action == (REVIEW if fires else APPROVE)


@pytest.mark.parametrize("speed, fires", [
    (None, False),              # no previous located transaction: nothing to judge
    (999.9, False),
    (1000.0, False),            # exactly at the limit
    (1000.1, True),
])
def test_travel_speed_rule_boundaries(policy, speed, fires):
    decision = policy.decide(facts(speed=speed), 0.1, 1)
    assert ("impossible_travel" in decision.rules_fired) is fires
    assert decision.action == (BLOCK if fires else APPROVE)


def test_blocked_category_blocks_whatever_the_score(policy):
    decision = policy.decide(facts(category="gambling"), 0.0, 3)
    assert decision.action == BLOCK
    assert decision.rules_fired == ("blocked_category",)
    assert decision.reasons[0].startswith("rule blocked_category:")
    assert "model version 3" in decision.reasons[-1]


def test_decision_is_the_most_severe_of_rules_and_score(policy):
    # A REVIEW rule does not soften a BLOCK score ...
    high = policy.decide(facts(amount=2000, age_days=0), 0.95, 2)
    assert high.action == BLOCK and high.rules_fired == ("new_card_large_amount",)
    # ... and a low score does not soften a REVIEW rule.
    low = policy.decide(facts(amount=2000, age_days=0), 0.01, 2)
    assert low.action == REVIEW


def test_all_fired_rules_are_reported_in_policy_order(policy):
    decision = policy.decide(facts(amount=2000, category="gambling", age_days=0, speed=5000),
                             0.2, 4)
    assert decision.rules_fired == ("blocked_category", "new_card_large_amount",
                                    "impossible_travel")
    assert len(decision.reasons) == 4  # three rules and the score


def test_without_a_score_the_policy_falls_back_and_says_why(policy):
    decision = policy.decide(facts(), None, None, model_error="UNAVAILABLE: down")
    assert decision.action == REVIEW
    assert decision.score is None and decision.model_version is None
    assert "UNAVAILABLE: down" in decision.reasons[-1]
    # Rules still decide when they are more severe than the fallback.
    assert policy.decide(facts(category="gambling"), None, None).action == BLOCK


def test_review_equal_to_block_threshold_blocks_at_it():
    policy = parse_policy({"thresholds": {"review": 0.7, "block": 0.7}})
    assert policy.decide(facts(), 0.7, 1).action == BLOCK
    assert policy.decide(facts(), 0.69, 1).action == APPROVE


def test_default_policy_file_loads():
    policy = load_policy(default_policy_path())
    assert policy.thresholds.review <= policy.thresholds.block
    assert {rule.name for rule in policy.rules} >= {"new_card_large_amount",
                                                    "impossible_travel"}


@pytest.mark.parametrize("change, field", [
    ({"thresholds": {"review": 0.5}}, "thresholds.block"),
    ({"thresholds": {"review": 0.95, "block": 0.9}}, "thresholds.review"),
    ({"thresholds": {"review": "high", "block": 0.9}}, "thresholds.review"),
    ({"thresholds": {"review": 0.5, "block": 1.5}}, "thresholds.block"),
    ({"on_model_error": "MAYBE"}, "on_model_error"),
    ({"rules": [{"name": "x", "type": "teleport", "action": "BLOCK"}]}, "rules[0].type"),
    ({"rules": [{"name": "x", "type": "travel_speed", "action": "BLOCK"}]},
     "rules[0].speed_above_kmh"),
    ({"rules": [{"name": "x", "type": "travel_speed", "speed_above_kmh": 900,
                 "action": "APPROVE"}]}, "rules[0].action"),
    ({"rules": [{"name": "x", "type": "merchant_category", "categories": [],
                 "action": "BLOCK"}]}, "rules[0].categories"),
    ({"rules": [{"name": "x", "type": "amount", "amount_above": 1, "action": "BLOCK",
                 "limit": 3}]}, "rules[0].limit"),
    ({"rules": [{"name": "x", "type": "amount", "amount_above": 1, "action": "BLOCK"},
                {"name": "x", "type": "amount", "amount_above": 2, "action": "REVIEW"}]},
     "rules[1].name"),
    ({"thresholds_typo": {}}, "thresholds_typo"),
])
def test_invalid_policy_names_the_field(change, field):
    data = {**POLICY, **change}
    with pytest.raises(PolicyError, match=rf"^mypolicy\.{_escape(field)}"):
        parse_policy(data, where="mypolicy")


def _escape(text):
    return text.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")


def test_unreadable_and_malformed_files_are_named(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy file .*missing.yaml"):
        load_policy(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds: [unclosed\n")
    with pytest.raises(PolicyError, match="bad.yaml is not valid YAML"):
        load_policy(str(bad))
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(PolicyError, match="scalar.yaml: expected a mapping"):
        load_policy(str(scalar))

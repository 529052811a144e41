"""Canary routing: stable per card, close to the configured share, driven by the routing file."""
import json
import os
import subprocess
import sys

import pytest

from engine.routing import (CANARY, NO_CANARY, STABLE, ModelRouting, Router, RoutingError,
                             canary_bucket, read_routing, route, write_model_routing)

CARDS = [f"card-{i:05d}" for i in range(20000)]


def test_same_card_always_takes_the_same_route():
    assert [route(c, 0.3) for c in CARDS[:500]] == [route(c, 0.3) for c in CARDS[:500]]


def test_bucket_is_the_same_in_another_process():
    # Python's hash() is salted per process; the routing hash must not be.
    code = ("from engine.routing import canary_bucket;"
            "print(repr([canary_bucket(c) for c in ('a', 'card-1', 'é')]))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONHASHSEED": "random"}).stdout
    assert out.strip() == repr([canary_bucket(c) for c in ("a", "card-1", "é")])


@pytest.mark.parametrize("share", [0.01, 0.1, 0.5, 0.9])
def test_canary_share_of_cards_is_close_to_the_configured_share(share):
    observed = sum(route(c, share) == CANARY for c in CARDS) / len(CARDS)
    # Binomial standard error at n=20000 is at most 0.0036; allow ~4 sigma.
    assert abs(observed - share) < 0.015


def test_share_zero_and_one_are_exact():
    assert all(route(c, 0.0) == STABLE for c in CARDS[:2000])
    assert all(route(c, 1.0) == CANARY for c in CARDS[:2000])


def test_raising_the_share_only_moves_cards_from_stable_to_canary():
    at_10 = {c for c in CARDS if route(c, 0.1) == CANARY}
    at_30 = {c for c in CARDS if route(c, 0.3) == CANARY}
    assert at_10 <= at_30


def test_model_routing_without_canary_sends_everything_to_stable():
    state = ModelRouting(canary_version=None, canary_share=0.0)
    assert {state.label_for(c) for c in CARDS[:1000]} == {STABLE}


def test_routing_file_round_trip_keeps_other_models(tmp_path):
    path = str(tmp_path / "models.config.routing.json")
    write_model_routing(path, "fraud", ModelRouting(canary_version=17, canary_share=0.2,
                                                    shadow=True))
    write_model_routing(path, "credit", ModelRouting(canary_version=3, canary_share=0.05))
    assert read_routing(path) == {
        "fraud": ModelRouting(17, 0.2, True),
        "credit": ModelRouting(3, 0.05, False),
    }
    write_model_routing(path, "fraud", NO_CANARY)
    assert read_routing(path) == {"credit": ModelRouting(3, 0.05, False)}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_absent_routing_file_means_no_canary(tmp_path):
    assert read_routing(str(tmp_path / "none.json")) == {}


@pytest.mark.parametrize("body, field", [
    ({"format": 2, "models": {}}, "format"),
    ({"format": 1, "models": {"fraud": {"canary_share": 1.5, "canary_version": 2}}},
     "models.fraud.canary_share"),
    ({"format": 1, "models": {"fraud": {"canary_share": 0.1}}}, "models.fraud"),
    ({"format": 1, "models": {"fraud": {"canary_version": "2"}}},
     "models.fraud.canary_version"),
    ({"format": 1, "models": {"fraud": {"canary_version": 2, "sharee": 0.1}}},
     "models.fraud.sharee"),
])
def test_invalid_routing_file_names_the_field(tmp_path, body, field):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(body))
    with pytest.raises(RoutingError, match=f"r.json: {field}"):
        read_routing(str(path))


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_router_picks_up_a_new_share_after_its_refresh_interval(tmp_path):
    path = str(tmp_path / "r.json")
    clock = FakeClock()
    router = Router("fraud", path, refresh_seconds=1.0, clock=clock)
    assert router.current() == NO_CANARY
    write_model_routing(path, "fraud", ModelRouting(canary_version=5, canary_share=1.0))
    clock.now = 0.5
    assert router.current() == NO_CANARY  # not re-checked yet
    clock.now = 1.0
    assert router.current().canary_share == 1.0
    assert router.label_for("any-card") == CANARY


def test_router_keeps_the_last_good_state_when_the_file_turns_bad(tmp_path):
    path = tmp_path / "r.json"
    write_model_routing(str(path), "fraud", ModelRouting(canary_version=5, canary_share=0.25))
    clock = FakeClock()
    router = Router("fraud", str(path), refresh_seconds=0.0, clock=clock)
    path.write_text("{not json")
    clock.now = 1.0
    assert router.current() == ModelRouting(5, 0.25, False)
    assert "not valid JSON" in router.last_error


def test_router_without_a_file_sends_no_label():
    router = Router("fraud", None)
    assert router.label_for("card-1") is None

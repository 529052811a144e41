"""A full canary cycle on two running servers that share one model config file.

A client loop scores transactions throughout, routed by the routing file the
rollout writes: stage, canary at a share (with shadow scoring), status,
promote, then a second canary rolled back. Not one request may fail, and the
canary's share of the traffic must be close to the configured share.
"""
import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

from cli import engine_commands
from engine.client import ClientOptions, RiskEngineClient
from engine.policy import default_policy_path, load_policy
from engine.risk_engine import RiskEngine, summarize
from engine.rollout import RolloutError
from engine.rollout.controller import Rollout, RolloutOptions
from engine.rollout.fleet import AVAILABLE, Fleet
from engine.rollout.fleet_metrics import fleet_version_metrics
from engine.rollout.model_config import (find_model, read_config, specific_versions,
                                         validate_config)
from engine.routing import CANARY, PREVIOUS, STABLE, Router
from serving.options import ServerOptions
from serving.server import ModelServer

from synthetic_transactions import random_stream

MODEL = "fraud"
SHARE = 0.3
POLL_SECONDS = 0.2
ROUTER_REFRESH_SECONDS = 0.1
# Cards are many so the share of traffic follows the share of cards closely.
STREAM = dict(n=10000, days=10, cards=3000, terminals=50, seed=21)
LOOP_LIMIT_SECONDS = 120


def endless_stream():
    """The STREAM replayed over and over, each lap later in time, so it never runs out."""
    lap_seconds = STREAM["days"] * 86400
    base = random_stream(**STREAM)
    for lap in itertools.count():
        shift = lap * lap_seconds
        for txn in base:
            yield txn._replace(
                transaction_id=f"{lap}-{txn.transaction_id}",
                timestamp=txn.timestamp + shift, label_known_at=txn.label_known_at + shift)


def write_config(path, base, versions, labels):
    lines = [f"model_config_list {{ config {{ name: '{MODEL}' base_path: '{base}' "
             "model_platform: 'tensorflow' model_version_policy { specific {"]
    lines += [f" versions: {v}" for v in versions]
    lines.append(" } }")
    lines += [f" version_labels {{ key: '{k}' value: {v} }}" for k, v in labels.items()]
    lines.append(" } }\n")
    path.write_text("".join(lines))


@pytest.fixture(name="fleet_dir")
def fixture_fleet_dir(tmp_path, model_dir):
    """A base path holding versions 1, 2 and 3 of the model, and a config serving 1."""
    base = tmp_path / "serving" / MODEL
    for version in (1, 2, 3):
        shutil.copytree(model_dir, base / str(version))
    config = tmp_path / "models.config"
    write_config(config, base, [1], {STABLE: 1})
    return tmp_path, str(config)


@pytest.fixture(name="servers")
def fixture_servers(fleet_dir, free_port):
    """Two in-process servers on loopback polling the same config file."""
    _, config = fleet_dir
    monitoring = fleet_dir[0] / "monitoring.config"
    monitoring.write_text("prometheus_config { enable: true }\n")
    started = []
    try:
        for _ in range(2):
            server = ModelServer(ServerOptions(
                port=0, rest_api_port=free_port(), bind_address="127.0.0.1",
                model_config_file=config, model_config_file_poll_wait_seconds=POLL_SECONDS,
                file_system_poll_wait_seconds=POLL_SECONDS,
                monitoring_config_file=str(monitoring), shutdown_grace_seconds=1.0))
            server.start()
            started.append(server)
        for server in started:
            assert server.wait_until_available(120)
        yield started
    finally:
        for server in started:
            server.stop(grace=1.0)


class ClientLoop:
    """Scores a time-ordered stream in a thread until stopped; keeps every record."""

    def __init__(self, addresses, routing_path):
        self.client = RiskEngineClient(ClientOptions(addresses=tuple(addresses),
                                                     model_name=MODEL, deadline_seconds=5.0))
        router = Router(MODEL, routing_path, refresh_seconds=ROUTER_REFRESH_SECONDS)
        self.engine = RiskEngine(self.client, load_policy(default_policy_path()), router)
        self.records = []
        self.failure = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        deadline = time.monotonic() + LOOP_LIMIT_SECONDS
        try:
            for txn in endless_stream():
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                self.records.append(self.engine.score(txn))
        except Exception as err:  # reported by the test, which must fail on it
            self.failure = err

    def start(self):
        self._thread.start()
        return self

    def mark(self):
        return len(self.records)

    def wait_for(self, count, timeout=60.0):
        """Waits until `count` more records are scored."""
        target = len(self.records) + count
        deadline = time.monotonic() + timeout
        while len(self.records) < target:
            assert self._thread.is_alive(), f"client loop ended: {self.failure}"
            assert time.monotonic() < deadline, "client loop is not making progress"
            time.sleep(0.05)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)
        self.client.close()
        assert self.failure is None, self.failure


def model_labels(config_path):
    model = find_model(read_config(config_path), MODEL, config_path)
    return dict(model.version_labels), specific_versions(model)


def run_rollout(argv):
    """`riskpipe rollout ARGV` in process, through its argparse registration."""
    parser = argparse.ArgumentParser()
    engine_commands.register(parser.add_subparsers())
    args = parser.parse_args(["rollout"] + list(argv))
    return args.func(args)


def test_full_canary_cycle_with_zero_failed_requests(fleet_dir, servers, capsys):
    tmp, config = fleet_dir
    addresses = [f"127.0.0.1:{server.port}" for server in servers]
    fleet = Fleet(addresses, MODEL)
    rollout = Rollout(config, MODEL, fleet, options=RolloutOptions(
        timeout_seconds=90, poll_seconds=0.1, client_grace_seconds=1.0))
    loop = ClientLoop(addresses, rollout.routing_path).start()
    try:
        loop.wait_for(50)
        rollout.stage(2)
        assert model_labels(config) == ({STABLE: 1}, [1, 2])
        loop.wait_for(50)

        rollout.canary(2, SHARE, shadow=True)
        assert model_labels(config) == ({STABLE: 1, CANARY: 2}, [1, 2])
        time.sleep(2 * ROUTER_REFRESH_SECONDS)
        canary_start = loop.mark()
        loop.wait_for(1500, timeout=120)
        canary_phase = loop.records[canary_start:loop.mark()]

        status = rollout.describe()
        for address in addresses:
            assert status["servers"][address] == {"1": AVAILABLE, "2": AVAILABLE}
        assert status["canary_share"] == SHARE and status["shadow"]
        summary = summarize(canary_phase)
        assert set(summary) == {"1", "2", "all"}
        urls = [f"http://127.0.0.1:{server.rest_port}/monitoring/prometheus/metrics"
                for server in servers]
        metrics = fleet_version_metrics(urls, MODEL)
        assert set(metrics) == {"1", "2"}
        assert metrics["1"]["requests"] > 0 and metrics["2"]["requests"] > 0

        records_file = tmp / "records.jsonl"
        records_file.write_text("".join(json.dumps(r) + "\n" for r in canary_phase))
        assert run_rollout(["status", "--model-config", config, "--server", ",".join(addresses),
                            "--records", str(records_file), "--metrics", *urls]) == 0
        printed = capsys.readouterr().out
        assert f"canary share {SHARE:g} (shadow scoring on)" in printed
        for version in ("1", "2"):
            assert re.search(rf"^  {version} +[0-9]+ +0 ", printed, re.M), printed
            assert re.search(rf"^  {version}: score p50 [0-9.]+ p90", printed, re.M), printed

        rollout.promote()
        # The replaced version stays loaded as `previous`: a rollback is one label move.
        assert model_labels(config) == ({STABLE: 2, PREVIOUS: 1}, [1, 2])
        time.sleep(2 * ROUTER_REFRESH_SECONDS)
        after_promote = loop.mark()
        loop.wait_for(100)
        assert {r["model_version"] for r in loop.records[after_promote:loop.mark()]} == {2}

        rollout.stage(3)
        rollout.canary(3, 0.5)
        loop.wait_for(100)
        rollout.rollback()
        assert model_labels(config) == ({STABLE: 2, PREVIOUS: 1}, [1, 2])
        time.sleep(2 * ROUTER_REFRESH_SECONDS)
        after_rollback = loop.mark()
        loop.wait_for(100)
        assert {r["model_version"] for r in loop.records[after_rollback:loop.mark()]} == {2}
    finally:
        loop.stop()
        fleet.close()

    failed = [r for r in loop.records if r["error"] or r["shadow_error"]]
    assert not failed, failed[:3]
    # Every canary-phase request went where its label said, on the right version.
    for record in canary_phase:
        expected = 2 if record["version_label"] == CANARY else 1
        assert record["model_version"] == expected
        assert record["shadow_model_version"] == 3 - expected  # shadow scored the other one
    canary_traffic = sum(r["version_label"] == CANARY for r in canary_phase) / len(canary_phase)
    assert abs(canary_traffic - SHARE) < 0.06, canary_traffic
    compared = summarize(canary_phase)["all"]
    assert compared["shadow_compared"] == len(canary_phase)


def test_rollout_killed_between_two_writes_leaves_a_served_config(fleet_dir, servers):
    """`riskpipe rollout promote` killed after moving stable, before dropping the old version."""
    tmp, config = fleet_dir
    addresses = ",".join(f"127.0.0.1:{server.port}" for server in servers)
    fleet = Fleet(addresses.split(","), MODEL)
    rollout = Rollout(config, MODEL, fleet, options=RolloutOptions(
        timeout_seconds=90, poll_seconds=0.1, client_grace_seconds=0.5))
    try:
        rollout.stage(2)
        rollout.canary(2, 0.5)
        command = [sys.executable, "-m", "cli.main", "rollout", "promote",
                   "--model-config", config, "--server", addresses,
                   "--client-grace", "60", "--timeout", "60"]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                                   cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                       os.path.abspath(__file__)))))
        try:
            lines = []
            for line in process.stderr:  # ends when the process exits
                lines.append(line)
                if line.startswith("waiting"):
                    break
            assert any(line.startswith("waiting") for line in lines), "".join(lines)
        finally:
            process.kill()
            process.wait(timeout=30)

        # Killed between writes: stable already moved, old version still pinned.
        labels, versions = model_labels(config)
        assert labels == {STABLE: 2, CANARY: 2, PREVIOUS: 1} and versions == [1, 2]
        validate_config(read_config(config), config)
        assert not [p for p in os.listdir(tmp) if p.endswith(".tmp")]
        time.sleep(3 * POLL_SECONDS)
        for address in addresses.split(","):
            assert fleet.label_version(address, STABLE) == 2
            assert fleet.version_states(address)[2][0] == AVAILABLE
        with RiskEngineClient(ClientOptions(addresses=tuple(addresses.split(",")),
                                            model_name=MODEL)) as client:
            engine = RiskEngine(client, load_policy(default_policy_path()),
                                Router(MODEL, rollout.routing_path))
            records = [engine.score(t) for t in random_stream(50, days=1, seed=4)]
        assert not [r for r in records if r["error"]]
        assert {r["model_version"] for r in records} == {2}

        # Running the interrupted step again completes it.
        rollout.promote()
        assert model_labels(config) == ({STABLE: 2, PREVIOUS: 1}, [1, 2])
    finally:
        fleet.close()


def test_stage_of_a_version_that_fails_to_load_restores_the_config(fleet_dir, servers):
    tmp, config = fleet_dir
    base = os.path.join(tmp, "serving", MODEL)
    broken = os.path.join(base, "4")
    os.makedirs(os.path.join(broken, "variables"))
    with open(os.path.join(broken, "saved_model.pb"), "wb") as f:
        f.write(b"not a SavedModel")
    before = open(config).read()
    fleet = Fleet([f"127.0.0.1:{s.port}" for s in servers], MODEL)
    rollout = Rollout(config, MODEL, fleet, options=RolloutOptions(
        timeout_seconds=60, poll_seconds=0.1))
    try:
        with pytest.raises(RolloutError, match="version 4 failed to load.*restored"):
            rollout.stage(4)
    finally:
        fleet.close()
    assert open(config).read() == before

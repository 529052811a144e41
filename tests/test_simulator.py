"""The simulated raw transactions honour the raw-column contract and the documented layout."""
import csv
import datetime
import filecmp
import json
import os

import numpy as np
import pandas as pd
import pytest

from components.transactions import (CHANNELS, FRAUD_SCENARIOS, MERCHANT_CATEGORIES,
                                     PARTITION_FORMAT, RAW_COLUMNS)
from datagen import dataset, geography, scenarios
from datagen.simulator import SimulationConfig, day_start_timestamp, simulate

TINY = SimulationConfig(transactions=3000, days=6, fraud_rate=0.03, seed=7,
                        start_date="2026-03-01")


def _write(config, out):
    dataset.write_dataset(config, str(out))
    return str(out)


def _read(out):
    frames = []
    for name in sorted(os.listdir(out)):
        if name.startswith("date="):
            frame = pd.read_csv(os.path.join(out, name, "transactions.csv"), dtype=str,
                                keep_default_na=False)
            frame["partition"] = name[len("date="):]
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return _write(TINY, tmp_path_factory.mktemp("tiny") / "raw")


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return _read(tiny_dir)


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path, tiny_dir):
    again = _write(TINY, tmp_path / "again")
    assert _files(again) == _files(tiny_dir)
    _, mismatch, errors = filecmp.cmpfiles(tiny_dir, again, _files(tiny_dir), shallow=False)
    assert mismatch == [] and errors == []

    other = _write(SimulationConfig(**{**TINY.__dict__, "seed": 8}), tmp_path / "other")
    first_day = PARTITION_FORMAT.format(date=TINY.start_date)
    assert not filecmp.cmp(os.path.join(tiny_dir, first_day), os.path.join(other, first_day),
                           shallow=False)


def test_header_and_every_value_follow_the_contract(tiny_dir, tiny):
    for name in os.listdir(tiny_dir):
        if name.startswith("date="):
            with open(os.path.join(tiny_dir, name, "transactions.csv"), newline="") as f:
                assert next(csv.reader(f)) == list(RAW_COLUMNS)
    for column, kind in RAW_COLUMNS.items():
        values = tiny.loc[tiny[column] != "", column]
        if kind is int:
            assert values.str.fullmatch(r"-?\d+").all(), column
        elif kind is float:
            assert np.isfinite(values.astype(float)).all(), column
    required = [c for c in RAW_COLUMNS if c not in ("latitude", "longitude", "fraud_scenario")]
    assert (tiny[required] != "").all().all()
    assert set(tiny.merchant_category) <= set(MERCHANT_CATEGORIES)
    assert set(tiny.channel) == set(CHANNELS)
    assert set(tiny.is_fraud) == {"0", "1"}
    assert (tiny.amount.astype(float) > 0).all()
    assert tiny.amount.str.fullmatch(r"\d+\.\d\d").all()


def test_fraud_scenario_is_named_exactly_on_fraud_rows(tiny):
    fraud = tiny.is_fraud == "1"
    # account_takeover only comes with its drift (tests/test_drift_scenarios.py).
    assert set(tiny.fraud_scenario[fraud]) == set(scenarios.SCENARIO_SHARE)
    assert (tiny.fraud_scenario[~fraud] == "").all()


def test_coordinates_are_empty_exactly_for_card_not_present(tiny):
    online = tiny.channel == "card_not_present"
    for column in ("latitude", "longitude"):
        assert (tiny[column][online] == "").all()
        assert (tiny[column][~online] != "").all()
    lat = tiny.latitude[~online].astype(float)
    lon = tiny.longitude[~online].astype(float)
    assert lat.between(-90, 90).all() and lon.between(-180, 180).all()
    assert (tiny.merchant_category[online] != "grocery").all()
    assert (tiny.merchant_category[~online] != "online").all()


def test_fraud_labels_become_known_after_the_transaction(tiny):
    timestamp = tiny.timestamp.astype(int)
    known_at = tiny.label_known_at.astype(int)
    fraud = tiny.is_fraud == "1"
    assert (known_at >= timestamp).all()
    assert (known_at[fraud] > timestamp[fraud]).all()
    # Most frauds are reported days later, not within the hour.
    assert ((known_at - timestamp)[fraud] > 86400).mean() > 0.5


def test_one_partition_per_day_with_sorted_unique_ids(tiny_dir, tiny):
    first = datetime.date.fromisoformat(TINY.start_date)
    expected = [(first + datetime.timedelta(d)).isoformat() for d in range(TINY.days)]
    assert sorted(n[len("date="):] for n in os.listdir(tiny_dir) if n.startswith("date=")) \
        == expected
    assert tiny.transaction_id.is_unique
    for date, day in tiny.groupby("partition"):
        start = day_start_timestamp(datetime.date.fromisoformat(date))
        timestamp = day.timestamp.astype(int)
        assert timestamp.between(start, start + 86399).all()
        assert day.transaction_id.str.startswith(date.replace("-", "")).all()
        keys = list(zip(timestamp, day.transaction_id))
        assert keys == sorted(keys)


def test_manifest_is_written_and_counts_match_the_files(tiny_dir, tiny):
    with open(os.path.join(tiny_dir, dataset.MANIFEST)) as f:
        manifest = json.load(f)
    assert manifest["parameters"]["seed"] == TINY.seed
    assert manifest["parameters"]["transactions"] == TINY.transactions
    assert manifest["columns"] == list(RAW_COLUMNS)
    assert manifest["rows"] == len(tiny) == TINY.transactions
    per_day = tiny.groupby("partition").size()
    assert {p["date"]: p["rows"] for p in manifest["partitions"]} == per_day.to_dict()
    assert manifest["fraud_rows_by_scenario"] == {
        s: int((tiny.fraud_scenario == s).sum()) for s in scenarios.SCENARIO_SHARE}


def test_ids_are_consistent_entities(tiny):
    # A card belongs to one customer; a terminal has one category, channel and place.
    assert tiny.groupby("card_id").customer_id.nunique().max() == 1
    terminals = tiny.groupby("terminal_id")
    for column in ("merchant_category", "channel", "latitude", "longitude"):
        assert terminals[column].nunique().max() == 1, column
    assert tiny.groupby("customer_id").card_id.nunique().max() > 1


@pytest.mark.parametrize("seed", [1, 2])
def test_each_scenario_occurs_near_the_requested_fraud_rate(seed):
    config = SimulationConfig(transactions=40_000, days=20, fraud_rate=0.02, seed=seed)
    scenario_rows = np.zeros(len(FRAUD_SCENARIOS) + 1, dtype=int)
    for day in simulate(config):
        scenario_rows += np.bincount(day.rows.scenario, minlength=scenario_rows.size)
    assert scenario_rows.sum() == config.transactions
    fraud_rate = scenario_rows[1:].sum() / config.transactions
    assert 0.6 * config.fraud_rate < fraud_rate < 1.5 * config.fraud_rate
    for name, share in scenarios.SCENARIO_SHARE.items():
        rows = scenario_rows[scenarios.SCENARIO_CODE[name]]
        expected = config.fraud_rate * share * config.transactions
        assert 0.4 * expected < rows < 2.0 * expected, name


def test_legitimate_rows_share_every_fraud_signature(tmp_path):
    """Fraud must not be separable by a single rule: genuine customers travel far,
    buy big things and pay tiny online amounts too."""
    frame = _read(_write(SimulationConfig(transactions=20_000, days=10, seed=3),
                         tmp_path / "raw"))
    legit = frame[frame.is_fraud == "0"]
    amount = legit.amount.astype(float)
    assert ((amount < 3) & (legit.channel == "card_not_present")).sum() > 50
    fraud_amount = frame.amount[frame.is_fraud == "1"].astype(float)
    assert (amount > fraud_amount.median()).sum() > 10 * (frame.is_fraud == "1").sum()

    present = frame[frame.channel == "card_present"].copy()
    present["lat"] = present.latitude.astype(float)
    present["lon"] = present.longitude.astype(float)
    present = present.sort_values(["card_id", "timestamp", "transaction_id"])
    previous = present.groupby("card_id")[["lat", "lon"]].shift()
    jump_km = geography.haversine_km(previous.lat, previous.lon, present.lat, present.lon)
    far = jump_km > 300
    assert (far & (present.is_fraud == "0")).sum() > (far & (present.is_fraud == "1")).sum()


def test_example_gen_resolves_days_as_spans(tiny_dir):
    from tfx.components.example_gen import utils  # pylint: disable=import-outside-toplevel
    from tfx.proto import example_gen_pb2  # pylint: disable=import-outside-toplevel

    splits = [example_gen_pb2.Input.Split(name="all", pattern=dataset.EXAMPLE_GEN_PATTERN)]
    _, span, _ = utils.calculate_splits_fingerprint_span_and_version(tiny_dir, splits)
    last = datetime.date.fromisoformat(TINY.start_date) + datetime.timedelta(TINY.days - 1)
    assert span == utils.date_to_span_number(last.year, last.month, last.day)


def test_each_scenario_has_its_signature(tmp_path):
    frame = _read(_write(SimulationConfig(transactions=20_000, days=10, fraud_rate=0.03,
                                          seed=4), tmp_path / "raw"))
    frame["amount_value"] = frame.amount.astype(float)
    frame["day"] = frame.transaction_id.str[:8]
    scenario = frame.fraud_scenario

    probing = frame[scenario == "probing"]
    assert (probing.channel == "card_not_present").all()
    tiny_probes = probing[probing.amount_value <= 3.0].groupby(["card_id", "day"]).size()
    assert (tiny_probes >= 2).all()
    assert (probing.amount_value > 50).any()

    for name in ("compromised_terminal", "impossible_travel"):
        assert (frame.channel[scenario == name] == "card_present").all(), name

    # A far jump from the card's previous card-present purchase opens every
    # impossible-travel episode that follows its genuine anchor.
    present = frame[frame.channel == "card_present"].sort_values(
        ["card_id", "timestamp", "transaction_id"]).copy()
    present["lat"] = present.latitude.astype(float)
    present["lon"] = present.longitude.astype(float)
    before = present.groupby("card_id")[["lat", "lon", "fraud_scenario"]].shift()
    jump_km = geography.haversine_km(before.lat, before.lon, present.lat, present.lon)
    opens = (present.fraud_scenario == "impossible_travel") & (before.fraud_scenario == "")
    assert opens.sum() > 5
    assert (jump_km[opens] >= scenarios.TRAVEL_MIN_KM - 100).mean() > 0.8

    compromised = frame[scenario == "compromised_card"]
    assert (compromised.channel == "card_not_present").mean() > 0.5

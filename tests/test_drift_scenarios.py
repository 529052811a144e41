"""`riskpipe generate --drift`: what each drift changes, from its start day and not before."""
import dataclasses
import filecmp
import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest

from cli import main as cli
from components.transactions import MERCHANT_CATEGORIES
from datagen import dataset, scenarios, simulator
from datagen.drift import Drift

CONFIG = simulator.SimulationConfig(transactions=8000, days=8, fraud_rate=0.04, seed=5,
                                    start_date="2026-03-01")
START_DAY = 4
FLAGS = ["--transactions", "8000", "--days", "8", "--fraud-rate", "0.04", "--seed", "5",
         "--start-date", "2026-03-01"]
# sha256 of the files `riskpipe generate` wrote for ORIGINAL before drift scenarios
# existed (numpy 1.26): a run without --drift must still write exactly these bytes.
ORIGINAL = simulator.SimulationConfig(transactions=3000, days=6, fraud_rate=0.03, seed=7,
                                      start_date="2026-03-01")
ORIGINAL_SHA256 = "0de0e4449e4c63e459d80f45305639ade62528134a526670d6fa626859214943"


def _with(*kinds, config=CONFIG, start_day=START_DAY):
    return dataclasses.replace(config, drifts=tuple(Drift(k, start_day) for k in kinds))


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def _sha256(root):
    digest = hashlib.sha256()
    for name in _files(root):
        digest.update(name.encode() + b"\0")
        with open(os.path.join(root, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def _manifest(out):
    with open(os.path.join(out, dataset.MANIFEST)) as f:
        return json.load(f)


def _read(out):
    frames = []
    for day, name in enumerate(sorted(n for n in os.listdir(out) if n.startswith("date=")), 1):
        frame = pd.read_csv(os.path.join(out, name, "transactions.csv"), dtype=str,
                            keep_default_na=False)
        frame["day"] = day
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame["amount_value"] = frame.amount.astype(float)
    frame["time"] = frame.timestamp.astype(int)
    return frame


def _write(tmp_path_factory, config):
    out = str(tmp_path_factory.mktemp("raw") / "raw")
    dataset.write_dataset(config, out)
    return out


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory):
    return _write(tmp_path_factory, CONFIG)


@pytest.fixture(scope="module")
def shifted_dir(tmp_path_factory):
    return _write(tmp_path_factory, _with("population_shift"))


@pytest.fixture(scope="module")
def taken_dir(tmp_path_factory):
    return _write(tmp_path_factory, _with("account_takeover"))


@pytest.fixture(scope="module")
def plain(plain_dir):
    return _read(plain_dir)


@pytest.fixture(scope="module")
def shifted(shifted_dir):
    return _read(shifted_dir)


@pytest.fixture(scope="module")
def taken(taken_dir):
    return _read(taken_dir)


def _before_after(frame):
    return frame[frame.day < START_DAY], frame[frame.day >= START_DAY]


def test_without_drift_the_files_are_those_written_before_drifts_existed(tmp_path):
    out = str(tmp_path / "raw")
    dataset.write_dataset(ORIGINAL, out)
    assert _sha256(out) == ORIGINAL_SHA256
    assert "drift" not in _manifest(out)["parameters"]
    assert "account_takeover" not in _manifest(out)["fraud_rows_by_scenario"]


@pytest.mark.parametrize("drifted", ["shifted_dir", "taken_dir"])
def test_days_before_the_start_day_are_those_of_a_run_without_drift(request, plain_dir, drifted):
    drifted_dir = request.getfixturevalue(drifted)
    days = [n for n in _files(plain_dir) if n.startswith("date=")]
    _, mismatch, errors = filecmp.cmpfiles(plain_dir, drifted_dir, days, shallow=False)
    assert sorted(mismatch) == days[START_DAY - 1:] and errors == []


def test_population_shift_raises_amounts_and_card_not_present_spending(shifted):
    before, after = _before_after(shifted[shifted.is_fraud == "0"])
    median_ratio = after.amount_value.median() / before.amount_value.median()
    assert 1.3 < median_ratio < 1.7
    online_ratio = (after.channel == "card_not_present").mean() \
        / (before.channel == "card_not_present").mean()
    assert 1.6 < online_ratio < 2.4


def test_population_shift_opens_new_merchants_on_its_start_day(shifted):
    first_new = simulator.build_population(CONFIG).num_terminals
    new = shifted.terminal_id.str[1:].astype(int) >= first_new
    assert not new[shifted.day < START_DAY].any()
    after = shifted[shifted.day >= START_DAY]
    assert 0.2 < new[after.index].mean() < 0.4
    opened = shifted[new]
    assert set(opened.channel) == {"card_present", "card_not_present"}
    assert set(opened.merchant_category) <= set(MERCHANT_CATEGORIES)
    assert (opened.latitude[opened.channel == "card_present"] != "").all()


def test_account_takeovers_before_a_population_shift_use_none_of_its_merchants(tmp_path):
    config = dataclasses.replace(CONFIG, drifts=(Drift("account_takeover", 2),
                                                 Drift("population_shift", 6)))
    out = str(tmp_path / "raw")
    dataset.write_dataset(config, out)
    frame = _read(out)
    new = frame.terminal_id.str[1:].astype(int) >= simulator.build_population(CONFIG).num_terminals
    assert (frame.fraud_scenario[frame.day < 6] == "account_takeover").any()
    assert not new[frame.day < 6].any() and new[frame.day >= 6].any()


def test_fraud_goes_on_as_without_drift_under_a_population_shift(plain, shifted):
    plain_rate = (_before_after(plain)[1].is_fraud == "1").mean()
    shifted_rate = (_before_after(shifted)[1].is_fraud == "1").mean()
    assert abs(shifted_rate - plain_rate) < 0.2 * plain_rate
    assert "account_takeover" not in set(shifted.fraud_scenario)


def test_account_takeovers_happen_from_their_start_day_only(taken):
    takeover = taken.fraud_scenario == "account_takeover"
    assert not takeover[taken.day < START_DAY].any()
    assert takeover[taken.day == START_DAY].any()


def _scenario_codes(config, first_day):
    """The scenario codes of the rows of days first_day.. of a simulation."""
    return np.concatenate([d.rows.scenario for d in simulator.simulate(config)
                           if d.index >= first_day - 1])


def test_account_takeovers_take_their_share_of_the_configured_fraud_rate():
    config = simulator.SimulationConfig(transactions=20_000, days=10, fraud_rate=0.03, seed=2)
    start_day = 3
    plain = _scenario_codes(config, start_day)
    taken = _scenario_codes(_with("account_takeover", config=config, start_day=start_day),
                            start_day)
    frauds = (taken > 0).sum()
    assert 0.75 < frauds / (plain > 0).sum() < 1.3
    assert 0.6 * config.fraud_rate < frauds / taken.size < 1.5 * config.fraud_rate
    share = (taken == scenarios.SCENARIO_CODE["account_takeover"]).sum() / frauds
    assert 0.5 * scenarios.TAKEOVER_SHARE < share < 1.5 * scenarios.TAKEOVER_SHARE


def test_account_takeovers_are_bursts_at_online_merchants_new_to_the_card(taken):
    takeover = taken[taken.fraud_scenario == "account_takeover"]
    assert (takeover.is_fraud == "1").all()
    assert (takeover.channel == "card_not_present").all()
    # An episode's rows share its report time.
    episodes = takeover.groupby(["card_id", "label_known_at"])
    assert len(episodes) >= 10
    assert (episodes.size() >= 2).all()
    assert ((episodes.time.max() - episodes.time.min()) < 3600).all()
    for (card, _), episode in episodes:
        earlier = taken[(taken.card_id == card) & (taken.time < episode.time.min())]
        assert not set(episode.terminal_id) & set(earlier.terminal_id), card


def test_account_takeover_labels_are_known_days_later(taken):
    takeover = taken[taken.fraud_scenario == "account_takeover"]
    delay = takeover.label_known_at.astype(int) - takeover.time
    assert (delay > 0).all()
    assert (delay > 86400).mean() > 0.5


def test_generate_records_the_drifts_and_repeats_its_bytes(tmp_path, taken_dir):
    drift_flags = ["--drift", "population_shift", "--drift-start-day", str(START_DAY),
                   "--drift", "account_takeover", "--drift-start-day", str(START_DAY)]
    first, again = str(tmp_path / "first"), str(tmp_path / "again")
    assert cli.main(["generate", *FLAGS, *drift_flags, "--out", first]) == 0
    assert cli.main(["generate", *FLAGS, *drift_flags, "--out", again]) == 0
    assert _files(first) == _files(again)
    _, mismatch, errors = filecmp.cmpfiles(first, again, _files(first), shallow=False)
    assert mismatch == [] and errors == []

    manifest = _manifest(first)
    assert manifest["parameters"]["drift"] == [
        {"kind": "population_shift", "start_day": START_DAY},
        {"kind": "account_takeover", "start_day": START_DAY}]
    assert manifest["parameters"]["seed"] == CONFIG.seed
    assert manifest["fraud_rows_by_scenario"]["account_takeover"] > 0
    assert _manifest(taken_dir)["parameters"]["drift"] == [
        {"kind": "account_takeover", "start_day": START_DAY}]


def test_generate_without_drift_flags_writes_what_the_simulator_writes(tmp_path, plain_dir):
    out = str(tmp_path / "raw")
    assert cli.main(["generate", *FLAGS, "--out", out]) == 0
    _, mismatch, errors = filecmp.cmpfiles(plain_dir, out, _files(plain_dir), shallow=False)
    assert mismatch == [] and errors == []
    assert "drift" not in _manifest(out)["parameters"]


BAD_DRIFTS = [
    (["--drift", "meteor_strike", "--drift-start-day", "2"], "--drift must be one of"),
    (["--drift", "population_shift", "--drift-start-day", "0"], "--drift-start-day"),
    (["--drift", "population_shift", "--drift-start-day", "9"], "--drift-start-day"),
    (["--drift", "population_shift", "--drift-start-day", "soon"], "--drift-start-day"),
    (["--drift", "population_shift"], "--drift-start-day"),
    (["--drift-start-day", "3"], "--drift and --drift-start-day"),
    (["--drift", "account_takeover", "--drift-start-day", "2",
      "--drift", "population_shift"], "--drift-start-day"),
    (["--drift", "account_takeover", "--drift-start-day", "2",
      "--drift", "account_takeover", "--drift-start-day", "4"], "--drift account_takeover"),
]


@pytest.mark.parametrize("args,flag", BAD_DRIFTS)
def test_bad_drift_flags_exit_2_naming_the_flag(tmp_path, capsys, args, flag):
    assert cli.main(["generate", *FLAGS, *args, "--out", str(tmp_path / "raw")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("riskpipe generate: error:")
    assert flag in err
    assert os.listdir(tmp_path) == []


def test_help_documents_the_drift_flags(capsys):
    with pytest.raises(SystemExit):
        cli.main(["generate", "--help"])
    text = capsys.readouterr().out
    for word in ("--drift", "--drift-start-day", "population_shift", "account_takeover"):
        assert word in text

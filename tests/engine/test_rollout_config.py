"""The rollout's model config handling: validation, atomic writes, the step transforms.

The fleet-facing half (waiting on real servers, an interrupted rollout that the
servers keep serving) is in test_canary_cycle.py.
"""
import os

import pytest

from engine.rollout import RolloutError
from engine.rollout.config_edits import (promoted, reverted, with_label, with_version_staged,
                                         without_unlabelled_versions)
from engine.rollout.controller import Rollout
from engine.rollout.fleet_metrics import version_metrics_from_texts
from engine.rollout.model_config import (find_model, read_config, specific_versions,
                                         validate_config, write_config)
from engine.routing import CANARY, PREVIOUS, STABLE

CONFIG = """
model_config_list {
  config {
    name: "fraud"
    base_path: "%(base)s"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 100 } }
    version_labels { key: "stable" value: 100 }
  }
}
"""


@pytest.fixture(name="base")
def fixture_base(tmp_path):
    """A base path with complete versions 100, 200, 300 (saved_model.pb marks them complete)."""
    base = tmp_path / "models" / "fraud"
    for version in (100, 200, 300):
        (base / str(version)).mkdir(parents=True)
        (base / str(version) / "saved_model.pb").write_bytes(b"")
    (base / "400").mkdir()  # a version the Pusher is still writing
    return str(base)


@pytest.fixture(name="config_path")
def fixture_config_path(tmp_path, base):
    path = tmp_path / "models.config"
    path.write_text(CONFIG % {"base": base})
    return str(path)


def model_of(config):
    return find_model(config, "fraud", "test")


def test_read_and_validate_a_good_config(config_path):
    config = read_config(config_path)
    validate_config(config, config_path)
    assert specific_versions(model_of(config)) == [100]
    assert dict(model_of(config).version_labels) == {STABLE: 100}


def test_unparsable_config_names_the_file(tmp_path):
    path = tmp_path / "broken.config"
    path.write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(RolloutError, match="broken.config"):
        read_config(str(path))


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.version_labels.__setitem__(CANARY, 200),
     r"version_labels\[canary\]: version 200 is not among the specific versions"),
    (lambda m: m.model_version_policy.specific.versions.append(400),
     "version 400 has no complete SavedModel"),
    (lambda m: m.model_version_policy.specific.versions.append(100), "duplicates"),
    (lambda m: m.ClearField("base_path"), "base_path: missing"),
    (lambda m: m.version_labels.__delitem__(STABLE) or m.version_labels.__setitem__(CANARY, 100),
     "'canary' without 'stable'"),
])
def test_validation_names_the_bad_field(config_path, edit, message):
    config = read_config(config_path)
    edit(model_of(config))
    with pytest.raises(RolloutError, match=message):
        validate_config(config, config_path)


def test_an_invalid_config_is_never_written(config_path):
    before = open(config_path).read()
    config = read_config(config_path)
    model_of(config).version_labels[CANARY] = 999
    with pytest.raises(RolloutError):
        write_config(config_path, config)
    assert open(config_path).read() == before


def test_write_is_atomic_when_the_rename_fails(config_path, monkeypatch):
    before = open(config_path).read()
    config = with_version_staged(read_config(config_path), "fraud", 200, [], "t")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        write_config(config_path, config)
    assert open(config_path).read() == before
    assert sorted(os.listdir(os.path.dirname(config_path))) == ["models", "models.config"]


def test_stage_on_a_specific_policy_adds_the_version(config_path):
    config = read_config(config_path)
    staged = with_version_staged(config, "fraud", 200, [], config_path)
    assert specific_versions(model_of(staged)) == [100, 200]
    assert dict(model_of(staged).version_labels) == {STABLE: 100}
    assert specific_versions(model_of(config)) == [100]  # the input is not changed
    validate_config(staged, config_path)


def test_stage_on_a_latest_policy_pins_what_is_served_and_labels_it_stable(tmp_path, base):
    path = tmp_path / "latest.config"
    path.write_text('model_config_list { config { name: "fraud" base_path: "%s" '
                    'model_platform: "tensorflow" } }' % base)
    config = read_config(str(path))
    staged = with_version_staged(config, "fraud", 300, [100, 200], str(path))
    assert specific_versions(model_of(staged)) == [100, 200, 300]
    assert dict(model_of(staged).version_labels) == {STABLE: 200}
    with pytest.raises(RolloutError, match="no AVAILABLE version"):
        with_version_staged(config, "fraud", 300, [], str(path))


def test_each_intermediate_config_of_a_full_cycle_is_valid(config_path):
    """stage -> canary -> promote (two writes) -> the next stage -> rollback."""
    c0 = read_config(config_path)
    c1 = with_version_staged(c0, "fraud", 200, [], config_path)
    c2 = with_label(c1, "fraud", CANARY, 200, config_path)
    c3 = with_label(c2, "fraud", STABLE, 200, config_path)
    c4 = without_unlabelled_versions(c3, "fraud", config_path)
    c5 = with_version_staged(c4, "fraud", 300, [], config_path)
    c6 = with_label(c5, "fraud", CANARY, 300, config_path)
    c7 = without_unlabelled_versions(c6, "fraud", config_path)
    for config in (c1, c2, c3, c4, c5, c6, c7):
        validate_config(config, config_path)
    assert dict(model_of(c4).version_labels) == {STABLE: 200}
    assert specific_versions(model_of(c4)) == [200]
    # The rollback leaves stable where it was and drops the canary version.
    assert dict(model_of(c7).version_labels) == {STABLE: 200}
    assert specific_versions(model_of(c7)) == [200]


def test_unknown_model_is_named(config_path):
    with pytest.raises(RolloutError, match="no model named 'credit'"):
        find_model(read_config(config_path), "credit", config_path)


def test_canary_refuses_a_version_that_is_not_staged(config_path):
    rollout = Rollout(config_path, "fraud", fleet=None)
    with pytest.raises(RolloutError, match="version 200 is not staged"):
        rollout.canary(200, 0.1)
    with pytest.raises(RolloutError, match=r"--share 1.5 is not in \[0, 1\]"):
        rollout.canary(100, 1.5)


def test_promote_without_a_canary_is_refused(config_path):
    with pytest.raises(RolloutError, match="no 'canary' label"):
        Rollout(config_path, "fraud", fleet=None).promote()


def test_stage_refuses_an_incomplete_version(config_path):
    with pytest.raises(RolloutError, match="version 400 has no complete SavedModel"):
        Rollout(config_path, "fraud", fleet=None).stage(400)


def test_server_metrics_are_split_by_version_and_merged_over_servers():
    from serving.metrics import ServingMetrics  # pylint: disable=import-outside-toplevel

    first, second = ServingMetrics(), ServingMetrics()
    for _ in range(99):
        first.record_request("predict", "fraud", "100", "OK", 500.0)
    first.record_request("predict", "fraud", "100", "OK", 80000.0)
    second.record_request("predict", "fraud", "200", "INVALID_ARGUMENT", 80.0)
    second.record_request("predict", "fraud", "200", "OK", 900.0)
    second.record_request("predict", "credit", "100", "OK", 900.0)  # another model
    second.record_request("GetModelStatus", "fraud", "", "OK", 30.0)  # names no version
    figures = version_metrics_from_texts([first.exposition(), second.exposition()], "fraud")
    assert set(figures) == {"100", "200"}
    assert figures["100"]["requests"] == 100 and figures["100"]["errors"] == 0
    assert figures["200"]["requests"] == 2 and figures["200"]["errors"] == 1
    # A percentile is its bucket's upper bound: 500 us falls in (340.2, 612.2].
    assert figures["100"]["latency_us_p50"] == pytest.approx(612.22)
    assert figures["100"]["latency_us_p99"] < 1000 < figures["100"]["latency_us_mean"]


def test_promote_keeps_the_replaced_version_as_previous_and_revert_moves_stable_back(config_path):
    staged = with_label(with_version_staged(read_config(config_path), "fraud", 200, [],
                                            config_path), "fraud", CANARY, 200, config_path)
    after = promoted(staged, "fraud", config_path)
    assert dict(model_of(after).version_labels) == {STABLE: 200, CANARY: 200, PREVIOUS: 100}
    # Promoting again (an interrupted promote re-run) keeps the first previous.
    assert promoted(after, "fraud", config_path) == after
    retired = without_unlabelled_versions(after, "fraud", config_path)
    assert dict(model_of(retired).version_labels) == {STABLE: 200, PREVIOUS: 100}
    assert specific_versions(model_of(retired)) == [100, 200]
    back = reverted(retired, "fraud", config_path)
    assert dict(model_of(back).version_labels) == {STABLE: 100}
    for config in (after, retired, back):
        validate_config(config, config_path)
    with pytest.raises(RolloutError, match="no 'previous' version"):
        reverted(back, "fraud", config_path)


def test_previous_without_stable_is_refused(config_path):
    config = read_config(config_path)
    model = model_of(config)
    del model.version_labels[STABLE]
    model.version_labels[PREVIOUS] = 100
    with pytest.raises(RolloutError, match="'previous' without 'stable'"):
        validate_config(config, config_path)

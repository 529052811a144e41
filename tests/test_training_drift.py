"""Drift between training runs: AnomalyGate's PSI and TFDV distances, and what the run does.

The PSI from statistics is checked on hand-made statistics protos; TFDV's
distances on statistics of small frames. End to end, the session's run is the
"previous run": a population shift from day 1 is run on its pipeline root,
first with drift_action stop (the run ends at the gate, naming the features),
then with warn (it trains, and the summary lists the drift). The warn run
comes second on purpose: it shows that the stopped run's statistics did not
become the reference, and it moves the reference itself.
"""
import json
import os
import re

import numpy as np
import pytest
import yaml
from tensorflow_metadata.proto.v0 import statistics_pb2

from common.distribution_stats import psi
from components.anomaly_gate import drift
from pipeline import mlmd_queries
from pipeline import pipeline as dag

DRIFT_LINE = re.compile(r"feature '(\w+)': PSI (\d+\.\d+) \((stable|watch|act), threshold 0\.25\)")


# --- PSI from statistics --------------------------------------------------------------


def _numeric(buckets, num_missing=0):
    """FeatureNameStatistics of a number whose quantiles histogram has `buckets` (low, high, n)."""
    feature = statistics_pb2.FeatureNameStatistics(type=statistics_pb2.FeatureNameStatistics.FLOAT)
    feature.num_stats.common_stats.num_missing = num_missing
    histogram = feature.num_stats.histograms.add(type=statistics_pb2.Histogram.QUANTILES)
    for low, high, count in buckets:
        histogram.buckets.add(low_value=low, high_value=high, sample_count=count)
    return feature


def _categorical(counts, num_missing=0):
    """FeatureNameStatistics of a string with the rank histogram `counts` (label -> n)."""
    feature = statistics_pb2.FeatureNameStatistics(
        type=statistics_pb2.FeatureNameStatistics.STRING)
    feature.string_stats.common_stats.tot_num_values = int(sum(counts.values()))
    feature.string_stats.common_stats.num_missing = num_missing
    for label, count in counts.items():
        feature.string_stats.rank_histogram.buckets.add(label=label, sample_count=count)
    return feature


def test_psi_of_statistics_against_themselves_is_zero():
    uniform = _numeric([(i / 10, (i + 1) / 10, 10) for i in range(100)])
    assert drift.feature_psi(uniform, uniform) == pytest.approx(0.0)
    channels = _categorical({"card_present": 700, "online": 300})
    assert drift.feature_psi(channels, channels) == pytest.approx(0.0)


def test_numeric_psi_bins_by_the_reference_deciles():
    # The reference: 1,000 values even on [0, 10] in 100 quantiles buckets, so its
    # deciles are 1, 2, ..., 9. The current data: 1,000 values even on [5, 15].
    reference = _numeric([(i / 10, (i + 1) / 10, 10) for i in range(100)])
    shifted = _numeric([(5 + i, 6 + i, 100) for i in range(10)], num_missing=50)
    assert drift.numeric_counts(reference.num_stats, np.arange(1.0, 10.0)) == \
        pytest.approx([100] * 10 + [0])
    # Nothing up to 5, a tenth in each of (5, 6] .. (8, 9], the rest above 9; 50 missing.
    expected = psi([100] * 10 + [0], [0] * 5 + [100] * 4 + [600, 50])
    assert drift.feature_psi(reference, shifted) == pytest.approx(expected)


def test_numeric_psi_keeps_point_masses_whole():
    # A 0/1 flag: 70% zeros in the reference, half in the current data. Zero-width
    # buckets are points, so the bins are (-inf, 0], (0, 1], (1, inf) and missing.
    reference = _numeric([(0, 0, 100)] * 7 + [(1, 1, 100)] * 3)
    current = _numeric([(0, 0, 100)] * 5 + [(1, 1, 100)] * 5)
    assert drift.feature_psi(reference, current) == pytest.approx(
        psi([700, 300, 0, 0], [500, 500, 0, 0]))


def test_categorical_psi_counts_new_values_as_other():
    reference = _categorical({"grocery": 500, "travel": 300, "fuel": 200})
    current = _categorical({"grocery": 400, "travel": 300, "casino": 200}, num_missing=100)
    # Bins: fuel, grocery, travel, every other value, missing.
    assert drift.feature_psi(reference, current) == pytest.approx(
        psi([200, 500, 300, 0, 0], [0, 400, 300, 200, 100]))


def test_a_reference_without_values_gives_no_psi():
    assert drift.feature_psi(_numeric([]), _numeric([(0, 1, 10)])) is None


# --- TFDV's distances and the rows -------------------------------------------------------


@pytest.fixture(scope="module")
def frame_statistics():
    """Statistics of a reference frame, a shifted one, and the curated schema."""
    # pylint: disable=import-outside-toplevel
    import pandas as pd
    import tensorflow_data_validation as tfdv

    from pipeline.schema_update import DEFAULT_SCHEMA_PATH

    rng = np.random.default_rng(0)

    def frame(online_share, amount_scale):
        return pd.DataFrame({
            "amount": rng.lognormal(3.0, 1.0, 4000) * amount_scale,
            "channel": rng.choice(["card_present", "online"], 4000,
                                  p=[1 - online_share, online_share]),
            # Not a model feature: no row.
            "card_id": [f"c{i}" for i in range(4000)]})

    options = tfdv.StatsOptions(num_quantiles_histogram_buckets=drift.QUANTILES_BUCKETS)
    reference, shifted = (tfdv.generate_statistics_from_dataframe(frame(*args), options)
                          for args in ((0.3, 1.0), (0.6, 3.0)))
    return reference, shifted, tfdv.load_schema_text(DEFAULT_SCHEMA_PATH)


def test_rows_carry_tfdv_distances_psi_and_the_verdict(frame_statistics):
    reference, shifted, schema = frame_statistics
    rows = drift.drift_rows({"train": shifted, "eval": reference},
                            {"train": reference, "eval": reference}, None, schema, 0.25)
    by_key = {(row["split"], row["feature"]): row for row in rows}
    assert set(by_key) == {(split, feature) for split in ("train", "eval")
                           for feature in ("amount", "channel")}
    channel = by_key[("train", "channel")]
    # The online share doubled from 0.3: L-infinity ~0.3, PSI ~0.38.
    assert channel["distance"] == "L_INFTY" and channel["distance_value"] == pytest.approx(
        0.3, abs=0.05)
    assert channel["distance_threshold"] == pytest.approx(0.1)
    assert channel["psi"] > 0.25 and channel["band"] == "act" and channel["drifted"]
    assert by_key[("train", "amount")]["distance"] == "JENSEN_SHANNON_DIVERGENCE"
    assert by_key[("train", "amount")]["drifted"]
    assert not any(row["drifted"] for (split, _), row in by_key.items() if split == "eval")
    assert drift.describe(channel, 0.25).startswith(
        "split 'train' against the previous run: feature 'channel': PSI ")


def test_serving_statistics_are_compared_with_the_train_split(frame_statistics):
    reference, shifted, schema = frame_statistics
    rows = drift.drift_rows({"train": reference, "eval": reference}, {}, shifted, schema, 0.25)
    assert {(row["against"], row["split"]) for row in rows} == {(drift.SERVING, "train")}
    channel = next(row for row in rows if row["feature"] == "channel")
    assert channel["distance"] == "L_INFTY" and channel["drifted"]


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drifted_data(tmp_path_factory, tiny_data):
    """The tiny dataset's simulation (from its manifest) with a population shift from day 1."""
    # pylint: disable=import-outside-toplevel
    from datagen.dataset import MANIFEST, write_dataset
    from datagen.drift import POPULATION_SHIFT, Drift
    from datagen.simulator import SimulationConfig

    with open(os.path.join(tiny_data, MANIFEST)) as f:
        parameters = json.load(f)["parameters"]
    out = str(tmp_path_factory.mktemp("drifted") / "raw")
    write_dataset(SimulationConfig(**parameters, drifts=(Drift(POPULATION_SHIFT, 1),)), out)
    return out


def _config(tiny_config, path, drift_action):
    """The tiny config with a `validation:` section."""
    with open(tiny_config(str(path), {})) as f:
        config = yaml.safe_load(f)
    config["validation"] = {"drift_action": drift_action}
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    return str(path)


def _psi_figures(text):
    """Feature -> the PSI each drift line of `text` names."""
    return {feature: float(value) for feature, value, _ in DRIFT_LINE.findall(text)}


@pytest.mark.e2e
def test_the_first_run_has_nothing_to_compare_with(pipeline_run):
    assert pipeline_run.result.exit_code == 0, pipeline_run.result.stderr
    states = {node: state for node, state, _ in pipeline_run.executions(
        0, pipeline_run.last_execution)}
    # LatestArtifactStrategy finds no artifact: TFX records the resolver as failed and goes on.
    assert states[dag.PREVIOUS_STATISTICS_RESOLVER] == "failed"
    assert states[dag.ANOMALY_GATE] == "ran" and states[dag.PUSHER] == "ran"
    assert "drift: nothing to compare with" in pipeline_run.result.stdout


@pytest.mark.e2e
def test_drift_stops_the_run_at_the_gate(pipeline_run, run_riskpipe, tiny_config, drifted_data,
                                         tmp_path):
    assert pipeline_run.result.exit_code == 0, pipeline_run.result.stderr
    versions = pipeline_run.versions()
    before = mlmd_queries.last_execution_id(pipeline_run.metadata_path)
    config = _config(tiny_config, tmp_path / "stop.yaml", "stop")
    result = run_riskpipe(pipeline_run.run_args(data_root=drifted_data, config_file=config))
    assert result.exit_code == 1, result.stdout + result.stderr
    nodes = {node: state for node, state, _ in pipeline_run.executions(before)}
    assert nodes[dag.ANOMALY_GATE] == "failed"
    assert dag.TRANSFORM not in nodes and dag.TRAINER not in nodes, nodes
    assert pipeline_run.versions() == versions
    errors = [line for line in result.stderr.splitlines() if line.startswith("riskpipe run:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert errors[0].startswith("riskpipe run: error: AnomalyGate: the data drifted (")
    assert "drift_action is 'stop'" in errors[0]
    # A feature named with a PSI beyond the threshold.
    assert max(_psi_figures(errors[0]).values()) > 0.25, errors[0]


@pytest.mark.e2e
def test_drift_with_warn_trains_and_the_summary_lists_it(pipeline_run, run_riskpipe, tiny_config,
                                                          drifted_data, tmp_path):
    assert pipeline_run.result.exit_code == 0, pipeline_run.result.stderr
    before = mlmd_queries.last_execution_id(pipeline_run.metadata_path)
    config = _config(tiny_config, tmp_path / "warn.yaml", "warn")
    # Another serving root: whatever this model is, the session's served versions stay as they are.
    result = run_riskpipe(["run", "--data", drifted_data,
                           "--pipeline-root", pipeline_run.pipeline_root,
                           "--serving-root", str(tmp_path / "serving"), "--config", config])
    assert result.exit_code == 0, result.stderr
    nodes = {node: state for node, state, _ in pipeline_run.executions(before)}
    assert nodes[dag.TRANSFORM] == "ran" and nodes[dag.TRAINER] == "ran", nodes
    # The same drifted data as the stopped run, and still drift: the reference is
    # the statistics a gate passed, not those of the run it stopped.
    heading = re.search(r"^drift: (\d+) of (\d+) feature comparisons beyond the thresholds "
                        r"\(drift_action warn\):$", result.stdout, re.MULTILINE)
    assert heading and int(heading.group(1)) > 0, result.stdout
    lines = [line for line in result.stdout.splitlines() if "against the previous run" in line]
    assert len(lines) == int(heading.group(1))
    assert max(_psi_figures("\n".join(lines)).values()) > 0.25, lines
    assert any("L-infinity distance" in line for line in lines), lines
    gate = next(e for node, _, e in pipeline_run.executions(before) if node == dag.ANOMALY_GATE)
    store = mlmd_queries.open_store(pipeline_run.metadata_path)
    report_dir = mlmd_queries.output_artifacts(store, gate.id)["validated_statistics"][0].uri
    assert os.path.isfile(os.path.join(report_dir, "drift.json"))

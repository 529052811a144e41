"""preprocessing_fn, run with tf.Transform on Beam over a small synthetic feature set.

The transformed schema is compared with the golden file
tests/golden/transformed_schema.pbtxt. After an intended change of the
transform, regenerate it with

    RISKPIPE_REGENERATE_GOLDEN=1 TF_USE_LEGACY_KERAS=1 .venv/bin/python -m pytest \
        tests/test_preprocessing.py -k golden

and review the diff like code.

The helpers at the top (synthetic examples, raw schemas, running the analysis)
and the session fixture `raw_data` are shared with tests/test_trainer.py.
"""
import functools
import math
import os
from typing import Dict, List, Sequence

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import (
    dataset_metadata, metadata_io, schema_utils)
from tfx_bsl.public import tfxio

from components import features, preprocessing
from components.transactions import CHANNELS, FRAUD_SCENARIOS, MERCHANT_CATEGORIES
from pipeline.schema_update import DEFAULT_SCHEMA_PATH

GOLDEN_SCHEMA = os.path.join(os.path.dirname(__file__), "golden", "transformed_schema.pbtxt")
_DTYPES = {"int": tf.int64, "float": tf.float32, "string": tf.string}


# ---------------------------------------------------------------------------
# Shared fixture helpers.

def make_feature_rows(n: int, seed: int, first_id: int = 0) -> List[Dict]:
    """n feature dicts shaped like FeatureGen's output (optional features sometimes absent).

    Fraud is more likely for large amounts at night, fast travel and risky
    terminals, so a model has something to learn.
    """
    rng = np.random.default_rng(seed)
    # Its own stream, so that the rows' other values stay what they were before the profile.
    profile_rng = np.random.default_rng([seed, 1])
    rows = []
    for i in range(n):
        timestamp = 1_700_000_000 + int(rng.integers(0, 60 * 86400))
        amount = float(np.round(rng.lognormal(3.5, 1.0), 2))
        channel = str(rng.choice(CHANNELS))
        counts = np.cumsum(rng.poisson([0.3, 2.0, 8.0, 25.0]))
        row = {
            "transaction_id": f"t{first_id + i:07d}",
            "timestamp": timestamp,
            "card_id": f"c{rng.integers(0, 200):04d}",
            "customer_id": f"u{rng.integers(0, 150):04d}",
            "terminal_id": f"m{rng.integers(0, 100):04d}",
            "amount": amount,
            "merchant_category": str(rng.choice(MERCHANT_CATEGORIES)),
            "channel": channel,
            **features.calendar_features(timestamp),
        }
        for (window, _), count in zip(features.CARD_WINDOWS, counts):
            row[f"card_txn_count_{window}"] = int(count)
            row[f"card_amount_sum_{window}"] = float(np.round(count * rng.lognormal(3.5, 0.5), 2))
        risk = 0.6 * (math.log1p(amount) - 3.5) + 1.0 * row["is_night"] - 3.2
        if rng.random() < 0.9:
            seconds = float(rng.exponential(20000.0))
            row["seconds_since_prev_txn"] = seconds
            row["amount_to_mean_30d"] = float(rng.lognormal(0.0, 0.5))
            if channel == "card_present" and rng.random() < 0.7:
                distance = float(rng.exponential(30.0))
                row["distance_from_prev_km"] = distance
                row["speed_from_prev_kmh"] = distance / max(seconds, 1.0) * 3600.0
                risk += 1.5 * (row["speed_from_prev_kmh"] > 800)
        row.update(_card_profile(profile_rng, channel))
        if rng.random() < 0.7:
            rate = float(rng.beta(0.5, 20.0))
            row["terminal_fraud_rate_7d"] = rate
            row["terminal_fraud_rate_30d"] = float(rng.beta(0.5, 20.0))
            risk += 8.0 * rate
        is_fraud = int(rng.random() < 1.0 / (1.0 + math.exp(-risk)))
        row["is_fraud"] = is_fraud
        row["fraud_scenario"] = str(rng.choice(FRAUD_SCENARIOS)) if is_fraud else ""
        rows.append(row)
    return rows


def _card_profile(rng, channel: str) -> Dict:
    """Card-profile features of a row; none for a card without history in the last 30 days."""
    if rng.random() < 0.1:
        return {}
    out = {"merchant_category_share_30d": float(rng.beta(1.0, 4.0)),
           "channel_share_30d": float(rng.beta(2.0, 2.0)),
           "hours_from_usual_time": float(rng.uniform(0.0, 12.0))}
    if rng.random() < 0.8:
        out["amount_to_category_mean_30d"] = float(rng.lognormal(0.0, 0.5))
    if channel == "card_present" and rng.random() < 0.8:
        out["distance_from_usual_location_km"] = float(rng.exponential(20.0))
    return out


def write_examples(path: str, rows: List[Dict]) -> None:
    """Writes rows as gzipped tf.Example TFRecords, like FeatureGen."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for row in rows:
            writer.write(features.to_example(row).SerializeToString())


def pipeline_schema() -> schema_pb2.Schema:
    """The curated raw schema the pipeline imports (required features have shape [1])."""
    with open(DEFAULT_SCHEMA_PATH) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


def variable_length_schema() -> schema_pb2.Schema:
    """A raw schema declaring every feature variable-length, as an inferred schema may."""
    return schema_utils.schema_from_feature_spec(
        {name: tf.io.VarLenFeature(_DTYPES[kind]) for name, kind in features.FEATURE_TYPES.items()})


def analyze(train_pattern: str, schema: schema_pb2.Schema, output_dir: str,
            temp_dir: str, exclude: Sequence[str] = ()) -> tft.TFTransformOutput:
    """Runs preprocessing_fn's analysis on Beam over TFRecords, as TFX Transform does."""
    source = tfxio.TFExampleRecord(file_pattern=train_pattern, schema=schema)
    preprocessing_fn = functools.partial(preprocessing.preprocessing_fn,
                                         custom_config={"exclude_features": list(exclude)})
    with beam.Pipeline() as pipeline:
        with tft_beam.Context(temp_dir=temp_dir, force_tf_compat_v1=False):
            raw = pipeline | "Read" >> source.BeamSource()
            transform_fn = ((raw, source.TensorAdapterConfig())
                            | tft_beam.AnalyzeDataset(preprocessing_fn))
            _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    # TFX Transform writes the raw schema beside the transform graph.
    metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema),
                               os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    return tft.TFTransformOutput(output_dir)


def parse_raw(tf_transform_output: tft.TFTransformOutput, rows: List[Dict]):
    """Raw feature tensors of rows, parsed with the Transform's raw feature spec."""
    serialized = [features.to_example(row).SerializeToString() for row in rows]
    return tf.io.parse_example(serialized, tf_transform_output.raw_feature_spec())


# ---------------------------------------------------------------------------
# Tests.

TRAIN_ROWS, EVAL_ROWS = 1200, 300


# test_trainer.py imports `raw_data`, which gives pytest a second definition of
# it; both find the data here, so the analysis runs once per session.
_RAW_DATA = pytest.StashKey[Dict]()


def _make_raw_data(root) -> Dict:
    train_rows = make_feature_rows(TRAIN_ROWS, seed=11)
    eval_rows = make_feature_rows(EVAL_ROWS, seed=12, first_id=TRAIN_ROWS)
    write_examples(str(root / "examples" / "Split-train" / "data.gz"), train_rows)
    write_examples(str(root / "examples" / "Split-eval" / "data.gz"), eval_rows)
    transform_output = analyze(str(root / "examples" / "Split-train" / "*"), pipeline_schema(),
                               str(root / "transform_graph"), str(root / "tmp"))
    return {"root": root, "train_rows": train_rows, "eval_rows": eval_rows,
            "transform_output": transform_output}


@pytest.fixture(scope="session")
def raw_data(request, tmp_path_factory):
    """Raw train/eval examples in the Examples artifact layout and their Transform graph.

    Shared with tests/test_trainer.py; the analysis runs on the train split, as
    TFX Transform's default.
    """
    stash = request.config.stash
    if _RAW_DATA not in stash:
        stash[_RAW_DATA] = _make_raw_data(tmp_path_factory.mktemp("raw_data"))
    return stash[_RAW_DATA]


@pytest.fixture(scope="module")
def train_rows(raw_data):
    return raw_data["train_rows"]


@pytest.fixture(scope="module")
def transform_output(raw_data):
    return raw_data["transform_output"]


@pytest.fixture(scope="module")
def variable_length_transform_output(tmp_path_factory, train_rows):
    """The same analysis with every feature declared variable-length in the schema."""
    root = tmp_path_factory.mktemp("transform_varlen")
    write_examples(str(root / "train" / "data.gz"), train_rows)
    return analyze(str(root / "train" / "*"), variable_length_schema(),
                   str(root / "output"), str(root / "tmp"))


def _transform(tf_transform_output, rows):
    layer = tf_transform_output.transform_features_layer()
    return {k: v.numpy() for k, v in layer(parse_raw(tf_transform_output, rows)).items()}


def test_transformed_schema_matches_golden(transform_output):
    schema = transform_output.transformed_metadata.schema
    if os.environ.get("RISKPIPE_REGENERATE_GOLDEN") == "1":
        os.makedirs(os.path.dirname(GOLDEN_SCHEMA), exist_ok=True)
        with open(GOLDEN_SCHEMA, "w") as f:
            f.write(text_format.MessageToString(schema))
    with open(GOLDEN_SCHEMA) as f:
        golden = text_format.Parse(f.read(), schema_pb2.Schema())
    assert schema == golden, (
        "transformed schema changed; see the module docstring to regenerate the golden file:\n"
        + text_format.MessageToString(schema))


def test_every_model_feature_becomes_a_model_input(transform_output):
    spec = transform_output.transformed_feature_spec()
    for name in features.MODEL_FEATURES:
        if name in preprocessing.CYCLIC_FEATURES:
            assert preprocessing.transformed_name(name + "_sin") in spec
        else:
            assert preprocessing.transformed_name(name) in spec
    for name in features.OPTIONAL_FEATURES:
        assert preprocessing.missing_indicator_name(name) in spec
    assert not {"transaction_id", "card_id", "terminal_id", "fraud_scenario"} & set(spec)
    assert spec[features.LABEL_KEY].dtype == tf.int64


def test_log_amounts_are_z_scored_over_the_training_split(transform_output, train_rows):
    out = _transform(transform_output, train_rows)
    amount = out["amount_xf"]
    assert abs(amount.mean()) < 1e-3
    assert abs(amount.std() - 1.0) < 1e-2
    logs = np.log1p([row["amount"] for row in train_rows])
    expected = (logs - logs.mean()) / logs.std()
    np.testing.assert_allclose(amount, expected, atol=1e-3)


def test_optional_features_are_imputed_with_a_missing_indicator(transform_output, train_rows):
    out = _transform(transform_output, train_rows)
    for name in features.OPTIONAL_FEATURES:
        absent = np.array([name not in row for row in train_rows])
        assert 0 < absent.sum() < len(train_rows), name
        np.testing.assert_array_equal(out[preprocessing.missing_indicator_name(name)],
                                      absent.astype(np.float32))
    # Statistics over the present values only: absent rows sit at the mean.
    seconds = out["seconds_since_prev_txn_xf"]
    present = np.array(["seconds_since_prev_txn" in row for row in train_rows])
    assert np.all(seconds[~present] == 0.0)
    assert abs(seconds[present].mean()) < 1e-3
    rate = out["terminal_fraud_rate_7d_xf"]
    present_rates = np.array([row.get("terminal_fraud_rate_7d", np.nan) for row in train_rows])
    known = ~np.isnan(present_rates)
    np.testing.assert_allclose(rate[known], present_rates[known], atol=1e-6)
    np.testing.assert_allclose(rate[~known], present_rates[known].mean(), atol=1e-4)


def test_unseen_category_maps_to_the_oov_bucket(transform_output, train_rows):
    row = dict(train_rows[0], merchant_category="casino")
    ids = _transform(transform_output, [row, train_rows[0]])["merchant_category_xf"]
    vocab_size = transform_output.vocabulary_size_by_name("merchant_category")
    assert vocab_size == len(MERCHANT_CATEGORIES)
    assert ids[0] == vocab_size
    assert 0 <= ids[1] < vocab_size
    assert transform_output.num_buckets_for_transformed_feature("merchant_category_xf") == (
        vocab_size + preprocessing.NUM_OOV_BUCKETS)


def test_hour_of_day_is_cyclic(transform_output, train_rows):
    late = dict(train_rows[0], hour_of_day=23)
    early = dict(train_rows[0], hour_of_day=0)
    out = _transform(transform_output, [late, early])
    distance = math.hypot(out["hour_of_day_sin_xf"][0] - out["hour_of_day_sin_xf"][1],
                          out["hour_of_day_cos_xf"][0] - out["hour_of_day_cos_xf"][1])
    assert distance < 0.3


def test_label_passes_through_and_its_counts_are_recorded(transform_output, train_rows):
    out = _transform(transform_output, train_rows)
    labels = np.array([row["is_fraud"] for row in train_rows])
    np.testing.assert_array_equal(out["is_fraud"], labels)
    path = transform_output.vocabulary_file_by_name(preprocessing.LABEL_COUNTS_VOCAB)
    with tf.io.gfile.GFile(path) as f:
        counts = {label: int(count) for count, label in (line.split() for line in f)}
    assert counts == {"0": int((labels == 0).sum()), "1": int((labels == 1).sum())}


def test_variable_length_required_features_give_the_same_transform(
        transform_output, variable_length_transform_output, train_rows):
    dense = _transform(transform_output, train_rows[:50])
    sparse = _transform(variable_length_transform_output, train_rows[:50])
    assert set(dense) == set(sparse)
    for name in dense:
        np.testing.assert_allclose(dense[name], sparse[name], atol=1e-5, err_msg=name)


def test_absent_required_feature_fails_naming_it(variable_length_transform_output, train_rows):
    row = {k: v for k, v in train_rows[0].items() if k != "amount"}
    # The layer's error message quotes the assertion message with escapes.
    absent = r"required feature .{0,3}amount.{0,3} is absent"
    with pytest.raises(tf.errors.InvalidArgumentError, match=absent):
        _transform(variable_length_transform_output, [row, train_rows[1]])

"""Online/batch parity through the client: what `riskpipe score` sends equals FeatureGen's.

A stream is featurized by FeatureGen (Beam) and scored by `riskpipe score`
against a gRPC PredictionService that records every request it receives; the
features on the wire must equal FeatureGen's examples for the same
transactions, feature for feature, including which optional features are absent.
"""
import dataclasses
import glob
import json
import math
import os
from typing import Dict, List

import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2

from components.feature_gen.executor import featurize
from components.features import MODEL_FEATURES, OPTIONAL_FEATURES, from_example
from components.transactions import Transaction

from engine_helpers import FIXED_SCORE, MODEL_VERSION, run_score
from synthetic_transactions import random_stream, write_partitions


@dataclasses.dataclass(frozen=True)
class Featurized:
    stream: List[Transaction]
    raw_dir: str
    # transaction_id -> FeatureGen's model features
    batch: Dict[str, Dict]


@pytest.fixture(name="featurized", scope="module")
def fixture_featurized(tmp_path_factory):
    """A 10-day stream in the partition layout and FeatureGen's features of it."""
    root = tmp_path_factory.mktemp("parity")
    stream = random_stream(400, days=10, cards=25, terminals=8, seed=11)
    raw = root / "raw"
    write_partitions(stream, str(raw))
    out = root / "featuregen"
    featurize(str(raw), str(out), eval_days=3)
    batch = {}
    for path in glob.glob(os.path.join(out, "Split-*", "*.gz")):
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            feats = from_example(example_pb2.Example.FromString(record.numpy()))
            batch[feats["transaction_id"]] = {k: v for k, v in feats.items()
                                              if k in MODEL_FEATURES}
    assert len(batch) == len(stream)
    return Featurized(stream=stream, raw_dir=str(raw), batch=batch)


def read_records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def sent_examples(service):
    for request in service.requests:
        (serialized,) = request.inputs["examples"].string_val
        yield request, from_example(example_pb2.Example.FromString(serialized))


def test_features_sent_by_the_client_equal_featuregen(tmp_path, recording_server, featurized):
    address, service = recording_server
    output = tmp_path / "decisions.jsonl"
    assert run_score(["--server", address, "--input", featurized.raw_dir,
                      "--output", str(output)]) == 0
    records = read_records(output)
    assert [r["transaction_id"] for r in records] == [t.transaction_id
                                                      for t in featurized.stream]
    assert len(service.requests) == len(records)
    optional_absent = 0
    for record, (request, sent) in zip(records, sent_examples(service)):
        assert request.model_spec.name == "fraud"
        assert request.model_spec.signature_name == "serving_default"
        assert not request.model_spec.version_label  # no routing file: the server's latest
        assert sent == featurized.batch[record["transaction_id"]], record["transaction_id"]
        optional_absent += len(MODEL_FEATURES) - len(sent)
        assert record["score"] == FIXED_SCORE and record["model_version"] == MODEL_VERSION
    # The stream exercises absent optional features (first transactions, card-not-present).
    assert optional_absent > 0


def test_scoring_later_days_after_a_history_keeps_parity(tmp_path, recording_server,
                                                         featurized):
    """--history replays the earlier days into the online state without scoring them."""
    address, service = recording_server
    cut = featurized.stream[0].timestamp // 86400 * 86400 + 7 * 86400
    history, later = tmp_path / "history", tmp_path / "later"
    write_partitions([t for t in featurized.stream if t.timestamp < cut], str(history))
    write_partitions([t for t in featurized.stream if t.timestamp >= cut], str(later))
    output = tmp_path / "decisions.jsonl"
    assert run_score(["--server", address, "--input", str(later), "--history", str(history),
                      "--output", str(output)]) == 0
    records = read_records(output)
    assert records and all(r["timestamp"] >= cut for r in records)
    assert len(service.requests) == len(records)
    sent = list(sent_examples(service))
    for record, (_, features) in zip(records, sent):
        assert features == featurized.batch[record["transaction_id"]], record["transaction_id"]
    # Without the history the first scored transaction would see an empty card window.
    assert sent[0][1]["card_txn_count_30d"] > 0


def test_raw_tensors_sent_to_serving_raw_equal_featuregen(tmp_path, recording_server,
                                                          featurized):
    address, service = recording_server
    output = tmp_path / "decisions.jsonl"
    assert run_score(["--server", address, "--input", featurized.raw_dir,
                      "--output", str(output), "--signature", "serving_raw"]) == 0
    records = read_records(output)
    assert len(service.requests) == len(records) == len(featurized.stream)
    for record, request in zip(records, service.requests):
        assert request.model_spec.signature_name == "serving_raw"
        assert set(request.inputs) == set(MODEL_FEATURES)
        expected = featurized.batch[record["transaction_id"]]
        for name, tensor in request.inputs.items():
            (value,) = tf.make_ndarray(tensor).tolist()
            if isinstance(value, bytes):
                value = value.decode()
            if name in expected:
                assert value == expected[name], (record["transaction_id"], name)
            else:
                # An undefined optional feature travels as NaN, as the signature expects.
                assert name in OPTIONAL_FEATURES and math.isnan(value)


def test_labels_and_ids_never_reach_the_model(tmp_path, recording_server, featurized):
    address, service = recording_server
    assert run_score(["--server", address, "--input", featurized.raw_dir, "--output",
                      str(tmp_path / "d.csv")]) == 0
    assert service.requests
    for _, sent in sent_examples(service):
        assert set(sent) <= set(MODEL_FEATURES)

"""`riskpipe score`: outputs, summary, and the one-line errors users get for bad input."""
import csv
import json
import socket

import grpc
import pytest

from common.errors import DataError, UsageError
from engine.risk_engine import summarize
from engine.routing import CANARY, STABLE, ModelRouting, write_model_routing

from engine_helpers import (FIXED_SCORE, MODEL_VERSION, RecordingPredictionService, run_score,
                            start_recording_server)
from synthetic_transactions import random_stream, write_partitions

HEADER = ("transaction_id,timestamp,card_id,customer_id,terminal_id,amount,merchant_category,"
          "channel,latitude,longitude\n")


def write_csv(path, rows, header=HEADER):
    path.write_text(header + "".join(row + "\n" for row in rows))
    return str(path)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jsonl_records_carry_decision_reasons_and_version(tmp_path, recording_server, capsys):
    address, _ = recording_server
    raw = tmp_path / "raw"
    stream = random_stream(60, days=3, seed=5)
    write_partitions(stream, str(raw))
    out = tmp_path / "d.jsonl"
    assert run_score(["--server", address, "--input", str(raw), "--output", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 60
    timestamps = [r["timestamp"] for r in records]
    assert timestamps == sorted(timestamps)
    for record in records:
        assert record["decision"] in ("APPROVE", "REVIEW", "BLOCK")
        assert record["model_version"] == MODEL_VERSION and record["score"] == FIXED_SCORE
        assert any(f"model version {MODEL_VERSION}" in reason for reason in record["reasons"])
        assert record["is_fraud"] in (0, 1)
    summary = capsys.readouterr().out
    assert "model version" in summary and str(MODEL_VERSION) in summary
    assert "FP rate" in summary


def test_csv_output_has_the_record_header(tmp_path, recording_server):
    address, _ = recording_server
    path = write_csv(tmp_path / "t.csv", [
        "a1,1700000000,c1,u1,m1,12.5,grocery,card_present,48.1,11.5",
        "a2,1700000060,c1,u1,m2,5000,electronics,card_not_present,,",
    ])
    out = tmp_path / "d.csv"
    assert run_score(["--server", address, "--input", path, "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["transaction_id"] for r in rows] == ["a1", "a2"]
    # The second is a large amount on a card first seen a minute earlier.
    assert rows[1]["decision"] == "REVIEW"
    assert rows[1]["rules_fired"] == "new_card_large_amount"
    assert rows[0]["is_fraud"] == ""  # no labels in the input


def test_labels_give_caught_missed_and_false_positive_rate():
    records = [
        {"decision": "BLOCK", "model_version": 1, "is_fraud": 1, "score": 0.95, "error": ""},
        {"decision": "APPROVE", "model_version": 1, "is_fraud": 1, "score": 0.1, "error": ""},
        {"decision": "REVIEW", "model_version": 1, "is_fraud": 0, "score": 0.6, "error": ""},
        {"decision": "APPROVE", "model_version": 1, "is_fraud": 0, "score": 0.2, "error": ""},
        {"decision": "APPROVE", "model_version": 2, "is_fraud": 0, "score": 0.2, "error": ""},
    ]
    summary = summarize(records)
    assert summary["1"]["fraud_caught"] == 1 and summary["1"]["fraud_missed"] == 1
    assert summary["1"]["false_positive_rate"] == 0.5
    assert summary["2"]["false_positive_rate"] == 0.0
    assert summary["all"]["requests"] == 5


def test_a_transaction_that_fails_is_reported_not_dropped(tmp_path, capsys):
    def refuse_large(request):
        example = request.inputs["examples"].string_val[0]
        if b"electronics" in example:
            return grpc.StatusCode.INVALID_ARGUMENT, "cannot score this one"
        return None

    service = RecordingPredictionService(fail_when=refuse_large)
    server, address = start_recording_server(service)
    try:
        path = write_csv(tmp_path / "t.csv", [
            "a1,1700000000,c1,u1,m1,12.5,grocery,card_present,48.1,11.5",
            "a2,1700000060,c2,u2,m2,50,electronics,card_not_present,,",
            "a3,1700000120,c3,u3,m1,7,fuel,card_present,48.1,11.5",
        ])
        out = tmp_path / "d.jsonl"
        assert run_score(["--server", address, "--input", path, "--output", str(out)]) == 1
    finally:
        server.stop(grace=None)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["transaction_id"] for r in records] == ["a1", "a2", "a3"]
    failed = records[1]
    assert failed["error"].startswith("INVALID_ARGUMENT")
    assert failed["score"] is None and failed["decision"] == "REVIEW"  # on_model_error
    assert "not scored: a2: INVALID_ARGUMENT" in capsys.readouterr().err


def test_unreachable_servers_are_a_one_line_usage_error(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["a1,1700000000,c1,u1,m1,1,fuel,card_present,1,1"])
    out = tmp_path / "d.jsonl"
    with pytest.raises(UsageError, match=r"--server: no server is reachable \(127\.0\.0\.1"):
        run_score(["--server", f"127.0.0.1:{free_port()}", "--input", path,
                   "--output", str(out)])
    assert not out.exists()


def test_bad_policy_file_is_a_usage_error_naming_the_field(tmp_path, recording_server):
    address, _ = recording_server
    policy = tmp_path / "p.yaml"
    policy.write_text("thresholds: {review: 0.5}\n")
    path = write_csv(tmp_path / "t.csv", ["a1,1700000000,c1,u1,m1,1,fuel,card_present,1,1"])
    with pytest.raises(UsageError, match=r"p\.yaml\.thresholds\.block: required field"):
        run_score(["--server", address, "--input", path, "--policy", str(policy)])


@pytest.mark.parametrize("header, row, message", [
    ("transaction_id,timestamp,card_id,amount\n", "a1,1700000000,c1,5",
     r"t\.csv: missing column\(s\) customer_id"),
    (HEADER, "a1,1700000000,c1,u1,m1,abc,fuel,card_present,1,1",
     r"t\.csv:2: column 'amount': cannot parse 'abc'"),
    (HEADER, "a1,1700000000,,u1,m1,5,fuel,card_present,1,1",
     r"t\.csv:2: column 'card_id': empty value"),
    (HEADER, "a1,1700000000,c1,u1,m1,5,fuel,teleport,1,1", r"t\.csv:2: column 'channel'"),
    (HEADER, "a1,1700000000,c1,u1,m1,5,fuel,card_present,1,1\n"
             "a1,1700000060,c1,u1,m1,6,fuel,card_present,1,1",
     r"t\.csv: column 'transaction_id': 'a1' appears more than once"),
])
def test_input_missing_required_fields_is_a_data_error(tmp_path, recording_server, header,
                                                       row, message):
    address, service = recording_server
    path = write_csv(tmp_path / "t.csv", [row], header=header)
    out = tmp_path / "d.jsonl"
    with pytest.raises(DataError, match=message):
        run_score(["--server", address, "--input", path, "--output", str(out)])
    assert not out.exists()
    assert service.requests == []


def test_routing_file_sends_version_labels_by_card(tmp_path, recording_server):
    address, service = recording_server
    routing = tmp_path / "models.config.routing.json"
    write_model_routing(str(routing), "fraud", ModelRouting(canary_version=7, canary_share=0.5))
    raw = tmp_path / "raw"
    write_partitions(random_stream(200, days=2, cards=40, seed=9), str(raw))
    out = tmp_path / "d.jsonl"
    assert run_score(["--server", address, "--input", str(raw), "--output", str(out),
                      "--routing-file", str(routing)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    labels = {}
    for record, request in zip(records, service.requests):
        assert request.model_spec.version_label == record["version_label"]
        labels.setdefault(record["card_id"], set()).add(record["version_label"])
    assert all(len(seen) == 1 for seen in labels.values())  # a card never switches
    assert {label for seen in labels.values() for label in seen} == {STABLE, CANARY}

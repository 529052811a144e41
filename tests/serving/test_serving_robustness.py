"""Garbage in, an error status out, and the server keeps serving; batching, metrics, REST,
and a clean SIGTERM."""
import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import grpc
import numpy as np
import portpicker
import pytest
import tensorflow as tf
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

import model_fixtures
from serving_helpers import (Client, classification_request, predict_request, regression_request,
                             running_server, serialized_examples, server_options, wait_for)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def examples(tiny_model_dir):
    return serialized_examples(tiny_model_dir)


@pytest.fixture
def tiny_base(tiny_model_dir, base_path):
    model_fixtures.publish_version(tiny_model_dir, base_path, 1)
    return base_path


def assert_still_serving(client: Client, examples) -> None:
    response = client.prediction.Predict(predict_request(examples), timeout=10)
    assert tf.make_ndarray(response.outputs["fraud_probability"]).shape == (len(examples),)


def write_batching_parameters(path, **values) -> str:
    with open(path, "w") as handle:
        for key, value in values.items():
            handle.write(f"{key} {{ value: {value} }}\n")
    return str(path)


def test_undecodable_request_bytes_are_invalid_argument(tiny_base, examples):
    with running_server(server_options(tiny_base)) as server:
        client = Client(f"127.0.0.1:{server.port}")
        raw_predict = client.channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        with pytest.raises(grpc.RpcError) as raised:
            raw_predict(b"\x0a\xff\xff\xff\xff\x0f garbage", timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Could not parse Predict request" in raised.value.details()
        assert_still_serving(client, examples)
        client.close()


def test_oversized_request_is_resource_exhausted(tiny_base, examples):
    options = server_options(
        tiny_base, grpc_channel_arguments="grpc.max_receive_message_length=1048576")
    with running_server(options) as server:
        client = Client(f"127.0.0.1:{server.port}")
        huge = predict_request(examples * (2 * 1048576 // sum(map(len, examples))))
        with pytest.raises(grpc.RpcError) as raised:
            client.prediction.Predict(huge, timeout=30)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert_still_serving(client, examples)
        client.close()


def test_batching_merges_concurrent_requests_and_isolates_a_bad_one(tiny_base, examples,
                                                                    tmp_path):
    params = write_batching_parameters(tmp_path / "batching.config", max_batch_size=64,
                                       batch_timeout_micros=20000, num_batch_threads=1)
    expected_by_example = {}
    with running_server(server_options(tiny_base)) as plain:
        client = Client(f"127.0.0.1:{plain.port}")
        for example in examples:
            response = client.prediction.Predict(predict_request([example]))
            expected_by_example[example] = float(
                tf.make_ndarray(response.outputs["fraud_probability"])[0])
        client.close()

    options = server_options(tiny_base, enable_batching=True, batching_parameters_file=params)
    with running_server(options) as server:
        client = Client(f"127.0.0.1:{server.port}")
        results, errors = {}, {}
        garbage = b"\x0a\x80\x01 not an example"

        def send(index: int):
            batch = [garbage] if index == 5 else [examples[index % len(examples)]]
            try:
                response = client.prediction.Predict(predict_request(batch), timeout=30)
                results[index] = (batch[0], float(
                    tf.make_ndarray(response.outputs["fraud_probability"])[0]))
            except grpc.RpcError as err:
                errors[index] = err.code()

        threads = [threading.Thread(target=send, args=(index,)) for index in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == {5: grpc.StatusCode.INVALID_ARGUMENT}
        assert len(results) == 15
        for example, score in results.values():
            assert score == pytest.approx(expected_by_example[example], abs=1e-6)
        stats = server.batch_scheduler.stats()
        assert stats["batches"] < stats["tasks"], stats

        too_big = predict_request(examples * 40)  # more rows than max_batch_size
        with pytest.raises(grpc.RpcError) as raised:
            client.prediction.Predict(too_big, timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "larger than maximum input batch size 64" in raised.value.details()
        assert_still_serving(client, examples)
        client.close()


METRICS_PATH = "/monitoring/prometheus/metrics"


def monitored_options(base: str, tmp_path):
    """Server options that export Prometheus metrics on a REST port."""
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}')
    return server_options(base, monitoring_config_file=str(monitoring),
                          rest_api_port=portpicker.pick_unused_port())


def scrape(server) -> str:
    url = f"http://127.0.0.1:{server.rest_port}{METRICS_PATH}"
    return urllib.request.urlopen(url, timeout=10).read().decode()


def _metric_samples(text: str) -> dict:
    """(sample name, sorted labels) -> value of a Prometheus exposition."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_prometheus_metrics_carry_tf_serving_names_and_the_version(tiny_base, examples, tmp_path):
    with running_server(monitored_options(tiny_base, tmp_path)) as server:
        client = Client(f"127.0.0.1:{server.port}")
        for _ in range(3):
            client.prediction.Predict(predict_request(examples))
        with pytest.raises(grpc.RpcError):
            client.prediction.Predict(predict_request(examples, model_name="nope"))
        text = scrape(server)
        client.close()
    # TF Serving's exact sample names (no _total suffix on counters).
    assert ':tensorflow:serving:request_count{model_name="fraud",status="OK",version="1"} 3' in text
    samples = _metric_samples(text)
    missing = (":tensorflow:serving:request_count_total",  # the parser's spelling
               (("model_name", "nope"), ("status", "NOT_FOUND"), ("version", "")))
    assert samples[missing] == 1
    latency = (":tensorflow:serving:request_latency_count",
               (("API", "Predict"), ("entrypoint", "GRPC"), ("model_name", "fraud"),
                ("version", "1")))
    assert samples[latency] == 3
    model_cpu = ("riskpipe_serving_model_cpu_seconds_total",
                 (("model_name", "fraud"), ("version", "1")))
    assert samples[model_cpu] > 0


def test_grpc_and_rest_requests_move_the_same_metrics(tiny_base, examples, tmp_path):
    with running_server(monitored_options(tiny_base, tmp_path)) as server:
        client = Client(f"127.0.0.1:{server.port}")
        client.prediction.Predict(predict_request(examples))
        with pytest.raises(grpc.RpcError):
            client.prediction.Predict(predict_request(examples, model_name="nope"))
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "fraud"
        client.model.GetModelStatus(status_request)
        metadata_request = get_model_metadata_pb2.GetModelMetadataRequest(
            metadata_field=["signature_def"])
        metadata_request.model_spec.name = "fraud"
        client.prediction.GetModelMetadata(metadata_request)
        client.close()
        rest = f"http://127.0.0.1:{server.rest_port}"
        body = {"instances": [{"b64": base64.b64encode(examples[0]).decode()}]}
        _post_json(f"{rest}/v1/models/fraud:predict", body)
        with pytest.raises(urllib.error.HTTPError):
            _post_json(f"{rest}/v1/models/nope:predict", body)
        urllib.request.urlopen(f"{rest}/v1/models/fraud", timeout=10).read()
        urllib.request.urlopen(f"{rest}/v1/models/fraud/metadata", timeout=10).read()
        samples = _metric_samples(scrape(server))

    def latency_count(api, model, version, entrypoint):
        labels = (("API", api), ("entrypoint", entrypoint), ("model_name", model),
                  ("version", version))
        return samples.get((":tensorflow:serving:request_latency_count", labels), 0)

    for api, model, version in (("Predict", "fraud", "1"), ("Predict", "nope", ""),
                                ("GetModelStatus", "fraud", ""),
                                ("GetModelMetadata", "fraud", "1")):
        assert latency_count(api, model, version, "GRPC") == 1, (api, model)
        assert latency_count(api, model, version, "REST") == 1, (api, model)
    counts = {labels: value for (name, labels), value in samples.items()
              if name == ":tensorflow:serving:request_count_total"}
    assert counts == {(("model_name", "fraud"), ("status", "OK"), ("version", "1")): 4,
                      (("model_name", "fraud"), ("status", "OK"), ("version", "")): 2,
                      (("model_name", "nope"), ("status", "NOT_FOUND"), ("version", "")): 2}
    runtime = (("API", "Predict"), ("model_name", "fraud"), ("runtime", "TF2"), ("version", "1"))
    assert samples[(":tensorflow:serving:runtime_latency_count", runtime)] == 2


def test_rest_predict_and_status(tiny_base, examples):
    options = server_options(tiny_base, rest_api_port=portpicker.pick_unused_port())
    with running_server(options) as server:
        client = Client(f"127.0.0.1:{server.port}")
        grpc_scores = tf.make_ndarray(
            client.prediction.Predict(predict_request(examples)).outputs["fraud_probability"])
        client.close()
        base = f"http://127.0.0.1:{server.rest_port}/v1/models/fraud"
        body = json.dumps({"instances": [{"b64": base64.b64encode(e).decode()} for e in examples]})
        request = urllib.request.Request(f"{base}:predict", data=body.encode(), method="POST")
        predictions = json.load(urllib.request.urlopen(request, timeout=10))["predictions"]
        np.testing.assert_allclose(predictions, grpc_scores, rtol=1e-6)
        status = json.load(urllib.request.urlopen(base, timeout=10))
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        # The fleet's readiness probe: metadata of the version a label names.
        metadata = json.load(urllib.request.urlopen(f"{base}/versions/1/metadata", timeout=10))
        assert metadata["model_spec"]["version"] == "1"
        signatures = metadata["metadata"]["signature_def"]["signature_def"]
        assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(f"{base}/labels/stable/metadata", timeout=10)
        assert raised.value.code == 400  # no such label: not ready
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(f"{base}/labels/canary", timeout=10)
        assert raised.value.code == 400
        # A body claiming more than the request size limit is refused unread.
        connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=10)
        connection.putrequest("POST", "/v1/models/fraud:predict")
        connection.putheader("Content-Length", str(10 ** 12))
        connection.endheaders(b"{}")
        refused = connection.getresponse()
        assert refused.status == 400 and "at most" in json.load(refused)["error"]
        connection.close()
        assert urllib.request.urlopen(base, timeout=10).status == 200


def _json_features(serialized: bytes) -> dict:
    """A tf.Example as TF Serving's REST API takes it: {feature: value or list}."""
    features = {}
    for name, feature in tf.train.Example.FromString(serialized).features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value)
        if kind == "bytes_list":
            values = [{"b64": base64.b64encode(value).decode()} for value in values]
        features[name] = values
    return features


def _post_json(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    return json.load(urllib.request.urlopen(request, timeout=10))


def test_rest_classify_and_regress_answer_as_grpc_does(tiny_base, examples):
    options = server_options(tiny_base, rest_api_port=portpicker.pick_unused_port())
    with running_server(options) as server:
        client = Client(f"127.0.0.1:{server.port}")
        classified = client.prediction.Classify(classification_request(examples))
        regressed = client.prediction.Regress(regression_request(examples))
        client.close()
        base = f"http://127.0.0.1:{server.rest_port}/v1/models/fraud"
        rows = [_json_features(serialized) for serialized in examples]
        results = _post_json(f"{base}:classify", {"signature_name": "classification",
                                                  "examples": rows})["results"]
        expected = [[[entry.label, entry.score] for entry in result.classes]
                    for result in classified.result.classifications]
        assert [[label for label, _ in row] for row in results] == \
            [[label for label, _ in row] for row in expected]
        np.testing.assert_allclose([[score for _, score in row] for row in results],
                                   [[score for _, score in row] for row in expected], rtol=1e-6)
        # The first example's features as a shared context give the same answer for it.
        values = _post_json(f"{base}/versions/1:regress", {
            "signature_name": "regression", "context": rows[0], "examples": [{}]})["results"]
        np.testing.assert_allclose(values, [regressed.result.regressions[0].value], rtol=1e-6)
        for bad_value in ([True], [1, "a"], 2 ** 70, {"b64": "not base64!"}):
            bad = {"signature_name": "regression", "examples": [dict(rows[0], amount=bad_value)]}
            with pytest.raises(urllib.error.HTTPError) as raised:
                _post_json(f"{base}:regress", bad)
            assert raised.value.code == 400, bad_value
            assert "feature amount" in json.load(raised.value)["error"]


def _deployment_probe_paths() -> dict:
    with open(os.path.join(ROOT, "kubeflow", "manifests", "deployment.yaml"),
              encoding="utf-8") as handle:
        container = yaml.safe_load(handle)["spec"]["template"]["spec"]["containers"][0]
    return {probe: container[probe]["httpGet"]["path"]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe")}


def test_the_fleets_http_probes_are_answered_once_the_stable_label_is_served(tiny_base,
                                                                             tmp_path):
    config = tmp_path / "models.config"
    entry = f'name: "fraud" base_path: "{tiny_base}" model_platform: "tensorflow"'
    config.write_text(f"model_config_list {{ config {{ {entry} }} }}")
    options = server_options("", model_config_file=str(config),
                             rest_api_port=portpicker.pick_unused_port())
    with running_server(options) as server:
        url = f"http://127.0.0.1:{server.rest_port}"
        paths = _deployment_probe_paths()
        assert urllib.request.urlopen(url + paths["livenessProbe"], timeout=10).status == 200
        with pytest.raises(urllib.error.HTTPError):  # no `stable` label yet: not ready
            urllib.request.urlopen(url + paths["readinessProbe"], timeout=10)
        labelled = f'{entry} version_labels {{ key: "stable" value: 1 }}'
        config.write_text(f"model_config_list {{ config {{ {labelled} }} }}")
        wait_for(lambda: _ok(url + paths["readinessProbe"]))
        assert urllib.request.urlopen(url + paths["startupProbe"], timeout=10).status == 200


def _ok(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=10).status == 200
    except urllib.error.HTTPError:
        return False


def test_sigterm_finishes_the_in_flight_request_and_exits(tiny_base, examples, tmp_path):
    # A long batch timeout holds the request in flight while SIGTERM arrives.
    params = write_batching_parameters(tmp_path / "batching.config", max_batch_size=1000,
                                       batch_timeout_micros=2000000)
    command = [sys.executable, "-m", "cli.main", "serve", "--port=0", "--model_name=fraud",
               f"--model_base_path={tiny_base}", "--bind_address=127.0.0.1",
               "--enable_batching=true", f"--batching_parameters_file={params}",
               "--shutdown_grace_seconds=20"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline().rsplit(" ", 1)[-1])
        client = Client(f"127.0.0.1:{port}")
        grpc.channel_ready_future(client.channel).result(timeout=60)
        outcome = {}

        def send():
            try:
                outcome["response"] = client.prediction.Predict(
                    predict_request(examples), timeout=60, wait_for_ready=True)
            except grpc.RpcError as err:
                outcome["error"] = err

        health_ready = threading.Event()
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        health = health_pb2_grpc.HealthStub(client.channel)
        for _ in range(600):
            if health.Check(health_pb2.HealthCheckRequest()).status == \
                    health_pb2.HealthCheckResponse.SERVING:
                health_ready.set()
                break
            threading.Event().wait(0.1)
        assert health_ready.is_set()
        sender = threading.Thread(target=send)
        sender.start()
        threading.Event().wait(0.5)  # the request now waits in the 2 s batch window
        process.send_signal(signal.SIGTERM)
        sender.join(timeout=60)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["response"].model_spec.version.value == 1
        assert process.wait(timeout=60) == 0
        client.close()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)

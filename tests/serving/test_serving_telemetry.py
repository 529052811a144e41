"""What `riskpipe serve` exports for a drift monitor, per version: the scores it returned
(riskpipe_serving_score) and the feature values it was sent (riskpipe_serving_feature_*),
checked against known requests over gRPC and REST, read with prometheus_client's parser."""
import base64
import json
import math
import urllib.request

import grpc
import numpy as np
import portpicker
import pytest
import tensorflow as tf
from google.protobuf import text_format
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.config import model_server_config_pb2

import model_fixtures
from common.errors import UsageError
from common.serving_contract import (CLASSIFICATION, CLASSIFY_METHOD, EXAMPLES_INPUT,
                                     FEATURE_MISSING, FEATURE_VALUE_SUM, FEATURE_VALUES,
                                     OUTPUT_KEY, REGRESS_METHOD, REGRESSION, SCORE, SERVING_RAW)
from serving.metrics import SCORE_BUCKETS, FeatureStats, ServingMetrics
from serving.options import ServerOptions
from serving_helpers import (MODEL_NAME, Client, classification_request, predict_request,
                             regression_request, running_server, server_options)

METRICS_PATH = "/monitoring/prometheus/metrics"
# The server reads features from every Nth transaction each version answers.
EVERY = ServerOptions().feature_stats_sample_every
# The tiny model's serving_raw inputs: the features the server counts.
FEATURES = ("amount", "merchant_category", "channel")


# ---------------------------------------------------------------- the exposition itself

def _samples(text: str) -> dict:
    """(sample name, sorted labels) -> value of a Prometheus exposition."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_scores_land_in_equal_width_buckets_and_non_finite_values_are_not_observed():
    metrics = ServingMetrics()
    metrics.record_scores("fraud", "3", [0.05, 0.050001, 1.0, 1.5, -0.1, math.nan, math.inf])
    stats = FeatureStats.empty(numeric=True)
    stats.add([2.5, math.nan, -math.inf, 4], numeric=True)
    metrics.record_features("fraud", "3", {"amount": stats, "channel": FeatureStats.empty(False)})
    samples = _samples(metrics.exposition())
    labels = (("model_name", "fraud"), ("version", "3"))
    buckets = {le: samples[(f"{SCORE}_bucket", tuple(sorted(labels + (("le", le),))))]
               for le in ("0.05", "0.1", "0.95", "1", "+Inf")}
    assert buckets == {"0.05": 2, "0.1": 3, "0.95": 3, "1": 4, "+Inf": 5}
    assert samples[(f"{SCORE}_count", labels)] == 5
    assert samples[(f"{SCORE}_sum", labels)] == pytest.approx(0.05 + 0.050001 + 1.0 + 1.5 - 0.1)
    assert SCORE_BUCKETS == tuple(round(0.05 * index, 2) for index in range(1, 21))
    amount = tuple(sorted(labels + (("feature", "amount"),)))
    channel = tuple(sorted(labels + (("feature", "channel"),)))
    assert samples[(FEATURE_VALUES, amount)] == 2
    assert samples[(FEATURE_VALUE_SUM, amount)] == 6.5
    assert samples[(FEATURE_MISSING, amount)] == 2
    assert samples[(FEATURE_MISSING, channel)] == 0  # written at zero: a share of 0, not none
    assert (FEATURE_VALUE_SUM, channel) not in samples  # a string has no sum


# ---------------------------------------------------------------- a server answering known requests

@pytest.fixture(scope="module")
def second_model_dir(tmp_path_factory) -> str:
    """The tiny model with another bias: version 2 scores the same transaction differently."""
    return model_fixtures.export_model(str(tmp_path_factory.mktemp("tiny-v2") / "export"),
                                       bias=1.5)


@pytest.fixture
def monitored_server(tiny_model_dir, second_model_dir, base_path, tmp_path):
    """Versions 1 and 2 served side by side, Prometheus metrics on the REST port."""
    model_fixtures.publish_version(tiny_model_dir, base_path, 1)
    model_fixtures.publish_version(second_model_dir, base_path, 2)
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add(name=MODEL_NAME, base_path=base_path,
                                                model_platform="tensorflow")
    text_format.Parse("specific { versions: 1 versions: 2 }", entry.model_version_policy)
    config_file = tmp_path / "models.config"
    config_file.write_text(text_format.MessageToString(config))
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}')
    options = server_options("", model_config_file=str(config_file),
                             monitoring_config_file=str(monitoring),
                             rest_api_port=portpicker.pick_unused_port())
    with running_server(options) as server:
        yield server


def _rows(count: int, start: int) -> list:
    """Transactions as {feature: value}; amounts are multiples of 0.25, exact in float32."""
    categories = model_fixtures.CATEGORIES
    return [{"amount": 0.25 * (start + index + 1),
             "merchant_category": categories[(start + index) % len(categories)],
             "channel": model_fixtures.CHANNELS[(start + index) % 2]} for index in range(count)]


def _example(row: dict) -> bytes:
    """A tf.Example of a row, without the features it lacks; with an identifier, which the
    model ignores and the server must not count."""
    feature = {"transaction_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"t-1"]))}
    for name, value in row.items():
        feature[name] = (tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                         if isinstance(value, float) else
                         tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()])))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _json_features(row: dict) -> dict:
    return {name: [value] for name, value in row.items()}


class Traffic:
    """Sends known transactions to one version and remembers what it answered, in order."""

    def __init__(self, server, version: int):
        self.client = Client(f"127.0.0.1:{server.port}")
        self.rest = f"http://127.0.0.1:{server.rest_port}/v1/models/{MODEL_NAME}/versions/{version}"
        self.version = version
        self.rows = []
        self.scores = []

    def next_rows(self, count: int, **changes) -> list:
        """`count` new rows; `changes[feature]` applies to the first row the server samples."""
        rows = _rows(count, len(self.rows))
        sampled = -len(self.rows) % EVERY
        assert sampled < count, "the request would have no sampled row"
        for feature, value in changes.items():
            if value is None:
                del rows[sampled][feature]
            else:
                rows[sampled][feature] = value
        return rows

    def answered(self, rows: list, scores) -> None:
        self.rows += rows
        self.scores += [float(score) for score in scores]

    def _spec(self, request):
        request.model_spec.version.value = self.version
        return request

    def predict(self, rows: list) -> None:
        request = self._spec(predict_request([_example(row) for row in rows]))
        response = self.client.prediction.Predict(request)
        assert response.model_spec.version.value == self.version
        self.answered(rows, tf.make_ndarray(response.outputs[OUTPUT_KEY]))

    def predict_raw(self, rows: list) -> None:
        request = self._spec(predict_request([], signature=SERVING_RAW))
        del request.inputs[EXAMPLES_INPUT]
        request.inputs["amount"].CopyFrom(tf.make_tensor_proto(
            np.array([row["amount"] for row in rows], np.float32)))
        for name in ("merchant_category", "channel"):
            request.inputs[name].CopyFrom(tf.make_tensor_proto([row[name] for row in rows]))
        response = self.client.prediction.Predict(request)
        self.answered(rows, tf.make_ndarray(response.outputs[OUTPUT_KEY]))

    def unanswered_predict_raw(self) -> None:
        request = self._spec(predict_request([], signature=SERVING_RAW))
        del request.inputs[EXAMPLES_INPUT]
        request.inputs["amount"].CopyFrom(tf.make_tensor_proto(np.float32([1.0])))
        with pytest.raises(grpc.RpcError) as raised:  # the other two inputs are missing
            self.client.prediction.Predict(request)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def classify(self, rows: list) -> None:
        response = self.client.prediction.Classify(
            self._spec(classification_request([_example(row) for row in rows])))
        # The positive class is the second column.
        self.answered(rows, [entry.classes[1].score for entry in response.result.classifications])

    def regress(self, rows: list) -> None:
        response = self.client.prediction.Regress(
            self._spec(regression_request([_example(row) for row in rows])))
        self.answered(rows, [entry.value for entry in response.result.regressions])

    def multi_inference(self, rows: list) -> None:
        request = inference_pb2.MultiInferenceRequest()
        for signature, method in ((CLASSIFICATION, CLASSIFY_METHOD), (REGRESSION, REGRESS_METHOD)):
            task = request.tasks.add(method_name=method)
            task.model_spec.name = MODEL_NAME
            task.model_spec.signature_name = signature
            task.model_spec.version.value = self.version
        for row in rows:
            request.input.example_list.examples.add().ParseFromString(_example(row))
        classified, regressed = self.client.prediction.MultiInference(request).results
        # Two tasks, two scores per transaction; its features were sent once.
        self.answered(rows, [entry.classes[1].score
                             for entry in classified.classification_result.classifications])
        self.scores += [float(entry.value) for entry in regressed.regression_result.regressions]

    def _post(self, verb: str, body: dict) -> dict:
        request = urllib.request.Request(f"{self.rest}:{verb}", data=json.dumps(body).encode(),
                                         method="POST")
        return json.load(urllib.request.urlopen(request, timeout=10))

    def rest_predict(self, rows: list) -> None:
        instances = [{"b64": base64.b64encode(_example(row)).decode()} for row in rows]
        predictions = self._post("predict", {"instances": instances})["predictions"]
        self.answered(rows, np.float32(predictions))

    def rest_predict_raw(self, rows: list) -> None:
        predictions = self._post("predict", {"signature_name": SERVING_RAW, "instances": rows})
        self.answered(rows, np.float32(predictions["predictions"]))

    def rest_regress(self, rows: list) -> None:
        results = self._post("regress", {"signature_name": REGRESSION,
                                         "examples": [_json_features(row) for row in rows]})
        self.answered(rows, np.float32(results["results"]))

    def close(self) -> None:
        self.client.close()


def _expected_features(rows: list) -> dict:
    """feature -> (values, sum or None, missing) over the rows the server samples."""
    sampled = rows[::EVERY]
    expected = {}
    for feature in FEATURES:
        present = [row[feature] for row in sampled
                   if feature in row and not (feature == "amount" and math.isnan(row[feature]))]
        expected[feature] = (len(present), sum(present) if feature == "amount" else None,
                             len(sampled) - len(present))
    return expected


def _exported_features(samples: dict, version: int) -> dict:
    exported = {}
    for (name, labels), value in samples.items():
        labels = dict(labels)
        if name in (FEATURE_VALUES, FEATURE_VALUE_SUM, FEATURE_MISSING) and \
                labels["version"] == str(version):
            assert labels["model_name"] == MODEL_NAME
            exported.setdefault(labels["feature"], {})[name] = value
    return {feature: (values[FEATURE_VALUES], values.get(FEATURE_VALUE_SUM),
                      values[FEATURE_MISSING]) for feature, values in exported.items()}


def _assert_score_histogram(samples: dict, traffic: Traffic) -> None:
    labels = (("model_name", MODEL_NAME), ("version", str(traffic.version)))
    scores = [score for score in traffic.scores if math.isfinite(score)]
    buckets = {dict(found)["le"]: value for (name, found), value in samples.items()
               if name == f"{SCORE}_bucket" and dict(found)["version"] == str(traffic.version)}
    assert len(buckets) == 21  # 20 equal-width bins on [0, 1], and +Inf
    for le, count in buckets.items():
        assert count == sum(score <= float(le) for score in scores), le
    assert samples[(f"{SCORE}_count", labels)] == len(scores)
    assert samples[(f"{SCORE}_sum", labels)] == pytest.approx(sum(scores), rel=1e-6)


def test_scores_and_feature_values_are_exported_per_version(monitored_server):
    first, second = Traffic(monitored_server, 1), Traffic(monitored_server, 2)
    # Each request holds a row the server samples, changed as named: a missing
    # value in each way a client sends one, and the APIs' score outputs.
    first.predict(first.next_rows(130, amount=None))           # absent from the tf.Example
    first.predict_raw(first.next_rows(90, amount=math.nan))    # serving_raw's NaN: its score too
    first.classify(first.next_rows(100, channel=None))
    first.regress(first.next_rows(100))
    first.multi_inference(first.next_rows(100, amount=None))
    first.rest_predict(first.next_rows(100))
    first.rest_predict_raw(first.next_rows(100))
    first.rest_regress(_rows(50, len(first.rows)))             # no sampled row in it
    first.unanswered_predict_raw()                             # not counted
    second.predict(second.next_rows(150, amount=math.nan))     # NaN inside a tf.Example
    second.predict_raw(second.next_rows(60))
    samples = _samples(urllib.request.urlopen(
        f"http://127.0.0.1:{monitored_server.rest_port}{METRICS_PATH}", timeout=10).read().decode())
    first.close()
    second.close()

    for traffic in (first, second):
        _assert_score_histogram(samples, traffic)
        expected = _expected_features(traffic.rows)
        # Exact: the amounts are multiples of 0.25, and so are their sums.
        assert _exported_features(samples, traffic.version) == expected
    # What the changed rows did: one NaN score, versions apart, each way of missing counted.
    assert len(first.scores) == len(first.rows) + 100 and sum(map(math.isnan, first.scores)) == 1
    assert len(first.rows) == 770 and len(second.rows) == 210
    assert _expected_features(first.rows)["amount"][2] == 3
    assert _expected_features(first.rows)["channel"][2] == 1
    assert _expected_features(second.rows)["amount"] == (2, 0.25 * (100 + 1) + 0.25 * (200 + 1), 1)


# ---------------------------------------------------------------- a model without a score

class _Doubler(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
        return {"doubled": 2.0 * x}


def test_a_signature_without_a_score_output_is_not_observed(base_path, tmp_path):
    module = _Doubler()
    tf.saved_model.save(module, str(tmp_path / "doubler"),
                        signatures={"serving_default": module.serve})
    model_fixtures.publish_version(str(tmp_path / "doubler"), base_path, 1)
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}')
    options = server_options(base_path, monitoring_config_file=str(monitoring),
                             rest_api_port=portpicker.pick_unused_port())
    with running_server(options) as server:
        client = Client(f"127.0.0.1:{server.port}")
        request = predict_request([])
        del request.inputs[EXAMPLES_INPUT]
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([math.nan, 3.0], np.float32)))
        client.prediction.Predict(request)
        client.close()
        samples = _samples(urllib.request.urlopen(
            f"http://127.0.0.1:{server.rest_port}{METRICS_PATH}", timeout=10).read().decode())
    assert not [name for name, _ in samples if name.startswith(SCORE)]
    # Its input is still a feature, named by its alias; the sampled first row was NaN.
    assert _exported_features(samples, 1) == {"x": (0, 0.0, 1)}


def test_the_sample_rate_is_at_least_one():
    with pytest.raises(UsageError, match="feature_stats_sample_every=0"):
        server_options("/models/fraud", feature_stats_sample_every=0).validate()


def test_with_a_sample_rate_of_one_every_transaction_is_counted(tiny_model_dir, base_path,
                                                                  tmp_path):
    model_fixtures.publish_version(tiny_model_dir, base_path, 1)
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}')
    options = server_options(base_path, monitoring_config_file=str(monitoring),
                             rest_api_port=portpicker.pick_unused_port(),
                             feature_stats_sample_every=1)
    with running_server(options) as server:
        traffic = Traffic(server, 1)
        traffic.predict(_rows(7, 0))
        samples = _samples(urllib.request.urlopen(
            f"http://127.0.0.1:{server.rest_port}{METRICS_PATH}", timeout=10).read().decode())
        traffic.close()
    assert _exported_features(samples, 1)["amount"] == (7, 0.25 * sum(range(1, 8)), 0)

"""Every RPC of the model server, and TF Serving's status codes, through the official
tensorflow-serving-api stubs.

Conformance mode: set RISKPIPE_CONFORMANCE_ADDR=host:port to run these same
client tests against another server - e.g. a real tensorflow_model_server
serving the pipeline's pushed model - instead of an in-process `riskpipe serve`:

    RISKPIPE_CONFORMANCE_ADDR=localhost:8500 \
    RISKPIPE_CONFORMANCE_SSL_CONFIG=certs/client_ssl_config.pbtxt \
    RISKPIPE_CONFORMANCE_MODEL=fraud \
    python -m pytest tests/serving/test_serving_api.py

RISKPIPE_CONFORMANCE_SSL_CONFIG (optional) is a client-side SSLConfig as
`riskpipe certs` writes it; RISKPIPE_CONFORMANCE_MODEL defaults to "fraud".
Requests are built from the warmup records of the model under test, so the
remote server must serve the same model.
"""
import os
import random

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, inference_pb2,
                                     model_pb2, predict_pb2, regression_pb2)

from common.serving_contract import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD
from serving import tls
from serving_helpers import (Client, classification_request, predict_request, regression_request,
                             serialized_examples)

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


@pytest.fixture(scope="module")
def model_name() -> str:
    return os.environ.get("RISKPIPE_CONFORMANCE_MODEL", "fraud")


@pytest.fixture(scope="module")
def client(request):
    address = os.environ.get("RISKPIPE_CONFORMANCE_ADDR")
    if address:
        ssl_config = os.environ.get("RISKPIPE_CONFORMANCE_SSL_CONFIG")
        client_tls = tls.client_tls_from_ssl_config(ssl_config) if ssl_config else None
        stubs = Client(address, client_tls)
    else:
        server = request.getfixturevalue("module_server")
        stubs = Client(f"127.0.0.1:{server.port}")
    yield stubs
    stubs.close()


@pytest.fixture(scope="module")
def examples(model_dir):
    return serialized_examples(model_dir)


def probabilities(response) -> np.ndarray:
    return tf.make_ndarray(response.outputs["fraud_probability"])


def assert_status(call, code: grpc.StatusCode, message: str = ""):
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert raised.value.code() == code, raised.value.details()
    assert message in raised.value.details()
    return raised.value


# ---------------------------------------------------------------- the RPCs

def test_health_reports_serving_once_the_model_is_loaded(client):
    stub = health_pb2_grpc.HealthStub(client.channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service=""))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_predict_scores_every_example_with_the_resolved_version(client, examples, model_name):
    response = client.prediction.Predict(predict_request(examples, model_name))
    scores = probabilities(response)
    assert scores.shape == (len(examples),)
    assert np.all((scores >= 0) & (scores <= 1))
    assert response.model_spec.name == model_name
    assert response.model_spec.version.value > 0
    assert response.model_spec.signature_name == "serving_default"


def test_predict_by_version_number_answers_from_that_version(client, examples, model_name):
    latest = client.prediction.Predict(predict_request(examples, model_name))
    version = latest.model_spec.version.value
    pinned = client.prediction.Predict(predict_request(examples, model_name, version=version))
    assert pinned.model_spec.version.value == version
    np.testing.assert_allclose(probabilities(pinned), probabilities(latest), rtol=1e-6)


def test_predict_output_filter_returns_only_the_named_output(client, examples, model_name):
    request = predict_request(examples, model_name)
    request.output_filter.append("fraud_probability")
    response = client.prediction.Predict(request)
    assert list(response.outputs.keys()) == ["fraud_probability"]


def _missing(dtype):
    """serving_raw's value for a feature absent from the example: NaN for floats."""
    if dtype == tf.string:
        return b""
    return float("nan") if dtype.is_floating else 0


def _raw_request(client, examples, model_name) -> predict_pb2.PredictRequest:
    """A serving_raw request carrying the raw features of the model's own examples."""
    metadata = client.prediction.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name=model_name), metadata_field=["signature_def"]))
    signatures = get_model_metadata_pb2.SignatureDefMap()
    metadata.metadata["signature_def"].Unpack(signatures)
    raw = signatures.signature_def["serving_raw"]
    parsed = [tf.train.Example.FromString(serialized) for serialized in examples]
    request = predict_request([], model_name, signature="serving_raw")
    del request.inputs["examples"]
    for alias, info in raw.inputs.items():
        dtype = tf.dtypes.as_dtype(info.dtype)
        values = []
        for example in parsed:
            feature = example.features.feature[alias]
            kind = feature.WhichOneof("kind")
            values.append(getattr(feature, kind).value[0] if kind else _missing(dtype))
        rank = len(info.tensor_shape.dim)
        shape = [len(values)] + [1] * (rank - 1) if rank > 1 else None
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(values, dtype=dtype, shape=shape))
    return request


def test_predict_raw_signature_agrees_with_the_example_signature(client, examples, model_name):
    from_examples = client.prediction.Predict(predict_request(examples, model_name))
    from_raw = client.prediction.Predict(_raw_request(client, examples, model_name))
    assert from_raw.model_spec.signature_name == "serving_raw"
    np.testing.assert_allclose(probabilities(from_raw), probabilities(from_examples), atol=1e-5)


def test_classify_scores_the_same_examples_as_predict(client, examples, model_name):
    response = client.prediction.Classify(classification_request(examples, model_name))
    predicted = probabilities(client.prediction.Predict(predict_request(examples, model_name)))
    assert response.model_spec.signature_name == "classification"
    assert response.model_spec.version.value > 0
    assert len(response.result.classifications) == len(examples)
    for classification, probability in zip(response.result.classifications, predicted):
        scores = [entry.score for entry in classification.classes]
        assert len(scores) == 2 and all(entry.label for entry in classification.classes)
        assert scores[0] + scores[1] == pytest.approx(1.0, abs=1e-5)
        assert scores[1] == pytest.approx(float(probability), abs=1e-5)


def test_classify_merges_the_context_into_each_example(client, examples, model_name):
    # Every feature lives in the context; the examples themselves are empty.
    request = classification_request([], model_name)
    with_context = request.input.example_list_with_context
    with_context.context.ParseFromString(examples[0])
    with_context.examples.add()
    with_context.examples.add()
    response = client.prediction.Classify(request)
    expected = probabilities(client.prediction.Predict(predict_request(examples[:1], model_name)))
    assert [c.classes[1].score for c in response.result.classifications] == pytest.approx(
        [float(expected[0])] * 2, abs=1e-5)


def test_regress_returns_one_value_per_example(client, examples, model_name):
    response = client.prediction.Regress(regression_request(examples, model_name))
    predicted = probabilities(client.prediction.Predict(predict_request(examples, model_name)))
    assert response.model_spec.signature_name == "regression"
    assert [r.value for r in response.result.regressions] == pytest.approx(
        predicted.tolist(), abs=1e-5)


def test_multi_inference_runs_classify_and_regress_on_one_input(client, examples, model_name):
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classification", CLASSIFY_METHOD), ("regression", REGRESS_METHOD)):
        task = request.tasks.add(method_name=method)
        task.model_spec.name = model_name
        task.model_spec.signature_name = signature
    for serialized in examples:
        request.input.example_list.examples.add().ParseFromString(serialized)
    response = client.prediction.MultiInference(request)
    classification, regression = response.results
    assert classification.model_spec.signature_name == "classification"
    assert regression.model_spec.signature_name == "regression"
    assert len(classification.classification_result.classifications) == len(examples)
    scores = [c.classes[1].score for c in classification.classification_result.classifications]
    values = [r.value for r in regression.regression_result.regressions]
    assert scores == pytest.approx(values, abs=1e-5)


def test_model_metadata_carries_every_signature_def(client, model_name):
    response = client.prediction.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name=model_name), metadata_field=["signature_def"]))
    assert response.model_spec.name == model_name and response.model_spec.version.value > 0
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    defs = signatures.signature_def
    assert defs["serving_default"].method_name == PREDICT_METHOD
    assert defs["serving_default"].inputs["examples"].dtype == tf.string.as_datatype_enum
    assert defs["serving_default"].outputs["fraud_probability"].dtype == tf.float32.as_datatype_enum
    assert "fraud_probability" in defs["serving_raw"].outputs
    assert defs["classification"].method_name == CLASSIFY_METHOD
    assert set(defs["classification"].outputs) == {"classes", "scores"}
    assert defs["regression"].method_name == REGRESS_METHOD
    assert set(defs["regression"].outputs) == {"outputs"}


def test_model_status_lists_the_available_version(client, model_name):
    response = client.model.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
        model_spec=model_pb2.ModelSpec(name=model_name)))
    available = [s for s in response.model_version_status if s.state == AVAILABLE]
    assert available and available[0].status.error_code == 0


# ---------------------------------------------------------------- TF Serving's errors

def test_unknown_model_is_not_found(client, examples):
    assert_status(lambda: client.prediction.Predict(predict_request(examples, "no_such_model")),
                  grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(no_such_model)")


def test_unknown_version_is_not_found(client, examples, model_name):
    assert_status(
        lambda: client.prediction.Predict(predict_request(examples, model_name, version=43)),
        grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({model_name}, 43)")


def test_unknown_label_is_invalid_argument(client, examples, model_name):
    assert_status(
        lambda: client.prediction.Predict(predict_request(examples, model_name, label="canary")),
        grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: canary")


def test_missing_predict_signature_is_failed_precondition(client, examples, model_name):
    assert_status(
        lambda: client.prediction.Predict(predict_request(examples, model_name, signature="nope")),
        grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.')


def test_missing_classify_signature_is_invalid_argument(client, examples, model_name):
    request = classification_request(examples, model_name)
    request.model_spec.signature_name = "nope"
    assert_status(lambda: client.prediction.Classify(request), grpc.StatusCode.INVALID_ARGUMENT,
                  "No signature was found with the name: nope")


def test_classify_on_a_predict_signature_is_invalid_argument(client, examples, model_name):
    request = classification_request(examples, model_name)
    request.model_spec.signature_name = "serving_default"
    assert_status(lambda: client.prediction.Classify(request), grpc.StatusCode.INVALID_ARGUMENT,
                  "Expected classification signature method_name to be tensorflow/serving/classify")


def test_regress_on_a_classify_signature_is_invalid_argument(client, examples, model_name):
    request = regression_request(examples, model_name)
    request.model_spec.signature_name = "classification"
    assert_status(lambda: client.prediction.Regress(request), grpc.StatusCode.INVALID_ARGUMENT,
                  "Expected regression signature method_name to be tensorflow/serving/regress")


def test_wrong_input_alias_is_invalid_argument(client, examples, model_name):
    request = predict_request(examples, model_name)
    request.inputs["transactions"].CopyFrom(request.inputs["examples"])
    del request.inputs["examples"]
    assert_status(lambda: client.prediction.Predict(request), grpc.StatusCode.INVALID_ARGUMENT,
                  "examples")


def test_extra_input_is_invalid_argument(client, examples, model_name):
    request = predict_request(examples, model_name)
    request.inputs["extra"].CopyFrom(request.inputs["examples"])
    assert_status(lambda: client.prediction.Predict(request), grpc.StatusCode.INVALID_ARGUMENT,
                  "extra")


def test_missing_input_is_invalid_argument(client, model_name):
    request = predict_request([], model_name)
    del request.inputs["examples"]
    assert_status(lambda: client.prediction.Predict(request), grpc.StatusCode.INVALID_ARGUMENT,
                  "examples")


def test_wrong_dtype_is_invalid_argument(client, model_name):
    request = predict_request([], model_name)
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([1.0, 2.0], dtype=tf.float32))
    assert_status(lambda: client.prediction.Predict(request), grpc.StatusCode.INVALID_ARGUMENT,
                  "to be string but float is provided")


def test_random_bytes_as_an_example_is_invalid_argument(client, examples, model_name):
    # Random bytes behind a header claiming a 128-byte field: never a valid tf.Example.
    garbage = b"\x0a\x80\x01" + bytes(random.Random(7).getrandbits(8) for _ in range(64))
    assert_status(lambda: client.prediction.Predict(predict_request([garbage], model_name)),
                  grpc.StatusCode.INVALID_ARGUMENT)
    # ...and the server answers the next good request.
    assert client.prediction.Predict(predict_request(examples, model_name)).outputs


def test_unknown_output_filter_is_invalid_argument(client, examples, model_name):
    request = predict_request(examples, model_name)
    request.output_filter.append("nope")
    assert_status(lambda: client.prediction.Predict(request), grpc.StatusCode.INVALID_ARGUMENT,
                  "output tensor alias not found in signature: nope")


def test_empty_classify_input_is_invalid_argument(client, model_name):
    assert_status(lambda: client.prediction.Classify(classification_request([], model_name)),
                  grpc.StatusCode.INVALID_ARGUMENT, "Input is empty.")


def test_metadata_without_a_field_is_invalid_argument(client, model_name):
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name=model_name))
    assert_status(lambda: client.prediction.GetModelMetadata(request),
                  grpc.StatusCode.INVALID_ARGUMENT,
                  "GetModelMetadataRequest must specify at least one metadata_field")


def test_unsupported_metadata_field_is_invalid_argument(client, model_name):
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name=model_name), metadata_field=["nope"])
    assert_status(lambda: client.prediction.GetModelMetadata(request),
                  grpc.StatusCode.INVALID_ARGUMENT, "nope")


def test_status_of_an_unknown_model_is_not_found(client):
    request = get_model_status_pb2.GetModelStatusRequest(
        model_spec=model_pb2.ModelSpec(name="no_such_model"))
    assert_status(lambda: client.model.GetModelStatus(request), grpc.StatusCode.NOT_FOUND,
                  "Could not find any versions of model no_such_model")


def test_status_of_an_unknown_version_is_not_found(client, model_name):
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(
        name=model_name))
    request.model_spec.version.value = 43
    assert_status(lambda: client.model.GetModelStatus(request), grpc.StatusCode.NOT_FOUND,
                  f"Could not find version 43 of model {model_name}")


def test_request_without_model_spec_is_invalid_argument(client):
    assert_status(lambda: client.model.GetModelStatus(get_model_status_pb2.GetModelStatusRequest()),
                  grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")


def test_regress_request_over_the_wrong_model_is_not_found(client, examples):
    request = regression_request(examples, "no_such_model")
    assert isinstance(request, regression_pb2.RegressionRequest)
    assert_status(lambda: client.prediction.Regress(request), grpc.StatusCode.NOT_FOUND,
                  "Latest(no_such_model)")

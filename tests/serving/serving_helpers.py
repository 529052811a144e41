"""Shared pieces of the serving tests: requests built from a model's own warmup
records, stubs, and an in-process server with short poll intervals."""
import contextlib
import os
import time
from typing import List, Optional

import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

from common.serving_contract import EXAMPLES_INPUT, read_warmup_requests
from serving import tls
from serving.options import ServerOptions
from serving.server import ModelServer

MODEL_NAME = "fraud"
POLL_SECONDS = 0.2


def serialized_examples(version_dir: str) -> List[bytes]:
    """Valid serialized tf.Examples for the model: the ones in its warmup requests."""
    examples = []
    for log in read_warmup_requests(version_dir):
        if log.WhichOneof("log_type") == "predict_log":
            examples += list(log.predict_log.request.inputs[EXAMPLES_INPUT].string_val)
    assert examples, f"{version_dir} ships no Predict warmup request with examples"
    return examples


def predict_request(examples: List[bytes], model_name: str = MODEL_NAME, version: Optional[int] = None,
                    label: str = "", signature: str = "") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    if version is not None:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    if signature:
        request.model_spec.signature_name = signature
    request.inputs[EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(examples, dtype=tf.string))
    return request


def example_input_request(request_class, examples: List[bytes], signature: str,
                          model_name: str = MODEL_NAME):
    """A ClassificationRequest or RegressionRequest over the given examples."""
    request = request_class()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for serialized in examples:
        request.input.example_list.examples.add().ParseFromString(serialized)
    return request


def classification_request(examples, model_name=MODEL_NAME):
    return example_input_request(classification_pb2.ClassificationRequest, examples,
                                 "classification", model_name)


def regression_request(examples, model_name=MODEL_NAME):
    return example_input_request(regression_pb2.RegressionRequest, examples, "regression",
                                 model_name)


class Client:
    """The official tensorflow-serving-api stubs over one channel."""

    def __init__(self, address: str, client_tls: Optional[tls.ClientTLS] = None):
        self.address = address
        self.channel = tls.channel(address, client_tls)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()


def server_options(base_path: str = "", **overrides) -> ServerOptions:
    values = dict(model_name=MODEL_NAME, model_base_path=base_path, port=0,
                  bind_address="127.0.0.1", file_system_poll_wait_seconds=POLL_SECONDS,
                  model_config_file_poll_wait_seconds=POLL_SECONDS, shutdown_grace_seconds=2.0)
    values.update(overrides)
    return ServerOptions(**values)


@contextlib.contextmanager
def running_server(options: ServerOptions, wait: bool = True):
    """An in-process ModelServer, stopped on exit."""
    server = ModelServer(options)
    server.start()
    try:
        if wait:
            assert server.wait_until_available(60), "models did not become available"
        yield server
    finally:
        server.stop(grace=2.0)


def wait_for(condition, timeout: float = 30.0, interval: float = 0.05):
    """Polls `condition` until it returns a truthy value; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def version_dirs(base_path: str) -> List[int]:
    return sorted(int(name) for name in os.listdir(base_path) if name.isdigit())

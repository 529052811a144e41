"""Shared pieces of the risk-engine tests: a recording gRPC PredictionService and the CLI."""
import argparse
import threading
from concurrent import futures

import grpc
import tensorflow as tf
from grpc_health.v1 import health, health_pb2_grpc
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from cli import engine_commands

MODEL_VERSION = 42
FIXED_SCORE = 0.25


class RecordingPredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers every Predict with FIXED_SCORE and keeps the requests, in arrival order.

    `fail_when(request)` may return a (grpc.StatusCode, message) to fail a request with;
    `score_for(request)` may give another score than FIXED_SCORE.
    """

    def __init__(self, fail_when=lambda request: None, score_for=lambda request: FIXED_SCORE):
        self.requests = []
        self.fail_when = fail_when
        self.score_for = score_for
        self._lock = threading.Lock()

    def Predict(self, request, context):
        with self._lock:
            self.requests.append(request)
        failure = self.fail_when(request)
        if failure is not None:
            context.abort(*failure)
        batch = next(iter(request.inputs.values())).tensor_shape.dim[0].size
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.signature_name = request.model_spec.signature_name
        response.model_spec.version.value = MODEL_VERSION
        response.outputs["score"].CopyFrom(
            tf.make_tensor_proto([self.score_for(request)] * batch, tf.float32))
        return response


def start_recording_server(service, credentials=None, with_health=True):
    """A loopback gRPC server with `service` and grpc.health.v1; returns (server, address).

    `credentials` (grpc.ServerCredentials) makes it a TLS server; without
    `with_health` it lacks grpc.health.v1, as tensorflow_model_server does.
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    if with_health:
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, f"127.0.0.1:{port}"


def run_score(argv):
    """Runs `riskpipe score ARGV` in-process through its argparse registration."""
    parser = argparse.ArgumentParser()
    engine_commands.register(parser.add_subparsers())
    args = parser.parse_args(["score"] + list(argv))
    return args.func(args)

"""What every RPC of the model server shares: status mapping, metrics and safe parsing.

Handlers are registered from the servicer classes generated in
tensorflow-serving-api, with one difference: a request that does not parse is
answered INVALID_ARGUMENT by the handler (Python gRPC would answer INTERNAL
before any servicer code runs), and the server keeps serving.
"""
import logging
import time
from typing import Callable, Dict, Tuple

import grpc
from google.protobuf.message import DecodeError

from serving import errors
from serving.metrics import ServingMetrics

LOG = logging.getLogger(__name__)


class MalformedRequest:
    """Stands in for a request whose bytes did not parse."""

    def __init__(self, reason: str):
        self.reason = reason


def lenient_parser(message_class) -> Callable[[bytes], object]:
    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except DecodeError as err:
            return MalformedRequest(str(err))
    return parse


def generic_handler(service_name: str, servicer,
                    methods: Dict[str, Tuple[type, type]]) -> grpc.GenericRpcHandler:
    """Unary handlers for `servicer`'s methods, parsing requests leniently."""
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=lenient_parser(request_class),
            response_serializer=response_class.SerializeToString)
        for name, (request_class, response_class) in methods.items()
    }
    return grpc.method_handlers_generic_handler(service_name, handlers)


class RpcRunner:
    """Runs one RPC body: maps ServingError to a gRPC status and records metrics.

    A body takes the request and returns (response, model name, version); for
    `call_async` it is a coroutine function.
    """

    def __init__(self, metrics: ServingMetrics):
        self._metrics = metrics

    def __call__(self, api: str, request, context: grpc.ServicerContext,
                 body: Callable, response_class):
        started = time.perf_counter()
        try:
            outcome = (*body(_parsed(api, request)), grpc.StatusCode.OK)
        except Exception as err:  # a bug must cost one request, not the server
            outcome = _failure(api, request, context, err, response_class)
        return self._finish(api, started, outcome)

    async def call_async(self, api: str, request, context, body: Callable, response_class):
        started = time.perf_counter()
        try:
            outcome = (*await body(_parsed(api, request)), grpc.StatusCode.OK)
        except Exception as err:  # a bug must cost one request, not the server
            outcome = _failure(api, request, context, err, response_class)
        return self._finish(api, started, outcome)

    def _finish(self, api: str, started: float, outcome: tuple):
        response, model_name, version, status = outcome
        latency_us = (time.perf_counter() - started) * 1e6
        self._metrics.record_request(api, model_name, version, status.name, latency_us)
        return response


def _parsed(api: str, request):
    if isinstance(request, MalformedRequest):
        raise errors.invalid_argument(f"Could not parse {api} request: {request.reason}")
    return request


def _failure(api: str, request, context, err: Exception, response_class) -> tuple:
    """The empty response, model name, version and status of a failed RPC."""
    if isinstance(err, errors.ServingError):
        code, details = err.code, err.message
    else:
        LOG.error("%s failed", api, exc_info=err)
        code, details = grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}"
    context.set_code(code)
    context.set_details(details)
    return response_class(), _model_name(request), "", code


def _model_name(request) -> str:
    model_spec = getattr(request, "model_spec", None)
    if model_spec is not None:
        return model_spec.name
    tasks = getattr(request, "tasks", None)
    return tasks[0].model_spec.name if tasks else ""

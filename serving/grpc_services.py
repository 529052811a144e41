"""TF Serving's PredictionService and ModelService over gRPC: a thin transport to the data plane.

The handlers are built from the services' generated descriptors
(tensorflow-serving-api), one per method that the data plane implements, so
the method names, request and response types are TF Serving's own. Two
differences from Python gRPC's defaults: a request that does not parse is
answered INVALID_ARGUMENT by the data plane (and counted), where gRPC would
answer INTERNAL before any handler runs; and a method that runs a model is a
coroutine on the server's event loop, while the others run on its thread pool.
"""
import time
from typing import Callable, List, Optional

import grpc
from google.protobuf import symbol_database
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

from serving import errors
from serving.dataplane import APIS, GRPC, DataPlane, UnparsedRequest
from serving.stage_timing import StageTimes

SERVICES = (prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"],
            model_service_pb2.DESCRIPTOR.services_by_name["ModelService"])
SERVICE_NAMES = tuple(service.full_name for service in SERVICES)


def _message_class(descriptor) -> type:
    return symbol_database.Default().GetSymbol(descriptor.full_name)


def _lenient_parser(message_class) -> Callable[[bytes], object]:
    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except DecodeError as err:
            return UnparsedRequest(str(err))
    return parse


def _behaviour(dataplane: DataPlane, api: str, response_class,
               stage_times: Optional[StageTimes] = None) -> Callable:
    def fail(context: grpc.ServicerContext, err: errors.ServingError):
        context.set_code(err.code)
        context.set_details(err.message)
        return response_class()

    if APIS[api].runs_model and stage_times is not None:
        async def timed_on_loop(request, context):
            started = time.perf_counter()
            try:
                return await dataplane.call_async(api, request, GRPC)
            except errors.ServingError as err:
                return fail(context, err)
            finally:
                stage_times.add("handler", time.perf_counter() - started)
        return timed_on_loop

    if APIS[api].runs_model:
        async def handle_on_loop(request, context):
            try:
                return await dataplane.call_async(api, request, GRPC)
            except errors.ServingError as err:
                return fail(context, err)
        return handle_on_loop

    def handle(request, context):
        try:
            return dataplane.call(api, request, GRPC)
        except errors.ServingError as err:
            return fail(context, err)
    return handle


def service_handlers(dataplane: DataPlane,
                     stage_times: Optional[StageTimes] = None) -> List[grpc.GenericRpcHandler]:
    """A generic handler per service; a method the data plane lacks answers UNIMPLEMENTED.

    With `stage_times` (benchmarks), the model RPCs' parsing, handling and
    serializing are timed (serving/stage_timing.py)."""
    handlers = []
    for service in SERVICES:
        methods = {}
        for method in service.methods:
            if method.name not in APIS:
                continue
            response_class = _message_class(method.output_type)
            parser = _lenient_parser(_message_class(method.input_type))
            serializer = response_class.SerializeToString
            if stage_times is not None and APIS[method.name].runs_model:
                parser = stage_times.timed("parse", parser)
                serializer = stage_times.timed("serialize", serializer)
            methods[method.name] = grpc.unary_unary_rpc_method_handler(
                _behaviour(dataplane, method.name, response_class, stage_times),
                request_deserializer=parser, response_serializer=serializer)
        handlers.append(grpc.method_handlers_generic_handler(service.full_name, methods))
    return handlers

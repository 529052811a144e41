"""tensorflow.serving.PredictionService: Predict, Classify, Regress, MultiInference,
GetModelMetadata."""
import time

from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, inference_pb2,
                                     predict_pb2, prediction_service_pb2_grpc, regression_pb2)

from serving import errors, inference
from serving.metrics import ServingMetrics
from serving.model_manager import ModelManager
from serving.service_support import RpcRunner, generic_handler

SERVICE_NAME = "tensorflow.serving.PredictionService"
METHODS = {
    "Classify": (classification_pb2.ClassificationRequest,
                 classification_pb2.ClassificationResponse),
    "Regress": (regression_pb2.RegressionRequest, regression_pb2.RegressionResponse),
    "Predict": (predict_pb2.PredictRequest, predict_pb2.PredictResponse),
    "MultiInference": (inference_pb2.MultiInferenceRequest, inference_pb2.MultiInferenceResponse),
    "GetModelMetadata": (get_model_metadata_pb2.GetModelMetadataRequest,
                         get_model_metadata_pb2.GetModelMetadataResponse),
}
SIGNATURE_DEF_FIELD = "signature_def"
INFERENCE_APIS = {
    "Predict": (inference.predict, predict_pb2.PredictResponse),
    "Classify": (inference.classify, classification_pb2.ClassificationResponse),
    "Regress": (inference.regress, regression_pb2.RegressionResponse),
    "MultiInference": (inference.multi_inference, inference_pb2.MultiInferenceResponse),
}


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Serves the versions a ModelManager has loaded, through an inference runner.

    The inference RPCs are coroutines on the server's event loop; the model
    calls go through `runner` (the batch scheduler, or a thread pool).
    """

    def __init__(self, manager: ModelManager, metrics: ServingMetrics,
                 runner: inference.AsyncRunner):
        self._manager = manager
        self._metrics = metrics
        self._runners = {api: self._timed(api, runner) for api in INFERENCE_APIS}
        self._rpc = RpcRunner(metrics)

    def handler(self):
        return generic_handler(SERVICE_NAME, self, METHODS)

    def _timed(self, api: str, runner: inference.AsyncRunner) -> inference.AsyncRunner:
        async def run(servable, signature_name, inputs, output_keys):
            started = time.perf_counter()
            outputs = await runner(servable, signature_name, inputs, output_keys)
            self._metrics.record_runtime(api, servable.name, str(servable.version),
                                         (time.perf_counter() - started) * 1e6)
            return outputs
        return run

    async def _serve(self, api: str, operation, request):
        model_spec = request.model_spec if api != "MultiInference" else _first_spec(request)
        if api != "MultiInference" and not request.HasField("model_spec"):
            raise errors.invalid_argument("Missing ModelSpec")
        servable = self._manager.resolve(model_spec)
        response = await inference.complete_async(operation(servable, request),
                                                  self._runners[api])
        return response, servable.name, str(servable.version)

    async def _inference(self, api: str, request, context):
        operation, response_class = INFERENCE_APIS[api]
        return await self._rpc.call_async(
            api, request, context, lambda parsed: self._serve(api, operation, parsed),
            response_class)

    async def Predict(self, request, context):
        return await self._inference("Predict", request, context)

    async def Classify(self, request, context):
        return await self._inference("Classify", request, context)

    async def Regress(self, request, context):
        return await self._inference("Regress", request, context)

    async def MultiInference(self, request, context):
        return await self._inference("MultiInference", request, context)

    # Not a coroutine: like ModelService, it runs on the server's thread pool.
    def GetModelMetadata(self, request, context):
        return self._rpc("GetModelMetadata", request, context, self._metadata,
                         get_model_metadata_pb2.GetModelMetadataResponse)

    def _metadata(self, request):
        if not request.HasField("model_spec"):
            raise errors.invalid_argument("Missing ModelSpec")
        if not request.metadata_field:
            raise errors.invalid_argument(
                "GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise errors.invalid_argument(f"Metadata field {field} is not supported")
        servable = self._manager.resolve(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_def_map(servable))
        return response, servable.name, str(servable.version)


def signature_def_map(servable) -> get_model_metadata_pb2.SignatureDefMap:
    """GetModelMetadata's signature_def metadata (gRPC and REST)."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature)
    return signature_map


def _first_spec(request: inference_pb2.MultiInferenceRequest):
    # TF Serving resolves the servable from the first task's model_spec.
    if request.tasks and request.tasks[0].HasField("model_spec"):
        return request.tasks[0].model_spec
    return inference_pb2.InferenceTask().model_spec

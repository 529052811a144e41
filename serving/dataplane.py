"""The one inference core behind every transport of the model server.

gRPC (serving/grpc_services.py) and REST (serving/rest_api.py) hand a request
to `DataPlane.call` or `call_async`, which resolves the servable, runs the
operation, times it, records the metrics and maps any failure to TF Serving's
status; the transports only translate messages and status codes. So a request
is counted and timed the same way whichever way it came in.

Adding an RPC is one operation (serving/inference.py for model calls,
serving/model_operations.py otherwise) and one entry in APIS.

What a drift monitor needs of an answered request (its scores, and a sample
of the feature values it was sent) is recorded through serving/telemetry.py.
"""
import contextlib
import dataclasses
import inspect
import logging
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from serving import errors, inference, model_operations, telemetry
from serving.metrics import ServingMetrics
from serving.model_manager import ModelManager
from serving.options import ServerOptions
from serving.servable import Servable
from serving.stage_timing import StageTimes

LOG = logging.getLogger(__name__)
GRPC, REST = "GRPC", "REST"  # the `entrypoint` label of the request metrics


@dataclasses.dataclass(frozen=True)
class Api:
    # operation(scope, request) -> response, or a generator of model calls
    # returning it (serving/inference.py).
    operation: Callable
    # Whether it runs a model: then it is a coroutine on the server's event loop
    # and its model calls go through the batch scheduler or the model threads.
    runs_model: bool


# By the method names of TF Serving's PredictionService and ModelService.
APIS: Dict[str, Api] = {
    "Predict": Api(inference.predict, runs_model=True),
    "Classify": Api(inference.classify, runs_model=True),
    "Regress": Api(inference.regress, runs_model=True),
    "MultiInference": Api(inference.multi_inference, runs_model=True),
    "GetModelMetadata": Api(model_operations.get_model_metadata, runs_model=False),
    "GetModelStatus": Api(model_operations.get_model_status, runs_model=False),
    "HandleReloadConfigRequest": Api(model_operations.reload_config, runs_model=False),
}


class UnparsedRequest:
    """Stands in for a request that did not parse, so that it is counted like any other."""

    def __init__(self, reason: str):
        self.reason = reason


class RequestScope:
    """The manager a request asks, the one servable it resolved and the model calls it
    made with their outputs (for its metrics)."""

    def __init__(self, manager: ModelManager, model_name: str):
        self.manager = manager
        self.model_name = model_name
        self.servable: Optional[Servable] = None
        self.model_calls: List[Tuple[inference.ModelCall, inference.Outputs]] = []

    def resolve(self, model_spec) -> Servable:
        # One request resolves one servable: a REST request resolves it to read
        # the signature's input types, then its operation gets the same one.
        if self.servable is None:
            self.servable = self.manager.resolve(model_spec)
            self.model_name = self.servable.name
        return self.servable


class DataPlane:
    """Runs any API of APIS on the versions a ModelManager serves."""

    def __init__(self, manager: ModelManager, metrics: ServingMetrics,
                 runner: inference.Runner, async_runner: inference.AsyncRunner,
                 feature_stats_sample_every: int = ServerOptions.feature_stats_sample_every,
                 stage_times: Optional[StageTimes] = None):
        self.manager = manager
        self.metrics = metrics
        self._runner = runner
        self._async_runner = async_runner
        self._feature_stats_sample_every = feature_stats_sample_every
        self._lock = threading.Lock()
        self._rows_answered: Dict[Tuple[str, int], int] = {}
        self._stage_times = stage_times  # benchmarks only (serving/stage_timing.py)

    def call(self, api: str, request, entrypoint: str, model_name: str = ""):
        """Runs a request, blocking; raises ServingError with the status a client sees.

        `request` is the request message, an UnparsedRequest, or (for REST) a
        function of the scope that builds the message, failing with ServingError.
        `model_name` names the model in the metrics when the request cannot.
        """
        scope = RequestScope(self.manager, model_name or _model_name(request))
        with self._counted(api, entrypoint, scope):
            operation = _operation(api, request, scope)
            if not inspect.isgenerator(operation):
                return operation
            return inference.complete(operation, self._timed(api, self._runner, scope))

    async def call_async(self, api: str, request, entrypoint: str):
        """`call` for the event loop: model calls go through the awaitable runner."""
        scope = RequestScope(self.manager, _model_name(request))
        with self._counted(api, entrypoint, scope):
            operation = _operation(api, request, scope)
            if not inspect.isgenerator(operation):
                return operation
            if self._stage_times is not None:
                operation = self._stage_times.timed_operation(operation)
            return await inference.complete_async(
                operation, self._timed_async(api, self._async_runner, scope))

    @contextlib.contextmanager
    def _counted(self, api: str, entrypoint: str, scope: RequestScope) -> Iterator[None]:
        """Times the request and records it with its outcome; any failure leaves as ServingError."""
        started = time.perf_counter()
        try:
            yield
            self._observe(scope)  # only what a client was answered
        except errors.ServingError as err:
            self._record(api, entrypoint, started, scope, err.code.name)
            raise
        except Exception as err:  # a bug must cost one request, not the server
            LOG.error("%s failed", api, exc_info=err)
            failure = errors.internal(f"{type(err).__name__}: {err}")
            self._record(api, entrypoint, started, scope, failure.code.name)
            raise failure from err
        self._record(api, entrypoint, started, scope, "OK")

    def _timed(self, api: str, runner: inference.Runner,
               scope: RequestScope) -> inference.Runner:
        def run(*call):
            started = time.perf_counter()
            outputs = runner(*call)
            self._ran(api, scope, started, inference.ModelCall(*call), outputs)
            return outputs
        return run

    def _timed_async(self, api: str, runner: inference.AsyncRunner,
                     scope: RequestScope) -> inference.AsyncRunner:
        async def run(*call):
            started = time.perf_counter()
            outputs = await runner(*call)
            if self._stage_times is not None:
                self._stage_times.add("model", time.perf_counter() - started)
            self._ran(api, scope, started, inference.ModelCall(*call), outputs)
            return outputs
        return run

    def _ran(self, api: str, scope: RequestScope, started: float, call: inference.ModelCall,
             outputs: inference.Outputs) -> None:
        servable = call.servable
        self.metrics.record_runtime(api, servable.name, str(servable.version),
                                    (time.perf_counter() - started) * 1e6)
        scope.model_calls.append((call, outputs))

    def _observe(self, scope: RequestScope) -> None:
        """Records the scores an answered request's model calls returned and, for a
        sample of rows, the feature values they were sent."""
        for call, outputs in scope.model_calls:
            scores = telemetry.scores(call, outputs)
            if scores is not None:
                self.metrics.record_scores(call.servable.name, str(call.servable.version),
                                           scores)
        if not scope.model_calls:
            return
        # A request sends its inputs once: MultiInference runs all its tasks on them.
        call = scope.model_calls[0][0]
        rows = self._sampled_rows(call.servable, max(
            (value.shape[0] if value.ndim else 1 for value in call.inputs.values()), default=0))
        if rows is not None:
            self.metrics.record_features(call.servable.name, str(call.servable.version),
                                         telemetry.feature_stats(call, rows))

    def _sampled_rows(self, servable: Servable, rows: int) -> Optional[slice]:
        """Which of a request's rows are every Nth row its version answered, if any.

        Counted per version: one count over all versions could keep step with a
        client that alternates between them."""
        every = self._feature_stats_sample_every
        key = (servable.name, servable.version)
        with self._lock:
            before = self._rows_answered.get(key, 0)
            self._rows_answered[key] = before + rows
        first = -before % every
        return slice(first, rows, every) if first < rows else None

    def _record(self, api: str, entrypoint: str, started: float, scope: RequestScope,
                status: str) -> None:
        # A failed request is counted without a version, as TF Serving counts it.
        succeeded = status == "OK" and scope.servable is not None
        version = str(scope.servable.version) if succeeded else ""
        self.metrics.record_request(api, scope.model_name, version, status,
                                    (time.perf_counter() - started) * 1e6, entrypoint)


def _operation(api: str, request, scope: RequestScope):
    """The API's operation on the request: a response, or a generator of model calls."""
    if isinstance(request, UnparsedRequest):
        raise errors.invalid_argument(f"Could not parse {api} request: {request.reason}")
    if callable(request):
        request = request(scope)
    return APIS[api].operation(scope, request)


def _model_name(request) -> str:
    model_spec = getattr(request, "model_spec", None)
    if model_spec is not None:
        return model_spec.name
    tasks = getattr(request, "tasks", None)
    return tasks[0].model_spec.name if tasks else ""

"""The model server: gRPC services, model manager, pollers, REST and shutdown.

gRPC runs on an asyncio event loop of its own (grpc.aio): the inference RPCs
are coroutines there, as is batching, so a request costs no thread hand-offs
on its way in and out. ModelService, GetModelMetadata and health checking run
on a thread pool; a large model call without batching runs on another, so it
never holds up the loop (inference.unbatched_runner).

    server = ModelServer(ServerOptions(model_name="fraud", model_base_path=path, port=0))
    port = server.start()            # bound port; models load in the background
    server.wait_until_available(60)  # health reports SERVING from here on
    ...
    server.stop(grace=5)             # stop accepting, finish in-flight requests

`riskpipe serve` runs the same object until SIGTERM.
"""
import concurrent.futures
import logging
import threading
import time
from typing import Optional

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from common import serving_contract
from common.errors import UsageError
from serving import config_protos, errors, grpc_services, inference, tls
from serving.batching import BatchingOptions, BatchScheduler
from serving.dataplane import DataPlane
from serving.event_loop import EventLoopThread
from serving.metrics import ServingMetrics
from serving.model_manager import ModelManager, single_model_config, validate_config
from serving.options import DEFAULT_MODEL_CALL_PATH, MODEL_CALL_PATHS, ServerOptions
from serving.rest_api import RestApiServer
from serving.servable import Servable, load_servable
from serving.stage_timing import StageTimes

LOG = logging.getLogger(__name__)


def read_model_server_config(path: str) -> model_server_config_pb2.ModelServerConfig:
    """A --model_config_file, checked as TF Serving checks it; errors name the file."""
    config = config_protos.read_text_proto(path, model_server_config_pb2.ModelServerConfig)
    try:
        validate_config(config)
    except errors.ServingError as err:
        raise UsageError(f"{path}: {err.message}") from err
    return config


class ModelServer:
    """A TF-Serving-compatible model server running in this process."""

    def __init__(self, options: ServerOptions, model_call_path: str = DEFAULT_MODEL_CALL_PATH,
                 stage_times: Optional[StageTimes] = None):
        """`model_call_path`: how a model version's signatures are called,
        serving.servable.SESSION (the default) or TF2_FUNCTION (serving/servable.py).
        `stage_times`: benchmarks only, where each request's time goes on the server."""
        options.validate()
        if model_call_path not in MODEL_CALL_PATHS:
            raise UsageError(f"model_call_path must be one of {', '.join(MODEL_CALL_PATHS)}: "
                             f"{model_call_path!r}")
        self.options = options
        self.model_call_path = model_call_path
        self.stage_times = stage_times
        self.metrics = ServingMetrics()
        self._ssl_config = tls.load_ssl_config(options.ssl_config_file) if options.ssl_config_file else None
        self._prometheus_path = self._read_prometheus_path()
        self._batching = self._read_batching_options()
        self._initial_config = (read_model_server_config(options.model_config_file)
                                if options.model_config_file
                                else single_model_config(options.model_name, options.model_base_path))
        self._scheduler: Optional[BatchScheduler] = None
        self.manager = ModelManager(
            loader=self._load_version,
            allow_labels_for_unavailable=options.allow_version_labels_for_unavailable_models,
            on_change=self._update_health,
            on_load=self.metrics.record_load)
        self._health = health.HealthServicer()
        self._loop: Optional[EventLoopThread] = None
        self._rpc_threads: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._model_threads: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._grpc_server: Optional[grpc.aio.Server] = None
        self._rest: Optional[RestApiServer] = None
        self._stop = threading.Event()
        self._threads = []
        self.port: Optional[int] = None
        self.rest_port: Optional[int] = None

    # ------------------------------------------------------------ configuration

    def _read_prometheus_path(self) -> Optional[str]:
        if not self.options.monitoring_config_file:
            return None
        config = config_protos.read_text_proto(self.options.monitoring_config_file,
                                               config_protos.monitoring_config_class())
        if not config.prometheus_config.enable:
            return None
        path = config.prometheus_config.path or config_protos.DEFAULT_PROMETHEUS_PATH
        if not path.startswith("/"):
            raise UsageError(f"{self.options.monitoring_config_file}: prometheus_config.path "
                             f"must start with '/': {path}")
        return path

    def _read_batching_options(self) -> Optional[BatchingOptions]:
        if not self.options.enable_batching:
            return None
        path = self.options.batching_parameters_file
        if not path:
            return BatchingOptions()
        params = config_protos.read_text_proto(path, config_protos.batching_parameters_class())
        return BatchingOptions.from_proto(params, path)

    @property
    def batch_scheduler(self) -> Optional[BatchScheduler]:
        """The scheduler merging requests, when --enable_batching is on."""
        return self._scheduler

    def _dataplane(self) -> DataPlane:
        """The inference core both transports call, with this server's model runners."""
        if self._scheduler is not None:
            runner, async_runner = self._scheduler.run, self._scheduler.run_async
        else:
            runner = inference.direct_runner
            async_runner = inference.unbatched_runner(self._model_threads)
        return DataPlane(self.manager, self.metrics, runner, async_runner,
                         self.options.feature_stats_sample_every, self.stage_times)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> int:
        """Binds and starts serving; returns the gRPC port. Models load in the background."""
        self._loop = EventLoopThread("grpc-server")
        threads = self.options.grpc_max_threads
        self._rpc_threads = concurrent.futures.ThreadPoolExecutor(threads, "grpc")
        self._model_threads = concurrent.futures.ThreadPoolExecutor(threads, "model")
        if self._batching is not None:
            self._scheduler = BatchScheduler(self._batching, self._loop.loop)
        for name in ("",) + grpc_services.SERVICE_NAMES:
            self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        dataplane = self._dataplane()
        self.port = self._loop.run(self._create_grpc_server(dataplane))
        self._start_rest(dataplane)
        self._loop.run(self._grpc_server.start())
        LOG.info("Running gRPC ModelServer at %s:%d (%s)", self.options.bind_address, self.port,
                 "TLS" if self._ssl_config else "plaintext")
        self._spawn("initial-load", self._initial_load)
        return self.port

    async def _create_grpc_server(self, dataplane: DataPlane) -> int:
        """The gRPC server with its services, bound; returns the port."""
        server = grpc.aio.server(migration_thread_pool=self._rpc_threads,
                                 options=self.options.channel_arguments())
        server.add_generic_rpc_handlers(grpc_services.service_handlers(dataplane,
                                                                       self.stage_times))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        self._grpc_server = server
        return self._bind(server)

    def _bind(self, server: grpc.aio.Server) -> int:
        address = f"{self.options.bind_address}:{self.options.port}"
        try:
            if self._ssl_config is not None:
                return server.add_secure_port(address, tls.server_credentials(self._ssl_config))
            return server.add_insecure_port(address)
        except RuntimeError as err:
            raise UsageError(f"--port={self.options.port}: cannot bind {address}: {err}") from err

    def _start_rest(self, dataplane: DataPlane) -> None:
        if not self.options.rest_api_port:
            if self._prometheus_path:
                LOG.warning("monitoring is enabled but --rest_api_port is 0: metrics are "
                            "exported on the REST port, so they are not served")
            return
        try:
            self._rest = RestApiServer(dataplane, self._prometheus_path,
                                       self.options.bind_address, self.options.rest_api_port)
        except OSError as err:
            raise UsageError(f"--rest_api_port={self.options.rest_api_port}: {err}") from err
        self.rest_port = self._rest.start()
        LOG.info("Exporting HTTP/REST API at %s:%d", self.options.bind_address, self.rest_port)

    def _spawn(self, name: str, target) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _initial_load(self) -> None:
        self._apply_config(self._initial_config, "initial config")
        self.manager.start_polling(self.options.file_system_poll_wait_seconds)
        if self.options.model_config_file and self.options.model_config_file_poll_wait_seconds > 0:
            self._spawn("config-poller", self._poll_config_file)

    def _apply_config(self, config, source: str) -> None:
        try:
            self.manager.set_config(config)
        except errors.ServingError as err:
            LOG.error("Applying %s failed: %s: %s", source, err.code.name, err.message)

    def _poll_config_file(self) -> None:
        path = self.options.model_config_file
        while not self._stop.wait(self.options.model_config_file_poll_wait_seconds):
            try:
                config = read_model_server_config(path)
            except UsageError as err:  # keep serving the last good config
                LOG.error("Not reloading the model config: %s", err)
                continue
            self._apply_config(config, path)

    def _load_version(self, name: str, version: int, path: str) -> Servable:
        servable = load_servable(name, version, path, self.metrics, self.model_call_path)
        if self.options.enable_model_warmup:
            records = serving_contract.read_warmup_requests(path)
            try:
                serving_contract.replay_warmup(records, inference.warmup_handlers(servable))
            except errors.ServingError as err:
                raise errors.ServingError(err.code, f"Warmup request failed: {err.message}") from err
            if records:
                LOG.info("Finished reading warmup data for model at %s. Number of warmup "
                         "records read: %d.", path, len(records))
        return servable

    def _update_health(self) -> None:
        if self._stop.is_set():
            return
        status = (health_pb2.HealthCheckResponse.SERVING if self.manager.all_models_available()
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("",) + grpc_services.SERVICE_NAMES:
            self._health.set(name, status)

    def wait_until_available(self, timeout: float) -> bool:
        """Waits until every configured model has an AVAILABLE version."""
        deadline = time.monotonic() + timeout
        while not self.manager.all_models_available():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self, grace: Optional[float] = None) -> None:
        """Stops accepting requests and lets in-flight ones finish within `grace` seconds."""
        grace = self.options.shutdown_grace_seconds if grace is None else grace
        self._stop.set()
        self._health.enter_graceful_shutdown()
        if self._grpc_server is not None:
            self._loop.run(self._grpc_server.stop(grace))
        if self._rest is not None:
            self._rest.stop()
        for thread in self._threads:
            thread.join(timeout=grace + 60)
        if self._scheduler is not None:
            self._scheduler.stop()
        self.manager.stop()
        for pool in (self._rpc_threads, self._model_threads):
            if pool is not None:
                pool.shutdown()
        if self._loop is not None:
            self._loop.close()
        LOG.info("Model server stopped")

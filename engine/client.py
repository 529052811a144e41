"""RiskEngineClient: the risk engine's gRPC client of a TF-Serving-compatible fleet.

It speaks the tensorflow-serving-api stubs, so it works against `riskpipe serve`
and the real tensorflow_model_server alike:

- plain, TLS or mutual-TLS channels from an SSLConfig text file, the format the
  servers read (serving/tls.py);
- a deadline per call covering all its attempts;
- retries with jittered exponential backoff on UNAVAILABLE only (any other
  status is the server's answer and retrying would not change it);
- round-robin over several servers, skipping the ones whose grpc.health.v1
  check fails (checked in the background, and at once after an UNAVAILABLE);
- requests built from a feature dict: serialized tf.Examples for
  `serving_default`, or one raw tensor per feature for `serving_raw`;
- for other callers (credit scoring, engine/credit_scoring.py): prepared input
  tensors sent to any Predict signature with every output read back
  (`predict_outputs`), and the signatures a model serves (`signature_defs`,
  GetModelMetadata), with the same retries and deadline.

TensorFlow (through the tensorflow-serving-api protos) is imported when a
client is created, never at module import.
"""
import dataclasses
import itertools
import math
import random
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from common.serving_contract import (EXAMPLES_INPUT, MAX_MESSAGE_BYTES, OUTPUT_KEY,
                                     PREDICT_SIGNATURES, SERVING_DEFAULT)
from components.features import (FEATURE_TYPES, MODEL_FEATURES, OPTIONAL_FEATURES,
                                 serialize_example)

CHANNEL_OPTIONS = (("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),)
DT_FLOAT = 1  # tensorflow.DataType.DT_FLOAT
# The GetModelMetadata field holding the signatures (the only one TF Serving has).
SIGNATURE_DEF_FIELD = "signature_def"


class ScoringError(Exception):
    """A call that got no score; `code` is the gRPC status code name."""

    def __init__(self, message: str, code: str = "UNKNOWN"):
        super().__init__(message)
        self.code = code


class NoServerError(ScoringError):
    """None of the given servers answered its health check."""


@dataclasses.dataclass(frozen=True)
class ClientOptions:
    addresses: Tuple[str, ...]
    model_name: str = "fraud"
    # An SSLConfig text file read from the client's side (serving/tls.py): custom_ca
    # is the CA trusted, server_cert/server_key the client's own certificate for
    # mutual TLS. None for plaintext.
    ssl_config_file: Optional[str] = None
    # Overrides the name checked against the server certificate.
    tls_server_name: str = ""
    deadline_seconds: float = 2.0
    max_attempts: int = 4
    backoff_initial_seconds: float = 0.02
    backoff_max_seconds: float = 0.5
    health_check_interval_seconds: float = 1.0
    health_check_timeout_seconds: float = 0.5
    # The grpc.health.v1 service name checked; "" is the server as a whole.
    health_service: str = ""
    signature: str = SERVING_DEFAULT
    # The output tensor holding the fraud score; None picks the only output, or
    # the first of PREFERRED_OUTPUTS present.
    output_key: Optional[str] = None

    def __post_init__(self):
        if not self.addresses:
            raise ValueError("at least one server address is needed")
        if self.signature not in PREDICT_SIGNATURES:
            raise ValueError(f"signature '{self.signature}' is not one of "
                             f"{', '.join(PREDICT_SIGNATURES)}")
        if self.deadline_seconds <= 0 or self.max_attempts < 1:
            raise ValueError("deadline_seconds must be > 0 and max_attempts >= 1")


# riskpipe's own output key first, then names other exporters use.
PREFERRED_OUTPUTS = (OUTPUT_KEY, "score", "probabilities", "outputs", "output_0")


@dataclasses.dataclass(frozen=True)
class ScoreResult:
    score: float
    model_version: int
    address: str
    latency_seconds: float
    attempts: int


@dataclasses.dataclass(frozen=True)
class OutputsResult:
    """Every output of one Predict call, as numpy arrays (strings as bytes)."""

    outputs: Dict[str, Any]
    model_version: int
    address: str
    latency_seconds: float
    attempts: int


def parse_addresses(text: str) -> Tuple[str, ...]:
    """'host:port,host:port' -> a tuple; each entry needs a port."""
    addresses = tuple(a.strip() for a in text.split(",") if a.strip())
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"server address '{address}' is not HOST:PORT")
    return addresses


def load_client_tls(ssl_config_file: Optional[str], server_name: str = ""):
    """The client side of an ssl_config file (serving/tls.py), or None for plaintext."""
    if ssl_config_file is None:
        return None
    from serving import tls  # pylint: disable=import-outside-toplevel

    return tls.client_tls_from_ssl_config(ssl_config_file, server_name=server_name)


def open_channel(address: str, client_tls=None):
    """A gRPC channel to `address`: TLS (mutual when client_tls has a cert) or plaintext."""
    from serving import tls  # pylint: disable=import-outside-toplevel

    return tls.channel(address, client_tls, options=CHANNEL_OPTIONS)


class _Server:
    """One server address: its channel, stubs and last known health."""

    def __init__(self, address: str, client_tls):
        from grpc_health.v1 import health_pb2_grpc  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import (  # pylint: disable=import-outside-toplevel
            model_service_pb2_grpc, prediction_service_pb2_grpc)

        self.address = address
        self.channel = open_channel(address, client_tls)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.healthy = False
        self.last_problem = "not checked yet"


def check_health(server: _Server, service: str, timeout: float) -> None:
    """Updates `server.healthy` from one grpc.health.v1 Check."""
    import grpc  # pylint: disable=import-outside-toplevel
    from grpc_health.v1 import health_pb2  # pylint: disable=import-outside-toplevel

    try:
        reply = server.health.Check(health_pb2.HealthCheckRequest(service=service),
                                    timeout=timeout)
    except grpc.RpcError as err:
        # tensorflow_model_server has no grpc.health.v1 service: a server that
        # answers UNIMPLEMENTED is up, it just cannot report readiness.
        server.healthy = err.code() == grpc.StatusCode.UNIMPLEMENTED
        server.last_problem = "" if server.healthy else (
            f"health check failed: {err.code().name}: {err.details()}")
        return
    server.healthy = reply.status == health_pb2.HealthCheckResponse.SERVING
    server.last_problem = "" if server.healthy else (
        f"health status {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")


class RiskEngineClient:
    """Scores feature dicts on a fleet of servers; thread-safe."""

    def __init__(self, options: ClientOptions):
        from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel

        self.options = options
        self._predict_pb2 = predict_pb2
        client_tls = load_client_tls(options.ssl_config_file, options.tls_server_name)
        self._servers = [_Server(a, client_tls) for a in options.addresses]
        self._turn = itertools.count()
        self._stop = threading.Event()
        self.check_all()
        self._checker = threading.Thread(target=self._check_loop, name="health-check",
                                         daemon=True)
        self._checker.start()

    # --- servers and health -------------------------------------------------------------

    @property
    def servers(self) -> Sequence[_Server]:
        return tuple(self._servers)

    def check_all(self) -> None:
        for server in self._servers:
            check_health(server, self.options.health_service,
                         self.options.health_check_timeout_seconds)

    def _check_loop(self) -> None:
        while not self._stop.wait(self.options.health_check_interval_seconds):
            self.check_all()

    def require_healthy(self) -> None:
        """Raises NoServerError naming every server when none is healthy."""
        if not any(s.healthy for s in self._servers):
            problems = "; ".join(f"{s.address}: {s.last_problem}" for s in self._servers)
            raise NoServerError(f"no server is reachable ({problems})", code="UNAVAILABLE")

    def _next_server(self) -> _Server:
        """The next healthy server in round-robin order (any server if none is healthy)."""
        n = len(self._servers)
        start = next(self._turn)
        for i in range(n):
            server = self._servers[(start + i) % n]
            if server.healthy:
                return server
        return self._servers[start % n]

    def close(self) -> None:
        self._stop.set()
        self._checker.join()
        for server in self._servers:
            server.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- requests -----------------------------------------------------------------------

    def build_request(self, features: Sequence[Mapping[str, Any]], label: Optional[str] = None,
                      version: Optional[int] = None):
        """A PredictRequest for a batch of feature dicts (only the model's features are sent)."""
        request = self._predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, label, version)
        request.model_spec.signature_name = self.options.signature
        if self.options.signature == SERVING_DEFAULT:
            fill_examples_tensor(request.inputs[EXAMPLES_INPUT], features)
        else:
            for name, tensor in raw_tensors(features).items():
                request.inputs[name].CopyFrom(tensor)
        return request

    def predict(self, features: Mapping[str, Any], label: Optional[str] = None,
                version: Optional[int] = None) -> ScoreResult:
        """The fraud score of one transaction's features, by version label or number."""
        request = self.build_request([features], label=label, version=version)
        response, server, attempts, latency = self.call_predict(request)
        scores = read_scores(response, self.options.output_key)
        return ScoreResult(score=scores[0], model_version=response.model_spec.version.value,
                           address=server.address, latency_seconds=latency, attempts=attempts)

    def call_predict(self, request) -> Tuple[Any, _Server, int, float]:
        """Sends a PredictRequest with retries; returns (response, server, attempts, seconds)."""
        return self._call(lambda server: server.prediction.Predict, request)

    def predict_outputs(self, inputs: Mapping[str, Any], signature: str,
                        label: Optional[str] = None,
                        version: Optional[int] = None) -> OutputsResult:
        """Sends prepared input TensorProtos to `signature`; returns all its outputs.

        Unlike `predict`, any signature the model serves may be named (it is
        not checked against PREDICT_SIGNATURES): the caller knows its contract.
        """
        request = self._predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, label, version)
        request.model_spec.signature_name = signature
        for name, tensor in inputs.items():
            request.inputs[name].CopyFrom(tensor)
        response, server, attempts, latency = self.call_predict(request)
        return OutputsResult(outputs=read_outputs(response),
                             model_version=response.model_spec.version.value,
                             address=server.address, latency_seconds=latency,
                             attempts=attempts)

    def signature_defs(self, label: Optional[str] = None,
                       version: Optional[int] = None) -> Tuple[int, Dict[str, Any]]:
        """(model version, {signature name: SignatureDef}) from GetModelMetadata."""
        from tensorflow_serving.apis import (  # pylint: disable=import-outside-toplevel
            get_model_metadata_pb2)

        request = get_model_metadata_pb2.GetModelMetadataRequest(
            metadata_field=[SIGNATURE_DEF_FIELD])
        self._fill_spec(request.model_spec, label, version)
        response, _, _, _ = self._call(lambda server: server.prediction.GetModelMetadata,
                                       request)
        if SIGNATURE_DEF_FIELD not in response.metadata:
            raise ScoringError(f"model '{self.options.model_name}': GetModelMetadata "
                               f"returned no {SIGNATURE_DEF_FIELD}", code="INVALID_ARGUMENT")
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[SIGNATURE_DEF_FIELD].Unpack(signatures)
        return response.model_spec.version.value, dict(signatures.signature_def)

    def _fill_spec(self, spec, label: Optional[str], version: Optional[int]) -> None:
        spec.name = self.options.model_name
        if version is not None:
            spec.version.value = version
        elif label:
            spec.version_label = label

    def _call(self, method: Callable[[_Server], Callable], request
              ) -> Tuple[Any, _Server, int, float]:
        """method(server)(request) with retries; returns (response, server, attempts, seconds)."""
        import grpc  # pylint: disable=import-outside-toplevel

        opts = self.options
        start = time.perf_counter()
        deadline = start + opts.deadline_seconds
        backoff = opts.backoff_initial_seconds
        for attempt in range(1, opts.max_attempts + 1):
            server = self._next_server()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise ScoringError(f"deadline of {opts.deadline_seconds}s exceeded after "
                                   f"{attempt - 1} attempts", code="DEADLINE_EXCEEDED")
            try:
                response = method(server)(request, timeout=remaining)
                return response, server, attempt, time.perf_counter() - start
            except grpc.RpcError as err:
                code = err.code()
                if code != grpc.StatusCode.UNAVAILABLE or attempt == opts.max_attempts:
                    raise ScoringError(f"{server.address}: {err.details()}",
                                       code=code.name) from err
                server.healthy = False
                server.last_problem = f"UNAVAILABLE: {err.details()}"
            pause = random.uniform(0, backoff)
            if time.perf_counter() + pause >= deadline:
                raise ScoringError(f"{server.address}: UNAVAILABLE until the deadline of "
                                   f"{opts.deadline_seconds}s", code="UNAVAILABLE")
            time.sleep(pause)
            backoff = min(backoff * 2, opts.backoff_max_seconds)
        raise AssertionError("unreachable: the loop returns or raises")


def fill_examples_tensor(tensor, features: Sequence[Mapping[str, Any]]) -> None:
    """Makes `tensor` (a TensorProto) a DT_STRING vector of serialized tf.Examples."""
    from tensorflow.core.framework import types_pb2  # pylint: disable=import-outside-toplevel

    tensor.dtype = types_pb2.DT_STRING
    tensor.tensor_shape.dim.add(size=len(features))
    tensor.string_val.extend(serialize_example(model_features(f)) for f in features)


def model_features(features: Mapping[str, Any]) -> Dict[str, Any]:
    """The model's input features of a full feature dict (no ids, no labels)."""
    return {k: v for k, v in features.items() if k in MODEL_FEATURES and v is not None}


def raw_tensors(features: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """One TensorProto per model feature, shape [batch], for the serving_raw signature.

    An undefined optional feature is NaN (they are all floats), as the signature
    expects; an undefined required feature is an error.
    """
    from tensorflow.core.framework import (  # pylint: disable=import-outside-toplevel
        tensor_pb2, tensor_shape_pb2, types_pb2)

    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(features))])
    out = {}
    for name in MODEL_FEATURES:
        kind = FEATURE_TYPES[name]
        values = [f.get(name) for f in features]
        if any(v is None for v in values):
            if name not in OPTIONAL_FEATURES:
                raise ValueError(f"required feature '{name}' is missing")
            values = [math.nan if v is None else v for v in values]
        if kind == "int":
            out[name] = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, tensor_shape=shape,
                                               int64_val=[int(v) for v in values])
        elif kind == "float":
            out[name] = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape,
                                               float_val=[float(v) for v in values])
        else:
            out[name] = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape,
                                               string_val=[str(v).encode() for v in values])
    return out


def read_outputs(response) -> Dict[str, Any]:
    """Every output tensor of a PredictResponse as a numpy array (strings as bytes)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return {key: tf.make_ndarray(tensor) for key, tensor in response.outputs.items()}


def read_scores(response, output_key: Optional[str] = None) -> List[float]:
    """The fraud scores of a PredictResponse, one per example."""
    outputs = response.outputs
    if output_key is None:
        if len(outputs) == 1:
            output_key = next(iter(outputs))
        else:
            output_key = next((k for k in PREFERRED_OUTPUTS if k in outputs), None)
            if output_key is None:
                raise ScoringError(f"cannot tell the score among outputs {sorted(outputs)}; "
                                   "name it with output_key", code="INVALID_ARGUMENT")
    if output_key not in outputs:
        raise ScoringError(f"the response has no output '{output_key}' "
                           f"(it has {sorted(outputs)})", code="INVALID_ARGUMENT")
    tensor = outputs[output_key]
    if tensor.float_val:
        values = list(tensor.float_val)
    elif tensor.tensor_content and tensor.dtype == DT_FLOAT:
        content = tensor.tensor_content
        values = list(struct.unpack(f"<{len(content) // 4}f", content))
    elif tensor.double_val:
        values = list(tensor.double_val)
    else:
        raise ScoringError(f"output '{output_key}' holds no float values",
                           code="INVALID_ARGUMENT")
    dims = tensor.tensor_shape.dim
    # A [batch, 2] softmax output: the fraud class is the second column.
    if len(dims) == 2 and dims[1].size == 2:
        values = values[1::2]
    return values

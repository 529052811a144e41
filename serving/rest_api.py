"""The HTTP side of the server on --rest_api_port: Prometheus metrics, model status
and TF Serving's REST API for inference and metadata.

Routes, as tensorflow_model_server serves them:
  GET  <prometheus path>                       metrics (when the monitoring config enables them)
  GET  /v1/models/NAME[/versions/N|/labels/L]  GetModelStatus as JSON
  GET  /v1/models/NAME[/versions/N|/labels/L]/metadata
       GetModelMetadata as JSON (the fleet's readiness probe asks the stable label)
  POST /v1/models/NAME[/versions/N|/labels/L]:predict
       {"signature_name": ..., "instances": [...]} (row format) or {"inputs": ...}
       (columnar); binary strings as {"b64": "..."}.
  POST /v1/models/NAME[/versions/N|/labels/L]:classify and :regress
       {"signature_name": ..., "context": {...}, "examples": [{feature: value}, ...]}
       -> {"results": ...}; a feature's value is a number, a string, {"b64": ...}
       or a list of one kind (integers become int64_list, other numbers float_list).
"""
import base64
import http.server
import json
import logging
import re
import threading
import time
from typing import Optional

import numpy as np
from google.protobuf import json_format
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_status_pb2, model_pb2,
                                     predict_pb2, regression_pb2)

from serving import errors, inference, tensors
from serving.metrics import ServingMetrics
from serving.model_manager import ModelManager
from serving.options import DEFAULT_MAX_RECEIVE_BYTES
from serving.prediction_service import SIGNATURE_DEF_FIELD, signature_def_map
from serving.signature_methods import DEFAULT_SIGNATURE

LOG = logging.getLogger(__name__)
_MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|(?P<method>:predict|:classify|:regress))?$")
_API_NAMES = {":predict": "Predict", ":classify": "Classify", ":regress": "Regress"}
_HTTP_STATUS = {"OK": 200, "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "NOT_FOUND": 404,
                "UNAVAILABLE": 503, "RESOURCE_EXHAUSTED": 429, "UNIMPLEMENTED": 501}


def _model_spec(match) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=match.group("name"))
    if match.group("version"):
        spec.version.value = int(match.group("version"))
    elif match.group("label"):
        spec.version_label = match.group("label")
    return spec


def _decode_strings(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_strings(item) for item in value]
    return value.encode() if isinstance(value, str) else value


def _to_json(array: np.ndarray):
    if array.dtype == object:
        def encode(value: bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return {"b64": base64.b64encode(value).decode()}
        return np.vectorize(encode, otypes=[object])(array).tolist() if array.size else []
    return array.tolist()


def _request_tensor(value, info):
    dtype = tensors.numpy_dtype_of(info.dtype)
    if dtype == object:
        value = _decode_strings(value)
    array = np.array(value, dtype=dtype)
    return tensors.to_tensor_proto(array)


def build_predict_request(spec: model_pb2.ModelSpec, body: dict, signature_defs) -> tuple:
    """A PredictRequest from a REST body; returns (request, row_format)."""
    signature_name = body.get("signature_name") or DEFAULT_SIGNATURE
    request = predict_pb2.PredictRequest(model_spec=spec)
    request.model_spec.signature_name = signature_name
    signature = signature_defs.get(signature_name)
    if signature is None:
        raise errors.failed_precondition(f'Serving signature key "{signature_name}" not found.')
    aliases = sorted(signature.inputs)
    if ("instances" in body) == ("inputs" in body):
        raise errors.invalid_argument("Missing 'inputs' or 'instances' key")
    row_format = "instances" in body
    payload = body["instances"] if row_format else body["inputs"]
    if row_format and isinstance(payload, list) and payload and isinstance(payload[0], dict) \
            and set(payload[0]) != {"b64"}:
        payload = {alias: [row.get(alias) for row in payload] for alias in aliases}
    if not isinstance(payload, dict):
        if len(aliases) != 1:
            raise errors.invalid_argument(
                f"The signature has {len(aliases)} inputs; name them: {','.join(aliases)}")
        payload = {aliases[0]: payload}
    for alias, value in payload.items():
        if alias not in signature.inputs:
            raise errors.invalid_argument(f"input tensor alias not found in signature: {alias}")
        try:
            request.inputs[alias].CopyFrom(_request_tensor(value, signature.inputs[alias]))
        except (TypeError, ValueError) as err:
            raise errors.invalid_argument(f"input {alias}: {err}") from err
    return request, row_format


def predict_json(response: predict_pb2.PredictResponse, row_format: bool) -> dict:
    outputs = {alias: tensors.to_ndarray(proto, alias) for alias, proto in response.outputs.items()}
    if not row_format:
        if len(outputs) == 1:
            return {"outputs": _to_json(next(iter(outputs.values())))}
        return {"outputs": {alias: _to_json(value) for alias, value in outputs.items()}}
    if len(outputs) == 1:
        return {"predictions": _to_json(next(iter(outputs.values())))}
    rows = min(value.shape[0] for value in outputs.values()) if outputs else 0
    return {"predictions": [{alias: _to_json(value[row]) if isinstance(value[row], np.ndarray)
                             else _to_json(np.array([value[row]]))[0]
                             for alias, value in outputs.items()} for row in range(rows)]}


def _fill_feature(feature, name: str, value) -> None:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise errors.invalid_argument(f"feature {name}: an empty list has no type")
    try:
        _extend_feature(feature, values)
    except (TypeError, ValueError, KeyError) as err:  # bad base64, an int64 overflow, mixed kinds
        raise errors.invalid_argument(f"feature {name}: {err}") from err


def _extend_feature(feature, values: list) -> None:
    if all(isinstance(item, (str, dict)) for item in values):
        feature.bytes_list.value.extend(_decode_strings(values))
    elif all(isinstance(item, int) and not isinstance(item, bool) for item in values):
        feature.int64_list.value.extend(values)
    elif all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in values):
        feature.float_list.value.extend(values)
    else:
        raise ValueError('values must be numbers, strings or {"b64": ...} of one kind')


def _example(features, where: str) -> example_pb2.Example:
    if not isinstance(features, dict):
        raise errors.invalid_argument(f"{where} must be a JSON object of features")
    example = example_pb2.Example()
    for name, value in features.items():
        _fill_feature(example.features.feature[name], name, value)
    return example


def build_example_request(request_class, spec: model_pb2.ModelSpec, body: dict):
    """A ClassificationRequest or RegressionRequest from a REST classify/regress body."""
    request = request_class(model_spec=spec)
    request.model_spec.signature_name = body.get("signature_name") or DEFAULT_SIGNATURE
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
        raise errors.invalid_argument("'examples' must be a non-empty list of objects")
    parsed = [_example(features, f"examples[{index}]") for index, features in enumerate(examples)]
    if "context" in body:
        target = request.input.example_list_with_context
        target.context.CopyFrom(_example(body["context"], "context"))
    else:
        target = request.input.example_list
    target.examples.extend(parsed)
    return request


def classify_json(response: classification_pb2.ClassificationResponse) -> dict:
    return {"results": [[[entry.label, entry.score] for entry in classifications.classes]
                        for classifications in response.result.classifications]}


def regress_json(response: regression_pb2.RegressionResponse) -> dict:
    return {"results": [entry.value for entry in response.result.regressions]}


def metadata_json(manager: ModelManager, spec: model_pb2.ModelSpec) -> dict:
    """GetModelMetadata as TF Serving's REST API writes it."""
    servable = manager.resolve(spec)
    return {"model_spec": {"name": servable.name, "signature_name": "",
                           "version": str(servable.version)},
            "metadata": {SIGNATURE_DEF_FIELD: json_format.MessageToDict(
                signature_def_map(servable), preserving_proto_field_name=True)}}


def status_json(manager: ModelManager, spec: model_pb2.ModelSpec) -> dict:
    entries = []
    for version, status in manager.version_statuses(spec):
        entries.append({
            "version": str(version),
            "state": get_model_status_pb2.ModelVersionStatus.State.Name(status.state),
            "status": {"error_code": errors.status_code_from_number(status.error_code).name
                       if status.error_code else "OK",
                       "error_message": status.error_message},
        })
    return {"model_version_status": entries}


class RestApiServer:
    """A threaded HTTP server; `start` returns the bound port."""

    def __init__(self, manager: ModelManager, metrics: ServingMetrics, runner: inference.Runner,
                 prometheus_path: Optional[str], bind_address: str, port: int):
        handler = _handler_class(manager, metrics, runner, prometheus_path)
        self._server = http.server.ThreadingHTTPServer((bind_address, port), handler)
        self._server.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> int:
        self._thread = threading.Thread(target=self._server.serve_forever, name="rest-api",
                                        daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_class(manager: ModelManager, metrics: ServingMetrics, runner: inference.Runner,
                   prometheus_path: Optional[str]) -> type:

    def _answer(method: str, servable, spec: model_pb2.ModelSpec, body: dict) -> dict:
        if method == ":classify":
            request = build_example_request(classification_pb2.ClassificationRequest, spec, body)
            return classify_json(_complete(inference.classify(servable, request)))
        if method == ":regress":
            request = build_example_request(regression_pb2.RegressionRequest, spec, body)
            return regress_json(_complete(inference.regress(servable, request)))
        request, row_format = build_predict_request(spec, body, servable.signature_defs)
        return predict_json(_complete(inference.predict(servable, request)), row_format)

    def _complete(operation: inference.Operation):
        return inference.complete(operation, runner)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's name
            LOG.debug("%s " + format, self.address_string(), *args)

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _send_json(self, code: int, payload: dict) -> None:
            self._send(code, json.dumps(payload).encode(), "application/json")

        def _send_error(self, err: errors.ServingError) -> None:
            self._send_json(_HTTP_STATUS.get(err.code.name, 500), {"error": err.message})

        def do_GET(self):  # noqa: N802 - http.server's naming
            if prometheus_path and self.path == prometheus_path:
                self._send(200, metrics.exposition().encode(), "text/plain; version=0.0.4")
                return
            match = _MODEL_PATH.match(self.path)
            if not match or match.group("method"):
                self._send_json(404, {"error": f"Malformed request: GET {self.path}"})
                return
            answer = metadata_json if match.group("metadata") else status_json
            try:
                self._send_json(200, answer(manager, _model_spec(match)))
            except errors.ServingError as err:
                self._send_error(err)

        def _read_body(self) -> bytes:
            """The request body, refused unread beyond the gRPC request size limit."""
            length = self.headers.get("Content-Length", "0")
            if not length.isdigit() or int(length) > DEFAULT_MAX_RECEIVE_BYTES:
                self.close_connection = True  # the unread body must not be taken for a request
                raise errors.invalid_argument(
                    f"Content-Length {length!r}: the body must be at most "
                    f"{DEFAULT_MAX_RECEIVE_BYTES} bytes")
            return self.rfile.read(int(length))

        def do_POST(self):  # noqa: N802
            match = _MODEL_PATH.match(self.path)
            if not match or not match.group("method"):
                self._send_json(404, {"error": f"Malformed request: POST {self.path}"})
                return
            started = time.perf_counter()
            spec = _model_spec(match)
            method = match.group("method")
            status, version = "OK", ""
            try:
                body = json.loads(self._read_body())
                if not isinstance(body, dict):
                    raise errors.invalid_argument("JSON Parse error: the body must be an object")
                servable = manager.resolve(spec)
                version = str(servable.version)
                self._send_json(200, _answer(method, servable, spec, body))
            except json.JSONDecodeError as err:
                status = "INVALID_ARGUMENT"
                self._send_json(400, {"error": f"JSON Parse error: {err}"})
            except errors.ServingError as err:
                status = err.code.name
                self._send_error(err)
            except Exception as err:  # a bug must cost one request an error, not a dropped connection
                LOG.exception("REST %s failed", self.path)
                status = "INTERNAL"
                self._send_json(500, {"error": f"{type(err).__name__}: {err}"})
            metrics.record_request(_API_NAMES[method], spec.name, version, status,
                                   (time.perf_counter() - started) * 1e6, entrypoint="REST")

    return Handler


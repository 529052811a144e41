"""The HTTP side of the server on --rest_api_port: Prometheus metrics, model status
and TF Serving's REST API for inference and metadata.

A thin transport: JSON is translated to and from TF Serving's request and
response messages, and every request runs through the data plane
(serving/dataplane.py), so it is resolved, timed and counted as a gRPC one is
(the request metrics' `entrypoint` label tells them apart).

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
from typing import Optional

import numpy as np
from google.protobuf import json_format
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, model_pb2, predict_pb2, regression_pb2)

from common.serving_contract import DEFAULT_SIGNATURE, MAX_MESSAGE_BYTES
from serving import errors, tensors
from serving.dataplane import REST, DataPlane
from serving.model_operations import SIGNATURE_DEF_FIELD

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


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> dict:
    """GetModelMetadata as TF Serving's REST API writes it."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_map)
    return {"model_spec": {"name": response.model_spec.name, "signature_name": "",
                           "version": str(response.model_spec.version.value)},
            "metadata": {SIGNATURE_DEF_FIELD: json_format.MessageToDict(
                signature_map, preserving_proto_field_name=True)}}


def status_json(response: get_model_status_pb2.GetModelStatusResponse) -> dict:
    entries = []
    for entry in response.model_version_status:
        entries.append({
            "version": str(entry.version),
            "state": get_model_status_pb2.ModelVersionStatus.State.Name(entry.state),
            "status": {"error_code": errors.status_code_from_number(entry.status.error_code).name
                       if entry.status.error_code else "OK",
                       "error_message": entry.status.error_message},
        })
    return {"model_version_status": entries}


def _get_request(spec: model_pb2.ModelSpec, metadata: bool) -> tuple:
    """(API, request message, JSON of its response) of a GET on a model's path."""
    if metadata:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=spec, metadata_field=[SIGNATURE_DEF_FIELD])
        return "GetModelMetadata", request, metadata_json
    return ("GetModelStatus", get_model_status_pb2.GetModelStatusRequest(model_spec=spec),
            status_json)


def _post_request(method: str, spec: model_pb2.ModelSpec, body: dict, servable) -> tuple:
    """(request message, JSON of its response) of a POST body on a model's :method."""
    if method == ":classify":
        request = build_example_request(classification_pb2.ClassificationRequest, spec, body)
        return request, classify_json
    if method == ":regress":
        return build_example_request(regression_pb2.RegressionRequest, spec, body), regress_json
    request, row_format = build_predict_request(spec, body, servable.signature_defs)
    return request, lambda response: predict_json(response, row_format)


class RestApiServer:
    """A threaded HTTP server; `start` returns the bound port."""

    def __init__(self, dataplane: DataPlane, prometheus_path: Optional[str], bind_address: str,
                 port: int):
        handler = _handler_class(dataplane, prometheus_path)
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


def _handler_class(dataplane: DataPlane, prometheus_path: Optional[str]) -> type:

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

        def _answer(self, api: str, request, to_json, model_name: str) -> None:
            """Runs the request through the data plane and sends its JSON or its error."""
            try:
                response = dataplane.call(api, request, REST, model_name=model_name)
            except errors.ServingError as err:
                self._send_json(_HTTP_STATUS.get(err.code.name, 500), {"error": err.message})
                return
            self._send_json(200, to_json(response))

        def do_GET(self):  # noqa: N802 - http.server's naming
            if prometheus_path and self.path == prometheus_path:
                self._send(200, dataplane.metrics.exposition().encode(),
                           "text/plain; version=0.0.4")
                return
            match = _MODEL_PATH.match(self.path)
            if not match or match.group("method"):
                self._send_json(404, {"error": f"Malformed request: GET {self.path}"})
                return
            spec = _model_spec(match)
            api, request, to_json = _get_request(spec, bool(match.group("metadata")))
            self._answer(api, request, to_json, spec.name)

        def _read_body(self) -> dict:
            """The JSON body, refused unread beyond the gRPC request size limit."""
            length = self.headers.get("Content-Length", "0")
            if not length.isdigit() or int(length) > MAX_MESSAGE_BYTES:
                self.close_connection = True  # the unread body must not be taken for a request
                raise errors.invalid_argument(
                    f"Content-Length {length!r}: the body must be at most "
                    f"{MAX_MESSAGE_BYTES} bytes")
            try:
                body = json.loads(self.rfile.read(int(length)))
            except json.JSONDecodeError as err:
                raise errors.invalid_argument(f"JSON Parse error: {err}") from err
            if not isinstance(body, dict):
                raise errors.invalid_argument("JSON Parse error: the body must be an object")
            return body

        def do_POST(self):  # noqa: N802
            match = _MODEL_PATH.match(self.path)
            if not match or not match.group("method"):
                self._send_json(404, {"error": f"Malformed request: POST {self.path}"})
                return
            spec, method = _model_spec(match), match.group("method")
            response_json = []  # known once the body says which format it wants

            def build(scope):
                body = self._read_body()
                request, to_json = _post_request(method, spec, body, scope.resolve(spec))
                response_json.append(to_json)
                return request

            self._answer(_API_NAMES[method], build, lambda response: response_json[0](response),
                         spec.name)

    return Handler

"""Predict, Classify, Regress and MultiInference against one loaded version.

Follows TF Serving's servables/tensorflow predict_util, classifier, regressor
and multi_inference: the same validation order, status codes and messages.

Each operation takes a resolver (anything with `resolve(model_spec) ->
Servable`: the data plane's request scope, or one fixed servable for warmup)
and the request. It is a generator: it yields the model calls it needs (a
ModelCall) and returns the response. `complete` runs one with a blocking
runner (REST handlers, warmup); `complete_async` with an awaitable one (the
gRPC services on the event loop), so both share every check and message.
"""
import asyncio
import threading
import weakref
from concurrent import futures
from typing import (Any, Awaitable, Callable, Dict, Generator, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple)

import grpc
import numpy as np
from tensorflow_serving.apis import (classification_pb2, inference_pb2, input_pb2, model_pb2,
                                     predict_pb2, regression_pb2)

from common.serving_contract import (CLASSIFY_INPUTS, CLASSIFY_METHOD, CLASSIFY_OUTPUT_CLASSES,
                                     CLASSIFY_OUTPUT_SCORES, DEFAULT_SIGNATURE, PREDICT_METHOD,
                                     REGRESS_INPUTS, REGRESS_METHOD, REGRESS_OUTPUTS)
from serving import errors, tensors
from serving.servable import Servable


# About a millisecond of model time for the fraud model on one core.
INLINE_MAX_ROWS = 64


class ModelCall(NamedTuple):
    servable: Servable
    signature_name: str
    inputs: Mapping[str, np.ndarray]  # by alias
    output_keys: Sequence[str]


Outputs = Dict[str, np.ndarray]
# An operation: yields model calls, is sent their outputs, returns the response.
Operation = Generator[ModelCall, Outputs, Any]
# runner(servable, signature_name, inputs, output_keys) -> outputs by alias (or an awaitable)
Runner = Callable[..., Outputs]
AsyncRunner = Callable[..., Awaitable[Outputs]]


def direct_runner(servable: Servable, signature_name: str, inputs: Mapping[str, np.ndarray],
                  output_keys: Sequence[str]) -> Outputs:
    return servable.run(signature_name, inputs, output_keys)


def unbatched_runner(executor: futures.Executor) -> AsyncRunner:
    """Model calls without batching, for the gRPC services on the event loop.

    A call of at most INLINE_MAX_ROWS rows runs on the loop: that saves a
    thread hand-off, a quarter of a lone small request's latency. A larger one
    runs on `executor`, so it never holds up the loop and the requests behind it.
    """
    async def run(servable: Servable, signature_name: str, inputs: Mapping[str, np.ndarray],
                  output_keys: Sequence[str]) -> Outputs:
        if max((value.shape[0] if value.ndim else 1 for value in inputs.values()),
               default=0) <= INLINE_MAX_ROWS:
            return servable.run(signature_name, inputs, output_keys)
        return await asyncio.get_running_loop().run_in_executor(
            executor, servable.run, signature_name, inputs, output_keys)
    return run


def complete(operation: Operation, runner: Runner = direct_runner):
    """Runs an operation's model calls with a blocking runner; returns its response."""
    outputs = None
    try:
        while True:
            outputs = runner(*operation.send(outputs))
    except StopIteration as done:
        return done.value


async def complete_async(operation: Operation, runner: AsyncRunner):
    """Runs an operation's model calls with an awaitable runner; returns its response."""
    outputs = None
    try:
        while True:
            outputs = await runner(*operation.send(outputs))
    except StopIteration as done:
        return done.value


def make_model_spec(target: model_pb2.ModelSpec, name: str, signature_name: str,
                    version: int) -> None:
    """Fills a response's model_spec: the resolved numeric version, never a label."""
    target.name = name
    target.signature_name = signature_name or DEFAULT_SIGNATURE
    target.version.value = version


def required_model_spec(request) -> model_pb2.ModelSpec:
    if not request.HasField("model_spec"):
        raise errors.invalid_argument("Missing ModelSpec")
    return request.model_spec


class BoundServable:
    """Resolves every model spec to one servable: warmup replays a version's own requests."""

    def __init__(self, servable: Servable):
        self.servable = servable

    def resolve(self, model_spec: model_pb2.ModelSpec) -> Servable:
        return self.servable


def _set_text(keys) -> str:
    return ",".join(sorted(keys))


# ---------------------------------------------------------------- Predict

def predict(scope, request: predict_pb2.PredictRequest) -> Operation:
    servable = scope.resolve(required_model_spec(request))
    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_def(signature_name)
    if signature is None:
        raise errors.failed_precondition(f'Serving signature key "{signature_name}" not found.')
    if signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        raise errors.internal(
            f"Expected prediction signature method_name to be one of {{{PREDICT_METHOD}, "
            f"{CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {signature.method_name}")
    spec = _signature_spec(servable, signature_name, signature)
    inputs = _predict_inputs(spec, request)
    output_keys = (list(spec.outputs) if not request.output_filter
                   else _output_keys(signature, request.output_filter))
    outputs = yield ModelCall(servable, signature_name, inputs, output_keys)
    response = predict_pb2.PredictResponse()
    make_model_spec(response.model_spec, request.model_spec.name, signature_name, servable.version)
    for key in output_keys:
        tensors.write_tensor_proto(outputs[key], response.outputs[key])
    return response


class _InputSpec(NamedTuple):
    alias: str
    name: str  # the feed name, for messages
    dtype: int
    dims: Optional[Tuple[int, ...]]  # None for an unknown rank


class _SignatureSpec(NamedTuple):
    """What a request is checked against, read once from a signature's protobuf maps
    (walking them costs more than the rest of a small request's checks)."""
    signature: Any  # the SignatureDef it was read from
    inputs: Tuple[_InputSpec, ...]  # by alias, sorted
    outputs: Tuple[str, ...]  # in the signature's order


# servable -> {signature name: _SignatureSpec}; weak, so that an unloaded version is freed.
_SPECS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_SPECS_LOCK = threading.Lock()


def _signature_spec(servable: Servable, signature_name: str, signature) -> _SignatureSpec:
    specs = _SPECS.get(servable)
    spec = specs.get(signature_name) if specs is not None else None
    if spec is not None and spec.signature is signature:
        return spec
    spec = _SignatureSpec(
        signature,
        tuple(_InputSpec(alias, info.name, info.dtype,
                         None if info.tensor_shape.unknown_rank
                         else tuple(dim.size for dim in info.tensor_shape.dim))
              for alias, info in sorted(signature.inputs.items())),
        tuple(signature.outputs.keys()))
    with _SPECS_LOCK:
        _SPECS[servable] = {**_SPECS.get(servable, {}), signature_name: spec}
    return spec


def _predict_inputs(spec: _SignatureSpec,
                    request: predict_pb2.PredictRequest) -> Dict[str, np.ndarray]:
    sent = request.inputs
    if len(sent) != len(spec.inputs):
        sent, expected = set(sent.keys()), {item.alias for item in spec.inputs}
        raise errors.invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{_set_text(sent)}}}) != len({{{_set_text(expected)}}}). "
            f"Sent extra: {{{_set_text(sent - expected)}}}. "
            f"Missing but required: {{{_set_text(expected - sent)}}}.")
    inputs = {}
    for index, info in enumerate(spec.inputs):
        alias = info.alias
        if alias not in sent:
            raise errors.invalid_argument(
                f"Signature input alias: {alias}(feed name: {info.name}) not found in request "
                f"and no default value provided. Inputs expected to be in the request "
                f"{{{_set_text(sent.keys())}}}, or default input alias set: ")
        proto = sent[alias]
        if proto.dtype != info.dtype:
            raise errors.invalid_argument(
                f"Expects arg[{index}] to be {tensors.dtype_name(info.dtype)} but "
                f"{tensors.dtype_name(proto.dtype)} is provided")
        value = tensors.to_ndarray(proto, alias)
        _check_shape(alias, value.shape, info.dims)
        inputs[alias] = value
    return inputs


def _check_shape(alias: str, shape: Tuple[int, ...], dims: Optional[Tuple[int, ...]]) -> None:
    if dims is None:  # unknown rank
        return
    compatible = len(dims) == len(shape) and all(
        want < 0 or want == got for want, got in zip(dims, shape))
    if not compatible:
        wanted = "[" + ",".join("?" if size < 0 else str(size) for size in dims) + "]"
        raise errors.invalid_argument(
            f"input tensor alias {alias} has shape [{','.join(map(str, shape))}] but the "
            f"signature expects {wanted}")


def _output_keys(signature, output_filter: Sequence[str]) -> List[str]:
    if not output_filter:
        return list(signature.outputs.keys())
    seen = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise errors.invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{_set_text(signature.outputs.keys())}}}.")
        if alias in seen:
            raise errors.invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.append(alias)
    return seen


# ---------------------------------------------------------------- Input

def serialized_examples(input_proto: input_pb2.Input) -> np.ndarray:
    """The serialized tf.Examples of a Classify/Regress Input.

    With a context, each example is serialized after the context, as TF
    Serving does: proto concatenation merges the two, the example's own
    features winning.
    """
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        values = [example.SerializeToString() for example in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = input_proto.example_list_with_context
        context = with_context.context.SerializeToString()
        values = [context + example.SerializeToString() for example in with_context.examples]
    else:
        values = []
    if not values:
        raise errors.invalid_argument("Input is empty.")
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _named_signature(servable: Servable, model_spec, method: str, api: str):
    signature_name = model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_def(signature_name)
    if signature is None:
        raise errors.invalid_argument(f"No signature was found with the name: {signature_name}")
    if signature.method_name != method:
        raise errors.invalid_argument(
            f"Expected {api} signature method_name to be {method}. Was: {signature.method_name}")
    return signature_name, signature


# ---------------------------------------------------------------- Classify

def _classification_outputs(signature) -> List[str]:
    if signature.method_name != CLASSIFY_METHOD:
        raise errors.invalid_argument(
            f"Expected classification signature method_name to be {CLASSIFY_METHOD}. "
            f"Was: {signature.method_name}")
    if len(signature.inputs) != 1:
        raise errors.invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise errors.invalid_argument(
            f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if CLASSIFY_INPUTS not in signature.inputs:
        raise errors.failed_precondition("No classification inputs found in SignatureDef")
    keys = [key for key in (CLASSIFY_OUTPUT_CLASSES, CLASSIFY_OUTPUT_SCORES)
            if key in signature.outputs]
    if not keys:
        raise errors.failed_precondition(
            f'Expected classification signature outputs to contain at least one of '
            f'"{CLASSIFY_OUTPUT_CLASSES}" or "{CLASSIFY_OUTPUT_SCORES}".')
    return keys


def _classification_result(outputs: Mapping[str, np.ndarray], num_examples: int,
                           result: classification_pb2.ClassificationResult) -> None:
    classes = outputs.get(CLASSIFY_OUTPUT_CLASSES)
    scores = outputs.get(CLASSIFY_OUTPUT_SCORES)
    for name, tensor, kind in (("classes", classes, "O"), ("scores", scores, "f")):
        if tensor is None:
            continue
        if tensor.ndim != 2:
            raise errors.invalid_argument(
                f"Expected Tensor shape: [batch_size num_classes] but got {list(tensor.shape)}")
        if tensor.dtype.kind != kind:
            want = "DT_STRING" if kind == "O" else "DT_FLOAT"
            raise errors.invalid_argument(f"Expected {name} Tensor of {want}. Got: {tensor.dtype}")
        if tensor.shape[0] != num_examples:
            raise errors.invalid_argument(
                f"Expected {name} output batch size of {num_examples}. Got: {tensor.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise errors.invalid_argument(
            f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} "
            f"vs. {scores.shape[1]}")
    num_classes = (classes if classes is not None else scores).shape[1]
    for row in range(num_examples):
        classifications = result.classifications.add()
        for column in range(num_classes):
            entry = classifications.classes.add()
            if classes is not None:
                entry.label = classes[row, column].decode("utf-8", "replace")
            if scores is not None:
                entry.score = float(scores[row, column])


def classify(scope, request: classification_pb2.ClassificationRequest) -> Operation:
    servable = scope.resolve(required_model_spec(request))
    signature_name, signature = _named_signature(
        servable, request.model_spec, CLASSIFY_METHOD, "classification")
    output_keys = _classification_outputs(signature)
    examples = serialized_examples(request.input)
    outputs = yield ModelCall(servable, signature_name, {CLASSIFY_INPUTS: examples}, output_keys)
    response = classification_pb2.ClassificationResponse()
    make_model_spec(response.model_spec, request.model_spec.name, signature_name, servable.version)
    _classification_result(outputs, len(examples), response.result)
    return response


# ---------------------------------------------------------------- Regress

def _regression_outputs(signature) -> List[str]:
    if signature.method_name != REGRESS_METHOD:
        raise errors.invalid_argument(
            f"Expected regression signature method_name to be {REGRESS_METHOD}. "
            f"Was: {signature.method_name}")
    if len(signature.inputs) != 1:
        raise errors.invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise errors.invalid_argument("Expected one output Tensor.")
    if REGRESS_INPUTS not in signature.inputs:
        raise errors.failed_precondition("No regression inputs found in SignatureDef")
    if REGRESS_OUTPUTS not in signature.outputs:
        raise errors.failed_precondition("No regression outputs found in SignatureDef")
    return [REGRESS_OUTPUTS]


def _regression_result(outputs: Mapping[str, np.ndarray], num_examples: int,
                       result: regression_pb2.RegressionResult) -> None:
    values = outputs[REGRESS_OUTPUTS]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise errors.invalid_argument(
            f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but "
            f"got {list(values.shape)}")
    if values.dtype.kind != "f":
        raise errors.invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {values.dtype}")
    if values.shape[0] != num_examples:
        raise errors.invalid_argument(
            f"Input batch size did not match output batch size: {num_examples} vs. "
            f"{values.shape[0]}")
    for value in values.reshape(-1):
        result.regressions.add().value = float(value)


def regress(scope, request: regression_pb2.RegressionRequest) -> Operation:
    servable = scope.resolve(required_model_spec(request))
    signature_name, signature = _named_signature(
        servable, request.model_spec, REGRESS_METHOD, "regression")
    output_keys = _regression_outputs(signature)
    examples = serialized_examples(request.input)
    outputs = yield ModelCall(servable, signature_name, {REGRESS_INPUTS: examples}, output_keys)
    response = regression_pb2.RegressionResponse()
    make_model_spec(response.model_spec, request.model_spec.name, signature_name, servable.version)
    _regression_result(outputs, len(examples), response.result)
    return response


# ---------------------------------------------------------------- MultiInference

def multi_inference(scope, request: inference_pb2.MultiInferenceRequest) -> Operation:
    """Runs every task on the same examples; one model, each signature at most once."""
    servable = scope.resolve(_first_task_spec(request))
    model_name = ""
    seen = set()
    plans = []
    for task in request.tasks:
        if not task.model_spec.name:
            raise errors.invalid_argument("Found ModelSpec with an empty model name.")
        if model_name and task.model_spec.name != model_name:
            raise errors.invalid_argument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name.")
        model_name = task.model_spec.name
        signature_name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature_name in seen:
            raise errors.invalid_argument(f"Duplicate evaluation of signature: {signature_name}")
        seen.add(signature_name)
        signature = servable.signature_def(signature_name)
        if signature is None:
            raise errors.invalid_argument(
                f"Requested signature not found in model graph: {signature_name}")
        if task.method_name == CLASSIFY_METHOD:
            output_keys = _classification_outputs(signature)
        elif task.method_name == REGRESS_METHOD:
            output_keys = _regression_outputs(signature)
        else:
            raise errors.ServingError(grpc.StatusCode.UNIMPLEMENTED,
                                      f"Unsupported signature method_name: {task.method_name}")
        plans.append((task, signature_name, output_keys))
    examples = serialized_examples(request.input)
    response = inference_pb2.MultiInferenceResponse()
    for task, signature_name, output_keys in plans:
        outputs = yield ModelCall(servable, signature_name, {CLASSIFY_INPUTS: examples},
                                  output_keys)
        result = response.results.add()
        if task.method_name == CLASSIFY_METHOD:
            _classification_result(outputs, len(examples), result.classification_result)
        else:
            _regression_result(outputs, len(examples), result.regression_result)
        make_model_spec(result.model_spec, task.model_spec.name, signature_name, servable.version)
    return response


def _first_task_spec(request: inference_pb2.MultiInferenceRequest) -> model_pb2.ModelSpec:
    # TF Serving resolves the servable from the first task's model_spec.
    if request.tasks and request.tasks[0].HasField("model_spec"):
        return request.tasks[0].model_spec
    return inference_pb2.InferenceTask().model_spec


def warmup_handlers(servable: Servable) -> Dict[str, Callable]:
    """Replays each PredictionLog kind against `servable` (serving_contract.replay_warmup)."""
    scope = BoundServable(servable)
    return {
        "predict_log": lambda request: complete(predict(scope, request)),
        "classify_log": lambda request: complete(classify(scope, request)),
        "regress_log": lambda request: complete(regress(scope, request)),
        "multi_inference_log": lambda request: complete(multi_inference(scope, request)),
    }


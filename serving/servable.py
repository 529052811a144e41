"""One loaded version of a model: its SavedModel signatures, ready to run.

Two ways to call a signature, chosen per server (`model_call_path`):

  session       (the default) the version is loaded with TensorFlow's TF1
                SavedModel loader into its own tf.Graph and tf.compat.v1.Session
                (variables restored, the SavedModel's init op run: the vocabulary
                tables initialized), and each (signature,
                output keys) gets a C++ callable (Session::MakeCallable) that
                feeds the signature's input tensors and fetches its output
                tensors, running every op in the calling thread.
  tf2_function  the version is loaded with tf.saved_model.load and a signature
                is its concrete function, called eagerly (riskpipe's first path).

Per call on this machine class (2 vCPU), the pushed fraud model's serving_default,
p50 / CPU in microseconds, measured in one process (benchmarks/serving_latency.py
measures the paths through the server):

  path                                                1 tx        8 tx        64 tx
  tf2_function: loaded.signatures[key](**tensors)   524 / 543   619 / 695   804 / 906
  Session.make_callable(fetches, feed_list)         242 / 272   555 / 622   685 / 724
  session callable, ops on the inter-op pool        216 / 267   308 / 381   455 / 591
  session callable, ops in the caller's thread      121 / 125   308 / 326   422 / 461  <- used

TensorFlow's make_callable has a fast path only without feeds: with a feed_list it
is Session.run with a feed_dict (a do-nothing tf.identity: 63 us, against 26 us for
a C++ callable on the inter-op pool and 3.5 us in the caller's thread). From two
transactions up, ParseExampleV2 splits the examples over TensorFlow's intra-op
pool whatever the session's options say, a hand-off of ~150 us here that batching
pays once per batch.

A model the session path cannot serve (see `_session_blocker`) is loaded the
tf2_function way, with the reason logged and kept in `fallback_reason`.
"""
import contextlib
import logging
import threading
import weakref
from typing import Dict, Mapping, Optional, Sequence, Tuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
from tensorflow.python.saved_model import constants as saved_model_constants

from common import serving_contract as contract
from serving import errors
from serving.metrics import ServingMetrics
from serving.options import DEFAULT_MODEL_CALL_PATH, MODEL_CALL_PATHS, SESSION, TF2_FUNCTION

LOG = logging.getLogger(__name__)


# Keys of saved_model.pb's signature map that are no signature a client can call
# (tf.saved_model.load leaves them out of `signatures` too).
_NOT_SIGNATURES = (saved_model_constants.INIT_OP_SIGNATURE_KEY,
                   saved_model_constants.TRAIN_OP_SIGNATURE_KEY)
_ERRORS = (tf.errors.OpError, TypeError, ValueError)


class Servable:
    """A SavedModel version ready to run: what requests, batching and metrics see.

    `signature_defs` come from saved_model.pb (method names, TensorInfo dtypes
    and shapes, as GetModelMetadata reports them); `run` calls one signature.
    Subclasses say how (`_call`).
    """

    call_path = ""

    def __init__(self, name: str, version: int, path: str,
                 signature_defs: Mapping[str, meta_graph_pb2.SignatureDef],
                 metrics: Optional[ServingMetrics] = None):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = dict(signature_defs)
        self._metrics = metrics
        # Why this version runs on the tf2_function path although another was asked for.
        self.fallback_reason = ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, version={self.version})"

    def _callable_signatures(self):
        raise NotImplementedError

    def signature_def(self, key: str) -> Optional[meta_graph_pb2.SignatureDef]:
        if key not in self._callable_signatures():
            return None
        return self.signature_defs.get(key)

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray],
            output_keys: Sequence[str]) -> Dict[str, np.ndarray]:
        """Calls a signature; errors are raised as ServingError with TF's code."""
        metered = (self._metrics.model_call(self.name, self.version) if self._metrics
                   else contextlib.nullcontext())
        try:
            with metered:
                return self._call(signature_name, inputs, output_keys)
        except _ERRORS as err:
            raise errors.from_exception(err) from err

    def _call(self, signature_name: str, inputs: Mapping[str, np.ndarray],
              output_keys: Sequence[str]) -> Dict[str, np.ndarray]:
        raise NotImplementedError


class FunctionServable(Servable):
    """A SavedModel version loaded with tf.saved_model.load; `run` calls the
    signature's concrete function eagerly."""

    call_path = TF2_FUNCTION

    def __init__(self, name: str, version: int, path: str, loaded,
                 signature_defs: Mapping[str, meta_graph_pb2.SignatureDef],
                 metrics: Optional[ServingMetrics] = None):
        super().__init__(name, version, path, signature_defs, metrics)
        self._loaded = loaded  # keeps the model's variables and resources alive
        self._functions = {key: loaded.signatures[key] for key in loaded.signatures.keys()}

    def _callable_signatures(self):
        return self._functions

    def _call(self, signature_name, inputs, output_keys):
        outputs = self._functions[signature_name](
            **{alias: tf.constant(value) for alias, value in inputs.items()})
        return {key: outputs[key].numpy() for key in output_keys}


class SessionServable(Servable):
    """A SavedModel version in its own tf.Graph and tf.compat.v1.Session.

    Thread-safe: Session::RunCallable may run concurrently, and callables are
    made once per (signature, output keys) under a lock. The session is closed,
    freeing the version's memory, once the servable is released: when the last
    reference to it goes (the model manager drops an unloaded version from its
    snapshot; a request in flight keeps its own reference until it finishes),
    or by `close()`.
    """

    call_path = SESSION

    def __init__(self, name: str, version: int, path: str, session: tf.compat.v1.Session,
                 signature_defs: Mapping[str, meta_graph_pb2.SignatureDef],
                 metrics: Optional[ServingMetrics] = None):
        super().__init__(name, version, path, signature_defs, metrics)
        self._session = session
        self._signatures = {key: signature for key, signature in signature_defs.items()
                            if key not in _NOT_SIGNATURES}
        # (signature, output keys) -> _callable's entry
        self._callables: Dict[Tuple[str, Tuple[str, ...]], tuple] = {}
        self._lock = threading.Lock()
        # A finalizer, not __del__: it must not keep the servable alive, and it runs once.
        self._closer = weakref.finalize(self, _close_session, session, name, version)
        for key, signature in self._signatures.items():  # every output, as Predict asks
            self._callable(key, tuple(signature.outputs))

    @property
    def session(self) -> tf.compat.v1.Session:
        return self._session

    @property
    def closed(self) -> bool:
        return not self._closer.alive

    def close(self) -> None:
        """Closes the session now; calls after this fail (the manager never does this to a
        version that may still serve: it drops its reference instead)."""
        self._callables = {}
        self._closer()

    def _callable_signatures(self):
        return self._signatures

    def _callable(self, signature_name: str, outputs: Tuple[str, ...]) -> tuple:
        """(sorted input aliases, position of each output among the fetches, callable)."""
        key = (signature_name, outputs)
        entry = self._callables.get(key)
        if entry is not None:
            return entry
        with self._lock:
            entry = self._callables.get(key)
            if entry is None:
                signature = self._signatures[signature_name]
                aliases = tuple(sorted(signature.inputs))
                fetches = list(dict.fromkeys(signature.outputs[alias].name for alias in outputs))
                options = config_pb2.CallableOptions(
                    feed=[signature.inputs[alias].name for alias in aliases], fetch=fetches)
                # Every op in the caller's thread: the inter-op pool costs hand-offs that
                # these machines make dear (module docstring: one transaction 121 us
                # in-thread vs 216 us pooled, CPU 125 vs 267 us; 64: 422 vs 455 us).
                options.run_options.inter_op_thread_pool = -1
                positions = tuple(fetches.index(signature.outputs[alias].name)
                                  for alias in outputs)
                entry = (aliases, positions,
                         self._session._make_callable_from_options(options))  # pylint: disable=protected-access
                self._callables = {**self._callables, key: entry}
        return entry

    def _call(self, signature_name, inputs, output_keys):
        if self.closed:
            raise errors.unavailable(f"{self!r} was unloaded")
        output_keys = tuple(output_keys)
        aliases, positions, run = self._callable(signature_name, output_keys)
        feeds = [inputs.get(alias) for alias in aliases]
        if len(inputs) != len(aliases) or any(feed is None for feed in feeds):
            raise errors.invalid_argument(
                f"signature {signature_name} takes inputs {{{','.join(aliases)}}}; got "
                f"{{{','.join(sorted(inputs))}}}")
        values = run(*feeds)
        return {key: values[position] for key, position in zip(output_keys, positions)}


def _close_session(session: tf.compat.v1.Session, name: str, version: int) -> None:
    try:
        session.close()
    except Exception:  # pylint: disable=broad-except  # teardown must never raise
        LOG.exception("Closing the session of {name: %s version: %d} failed", name, version)


def _session_blocker(meta_graph: meta_graph_pb2.MetaGraphDef, path: str) -> str:
    """Why the session path cannot serve this SavedModel, or "" when it can.

    A signature's TensorInfo must name a tensor to feed or fetch: composite
    (ragged, sparse or extension type) inputs and outputs are encoded otherwise.
    And a SavedModel written with SaveOptions(experimental_skip_saver=True) has
    no saver_def: the TF1 loader cannot restore its variables, which only
    tf.saved_model.load's object-graph restore can read.
    """
    for key, signature in meta_graph.signature_def.items():
        if key in _NOT_SIGNATURES:
            continue
        for kind, infos in (("input", signature.inputs), ("output", signature.outputs)):
            for alias, info in infos.items():
                if info.WhichOneof("encoding") != "name":
                    return (f"signature {key} {kind} {alias} is a "
                            f"{info.WhichOneof('encoding')} tensor, not a named tensor")
    if (not meta_graph.HasField("saver_def")
            and tf.io.gfile.exists(f"{path}/variables/variables.index")):
        return "saved_model.pb has no saver_def (saved with experimental_skip_saver)"
    return ""


def session_config() -> config_pb2.ConfigProto:
    """The session's options: TensorFlow's defaults, and function calls inlined.

    Inlining puts the functions a signature calls (tf.Transform's transform_features
    layer, which grappler leaves as a call) into the signature's graph: with the
    Transform-layer graph the fraud model was served with before its lean one
    (components/export.py), 446 ops ran for one transaction without it, 331 with
    it, and the call took 113 us instead of 145 (64 transactions: 343 us instead of 408)."""
    config = config_pb2.ConfigProto()
    config.graph_options.optimizer_options.do_function_inlining = True
    return config


def _load_session(path: str) -> tf.compat.v1.Session:
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=session_config())
    try:
        # Restores the variables and runs the SavedModel's init op (tables, assets).
        tf.compat.v1.saved_model.loader.load(session, [contract.SERVE_TAG], path)
    except BaseException:
        session.close()
        raise
    return session


def load_servable(name: str, version: int, path: str,
                  metrics: Optional[ServingMetrics] = None,
                  model_call_path: str = DEFAULT_MODEL_CALL_PATH) -> Servable:
    """Loads the SavedModel at `path`; raises ServingError when it does not load cleanly.

    With `metrics`, the CPU of its model calls is counted towards its version.
    `model_call_path` is SESSION or TF2_FUNCTION (module docstring); a model the
    session path cannot load is loaded the tf2_function way, with the reason logged.
    """
    if model_call_path not in MODEL_CALL_PATHS:
        raise ValueError(f"model_call_path must be one of {MODEL_CALL_PATHS}: "
                         f"{model_call_path!r}")
    if not contract.is_complete_version(path):
        raise errors.not_found(f"SavedModel not found in {path}: no saved_model.pb")
    try:
        meta_graph = contract.serving_meta_graph(contract.read_saved_model(path))
    except Exception as err:  # a truncated or corrupt saved_model.pb
        raise errors.ServingError(grpc.StatusCode.DATA_LOSS,
                                  f"Could not parse {path}/saved_model.pb: {err}") from err
    if meta_graph is None:
        raise errors.not_found(
            f"Could not find meta graph def matching supplied tags: {{ serve }} in {path}")
    fallback_reason = ""
    if model_call_path == SESSION:
        fallback_reason = _session_blocker(meta_graph, path)
        if not fallback_reason:
            try:
                session = _load_session(path)
                return SessionServable(name, version, path, session, meta_graph.signature_def,
                                       metrics)
            except Exception as err:  # pylint: disable=broad-except  # tried the other way
                fallback_reason = f"the TF1 loader failed: {type(err).__name__}: {err}"
        LOG.warning("Servable {name: %s version: %d} runs on the tf2_function path, not the "
                    "session path: %s", name, version, fallback_reason)
    try:
        loaded = tf.saved_model.load(path, tags=[contract.SERVE_TAG])
    except Exception as err:  # any failure to restore means the version is not servable
        raise errors.from_exception(err) from err
    servable = FunctionServable(name, version, path, loaded, meta_graph.signature_def, metrics)
    servable.fallback_reason = fallback_reason
    return servable

"""One loaded version of a model: its SavedModel signatures, ready to run."""
import contextlib
from typing import Dict, Mapping, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from common import serving_contract as contract
from serving import errors
from serving.metrics import ServingMetrics


class Servable:
    """A SavedModel version loaded with tf.saved_model.load.

    `signature_defs` come from saved_model.pb (method names, TensorInfo dtypes
    and shapes, as GetModelMetadata reports them); `run` calls the matching
    concrete function.
    """

    def __init__(self, name: str, version: int, path: str, loaded,
                 signature_defs: Mapping[str, meta_graph_pb2.SignatureDef],
                 metrics: Optional[ServingMetrics] = None):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = dict(signature_defs)
        self._loaded = loaded  # keeps the model's variables and resources alive
        self._functions = {key: loaded.signatures[key] for key in loaded.signatures.keys()}
        self._metrics = metrics

    def __repr__(self) -> str:
        return f"Servable({self.name!r}, version={self.version})"

    def signature_def(self, key: str) -> Optional[meta_graph_pb2.SignatureDef]:
        if key not in self._functions:
            return None
        return self.signature_defs.get(key)

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray],
            output_keys: Sequence[str]) -> Dict[str, np.ndarray]:
        """Calls a signature; errors are raised as ServingError with TF's code."""
        function = self._functions[signature_name]
        metered = (self._metrics.model_call(self.name, self.version) if self._metrics
                   else contextlib.nullcontext())
        try:
            with metered:
                outputs = function(**{alias: tf.constant(value)
                                      for alias, value in inputs.items()})
                return {key: outputs[key].numpy() for key in output_keys}
        except (tf.errors.OpError, TypeError, ValueError) as err:
            raise errors.from_exception(err) from err


def load_servable(name: str, version: int, path: str,
                  metrics: Optional[ServingMetrics] = None) -> Servable:
    """Loads the SavedModel at `path`; raises ServingError when it does not load cleanly.

    With `metrics`, the CPU of its model calls is counted towards its version.
    """
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
    try:
        loaded = tf.saved_model.load(path, tags=[contract.SERVE_TAG])
    except Exception as err:  # any failure to restore means the version is not servable
        raise errors.from_exception(err) from err
    return Servable(name, version, path, loaded, meta_graph.signature_def, metrics)

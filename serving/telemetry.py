"""What the server records of an answered model call for a drift monitor: scores and feature values.

Once a request is answered, the data plane records per version
(serving/metrics.py) the scores its model calls returned and the values of
each input feature they were sent. Which output is the score, and
which input holds tf.Examples, follow from the signature's method (_SCORES,
_EXAMPLES); a signature without that output has no score observed. Input
features are whatever the servable's signatures name, since the server knows
no model's feature list: serving_raw's inputs, one tensor per feature, and for
tf.Examples the same names (other features an Example carries, such as
identifiers or the label, are skipped), or every feature in the Examples when
the servable has no serving_raw. Parsing a tf.Example in Python costs more CPU
than the model spends on it in a batch, so features are read from every Nth
transaction (row) answered by each version (--feature_stats_sample_every);
scores from all. Sampling rows rather than requests keeps a 64-row request as
cheap as 64 single ones.
"""
import weakref
from typing import Dict, List, Mapping, Optional

import numpy as np
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import types_pb2

from common.serving_contract import (CLASSIFY_INPUTS, CLASSIFY_METHOD, CLASSIFY_OUTPUT_SCORES,
                                     EXAMPLES_INPUT, OUTPUT_KEY, PREDICT_METHOD, REGRESS_INPUTS,
                                     REGRESS_METHOD, REGRESS_OUTPUTS, SERVING_RAW)
from serving import inference
from serving.metrics import FeatureStats
from serving.servable import Servable

# By the signature's method: the output holding the score, and the input holding
# serialized tf.Examples (serving_default's, and the one input of Classify and Regress).
_SCORES = {PREDICT_METHOD: OUTPUT_KEY, CLASSIFY_METHOD: CLASSIFY_OUTPUT_SCORES,
           REGRESS_METHOD: REGRESS_OUTPUTS}
_EXAMPLES = {PREDICT_METHOD: EXAMPLES_INPUT, CLASSIFY_METHOD: CLASSIFY_INPUTS,
             REGRESS_METHOD: REGRESS_INPUTS}
# tf.train.Feature's value lists, and whether their values are numbers.
_NUMERIC_LISTS = {"float_list": True, "int64_list": True, "bytes_list": False}
# {feature: numeric} of each servable's serving_raw, read once per servable (a
# protobuf map is slow to walk); weak, so that an unloaded version is freed.
_MODEL_FEATURES = weakref.WeakKeyDictionary()


def _signature(call: inference.ModelCall):
    return call.servable.signature_def(call.signature_name)


def scores(call: inference.ModelCall, outputs: inference.Outputs) -> Optional[List[float]]:
    """The scores among a model call's outputs; None when its signature returns none."""
    alias = _SCORES.get(_signature(call).method_name)
    values = outputs.get(alias)
    if values is None or values.dtype.kind != "f":
        return None
    if alias == CLASSIFY_OUTPUT_SCORES:
        # A binary classifier's columns are (negative, positive), as riskpipe's export
        # and TensorFlow's binary heads write them; more classes have no one score.
        return values[:, 1].tolist() if values.shape[1:] == (2,) else None
    return values.reshape(-1).tolist()


def feature_stats(call: inference.ModelCall, rows: slice) -> Dict[str, FeatureStats]:
    """What a model call was sent of each input feature in the given rows."""
    inputs = {alias: np.atleast_1d(value)[rows] for alias, value in call.inputs.items()}
    examples = inputs.get(_EXAMPLES.get(_signature(call).method_name))
    if examples is not None:
        return _example_stats(examples, _model_features(call.servable))
    stats = {}
    for alias, value in inputs.items():
        numeric = value.dtype.kind in "biuf"
        stats[alias] = FeatureStats.empty(numeric)
        stats[alias].add(value.reshape(-1).tolist(), numeric)
    return stats


def _model_features(servable: Servable) -> Optional[Dict[str, bool]]:
    """{feature: numeric} of serving_raw's inputs (one per model feature), or None."""
    if servable not in _MODEL_FEATURES:
        raw = servable.signature_def(SERVING_RAW)
        _MODEL_FEATURES[servable] = None if raw is None else {
            alias: info.dtype != types_pb2.DT_STRING for alias, info in raw.inputs.items()}
    return _MODEL_FEATURES[servable]


def _example_stats(serialized: np.ndarray,
                   features: Optional[Mapping[str, bool]]) -> Dict[str, FeatureStats]:
    """What serialized tf.Examples hold of each of `features`, one absent or without
    values being missing; of every feature they hold when None (absence goes unseen)."""
    stats = {name: FeatureStats.empty(numeric) for name, numeric in (features or {}).items()}
    for data in serialized:
        present = example_pb2.Example.FromString(data).features.feature
        for name in present if features is None else features:
            feature = present.get(name)  # get() does not add the key to the map
            kind = feature.WhichOneof("kind") if feature is not None else None
            values = getattr(feature, kind).value if kind else ()
            stat = stats.setdefault(name, FeatureStats())
            if values:
                stat.add(values, _NUMERIC_LISTS[kind])
            else:
                stat.missing += 1
    return stats

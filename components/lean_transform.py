"""The lean serving transform: the Transform's rules as a few vectorised ops.

The Transform layer (`tf_transform_output.transform_features_layer()`) is
general: per feature it reshapes, casts, densifies and looks up, most of the
830-odd graph nodes of the fraud model's serving_default, and of a served call's
time. This module
computes the same model inputs from dense raw features, one [batch] tensor per
feature as `parse_spec` parses them (an absent optional feature is NaN), by
stacking the features that share a rule and a presence into one [batch, k]
tensor and applying the rule of components/preprocessing.py to it once:

    log_zscore  (log1p(x) - mean) / standard deviation
    rate        clip(x, 0, 1)
    flag        x as a float
    cyclic      sin and cos of x's phase in its period
    category    the id of x in the vocabulary, len(vocabulary) for any other
                value (NUM_OOV_BUCKETS = 1), from a static table

An optional feature becomes its value, or the imputed one where it is NaN, and
its missing indicator. The element-wise functions are preprocessing.py's own.

The constants are the Transform's, never recomputed: `LeanTransform.from_transform_output`
runs the Transform layer on probe examples and solves for them (a z-score's
mean and standard deviation from two values, then the float32 neighbours
that reproduce its outputs on all the probes bit for bit, so that the lean
z-score is the Transform's to the last bit; an optional feature's imputed
value from an example without it), reads each vocabulary file, then checks the lean
transform against the Transform layer on every probe and fails naming the
feature if they disagree, so a rule changed in preprocessing.py but not here
fails the export. A model feature without a lean rule fails it too.
"""
import dataclasses
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components import preprocessing
from components.features import OPTIONAL_FEATURES, serialize_example

LOG_ZSCORE, RATE, FLAG, CYCLIC, CATEGORY = "log_zscore", "rate", "flag", "cyclic", "category"
_RULE_FEATURES = {
    LOG_ZSCORE: preprocessing.LOG_ZSCORE_FEATURES,
    RATE: preprocessing.RATE_FEATURES,
    FLAG: preprocessing.FLAG_FEATURES,
    CYCLIC: tuple(preprocessing.CYCLIC_FEATURES),
    CATEGORY: preprocessing.CATEGORICAL_FEATURES,
}
# Only these rules impute an absent value (preprocessing._optional).
_IMPUTED_RULES = (LOG_ZSCORE, RATE)

# Raw values the Transform layer is run on, per rule. A z-score is solved from
# the first two (log1p 0 and ~13.9, far apart for precision) and refined on the
# rest, integers whose log1p steps by about 1/4 up to 16: some lie near any
# mean, where the output shows the mean's last bits.
_PROBES = {
    LOG_ZSCORE: (0, 2 ** 20) + tuple(sorted({round(math.expm1(i / 4)) for i in range(1, 64)})),
    RATE: (0.25, -0.5, 1.5, 1.0),
    FLAG: (0, 1),
    CYCLIC: (0, 5, 13, 23),
}
# How closely the lean transform must reproduce the Transform layer on the probes.
_RTOL, _ATOL = 1e-5, 1e-6
# The float32 steps either way around a solved constant that its refinement tries.
_ULPS = 8


def rule_of(name: str) -> str:
    for rule, names in _RULE_FEATURES.items():
        if name in names:
            return rule
    raise ValueError(f"model feature '{name}' has no lean serving rule "
                     "(components/lean_transform.py)")


def parse_spec(feature_spec: Mapping[str, object]) -> Dict[str, tf.io.FixedLenFeature]:
    """tf.io.parse_example's spec giving each feature as a dense [batch] tensor.

    A required feature has no default, so an example without it is an
    INVALID_ARGUMENT error naming it; an absent optional feature is NaN.
    """
    return {name: tf.io.FixedLenFeature(
                [], spec.dtype, default_value=np.nan if name in OPTIONAL_FEATURES else None)
            for name, spec in feature_spec.items()}


@dataclasses.dataclass(frozen=True)
class _Group:
    """Features sharing a rule and a presence, ints first (the columns' order)."""

    rule: str
    optional: bool
    names: Tuple[str, ...]
    # [k] float32 each: log_zscore's mean and standard deviation of log1p(x); the
    # imputed values if optional.
    mean: Optional[np.ndarray] = None
    std: Optional[np.ndarray] = None
    imputed: Optional[np.ndarray] = None


class LeanTransform(tf.Module):
    """Dense raw features -> the model's [batch, 1] inputs (module docstring)."""

    def __init__(self, groups: Sequence[_Group], vocabularies: Mapping[str, Sequence[bytes]]):
        super().__init__()
        self._groups = tuple(groups)
        # Tracked by the module, so the SavedModel's init op fills them.
        self.tables = {name: tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(vocabulary), tf.string),
                tf.range(len(vocabulary), dtype=tf.int64)),
            default_value=len(vocabulary)) for name, vocabulary in vocabularies.items()}

    @classmethod
    def from_transform_output(cls, tf_transform_output: tft.TFTransformOutput,
                              feature_spec: Mapping[str, object]) -> "LeanTransform":
        """The lean transform of `feature_spec`'s features, checked against the Transform layer."""
        vocabularies = {name: _read_vocabulary(tf_transform_output, name)
                        for name in feature_spec if rule_of(name) == CATEGORY}
        rows = _probe_rows(feature_spec, vocabularies)
        expected = _transform_layer(tf_transform_output, feature_spec, rows)
        groups = [_solved(group, rows, expected) for group in _groups(feature_spec)]
        lean = cls(groups, vocabularies)
        _check(lean, feature_spec, rows, expected)
        return lean

    def __call__(self, features: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        inputs = {}
        for group in self._groups:
            outputs = _apply(group, _stack([features[name] for name in group.names]))
            for j, output in enumerate(outputs):
                names = [preprocessing.output_names(name)[j] for name in group.names]
                inputs.update(zip(names, tf.split(output, len(names), axis=1)
                                  if len(names) > 1 else [output]))
        for name, table in self.tables.items():
            inputs[preprocessing.transformed_name(name)] = tf.expand_dims(
                table.lookup(features[name]), axis=-1)
        return inputs


# ---------------------------------------------------------------------------
# The graph.

def _stack(columns: List[tf.Tensor]) -> tf.Tensor:
    """[batch] columns (ints first) -> one float32 [batch, k] tensor, in their order."""
    ints = [c for c in columns if c.dtype.is_integer]
    floats = [c for c in columns if not c.dtype.is_integer]
    parts = ([tf.cast(tf.stack(ints, axis=1), tf.float32)] if ints else []) + (
        [tf.stack(floats, axis=1)] if floats else [])
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)


def _apply(group: _Group, x: tf.Tensor) -> Tuple[tf.Tensor, ...]:
    """The group's outputs, each [batch, k], in the order of preprocessing.output_names."""
    if group.rule == CYCLIC:
        period = np.array([preprocessing.CYCLIC_FEATURES[name] for name in group.names],
                          np.float64)
        return preprocessing.cyclic(x, period)
    if group.rule == LOG_ZSCORE:
        value = (preprocessing.log1p(x) - group.mean) / group.std
    elif group.rule == RATE:
        value = preprocessing.rate(x)
    else:
        value = preprocessing.flag(x)
    if not group.optional:
        return (value,)
    missing = tf.math.is_nan(x)
    return tf.where(missing, group.imputed, value), tf.cast(missing, tf.float32)


# ---------------------------------------------------------------------------
# The constants, from the Transform layer on probe examples.

def _groups(feature_spec: Mapping[str, object]) -> List[_Group]:
    grouped: Dict[Tuple[str, bool], List[str]] = {}
    for name in feature_spec:
        rule, optional = rule_of(name), name in OPTIONAL_FEATURES
        if optional and rule not in _IMPUTED_RULES:
            raise ValueError(f"optional feature '{name}' has no lean imputation rule")
        if rule != CATEGORY:
            grouped.setdefault((rule, optional), []).append(name)
    return [_Group(rule, optional, tuple(sorted(
                names, key=lambda name: not feature_spec[name].dtype.is_integer)))
            for (rule, optional), names in grouped.items()]


def _read_vocabulary(tf_transform_output: tft.TFTransformOutput, name: str) -> List[bytes]:
    path = tf_transform_output.vocabulary_file_by_name(preprocessing.vocabulary_name(name))
    with tf.io.gfile.GFile(path, "rb") as f:
        return [line.rstrip(b"\n") for line in f]


def _probe_values(name: str, dtype: tf.DType,
                  vocabularies: Mapping[str, Sequence[bytes]]) -> Sequence:
    if name in vocabularies:
        # Every entry, and a value longer than any: out of the vocabulary.
        return list(vocabularies[name]) + [b"?" + b"".join(vocabularies[name])]
    return [int(v) if dtype.is_integer else float(v) for v in _PROBES[rule_of(name)]]


def _probe_rows(feature_spec: Mapping[str, object],
                vocabularies: Mapping[str, Sequence[bytes]]) -> List[Dict[str, object]]:
    """Row i holds each feature's i-th probe value (cycling); the last lacks every optional one."""
    values = {name: _probe_values(name, spec.dtype, vocabularies)
              for name, spec in feature_spec.items()}
    count = max(len(v) for v in values.values())
    rows = [{name: v[i % len(v)] for name, v in values.items()} for i in range(count)]
    rows.append({name: v[0] for name, v in values.items() if name not in OPTIONAL_FEATURES})
    return rows


def _serialized(rows: Sequence[Mapping[str, object]]) -> tf.Tensor:
    return tf.constant([serialize_example(row) for row in rows])


def _transform_layer(tf_transform_output: tft.TFTransformOutput,
                     feature_spec: Mapping[str, object],
                     rows: Sequence[Mapping[str, object]]) -> Dict[str, np.ndarray]:
    layer = tf_transform_output.transform_features_layer()
    raw = tf.io.parse_example(_serialized(rows), dict(feature_spec))
    return {name: value.numpy() for name, value in layer(raw).items()}


def _solved(group: _Group, rows: Sequence[Mapping[str, object]],
            expected: Mapping[str, np.ndarray]) -> _Group:
    """The group with its constants read off the Transform layer's outputs on the probes."""
    # A log_zscore or optional feature's first output is its value.
    outputs = [expected[preprocessing.output_names(name)[0]] for name in group.names]
    mean = std = imputed = None
    if group.rule == LOG_ZSCORE:
        probes = len(_PROBES[LOG_ZSCORE])
        logs = preprocessing.log1p(tf.constant(
            [[row[name] for row in rows[:probes]] for name in group.names], tf.float64)).numpy()
        z = np.array([out[:probes] for out in outputs], np.float32)
        mean, std = np.array([_z_score_constants(*column) for column in zip(group.names, logs, z)],
                             np.float32).T
    if group.optional:
        imputed = np.array([out[-1] for out in outputs], np.float32)
    return dataclasses.replace(group, mean=mean, std=std, imputed=imputed)


def _z_score_constants(name: str, logs: np.ndarray, z: np.ndarray) -> Tuple[float, float]:
    """(mean, std) with z = (logs - mean) / std in float32, from the probes.

    Solved from the first two, then of the float32 values within _ULPS steps
    of each, the pair that reproduces most probes exactly, the nearest first.
    """
    if z[1] == z[0]:
        raise ValueError(f"feature '{name}': the Transform's log_zscore output is constant on "
                         "the probes, not a z-score")
    std = (logs[1] - logs[0]) / (np.float64(z[1]) - z[0])
    mean = logs[0] - z[0] * std
    steps = np.arange(-_ULPS, _ULPS + 1)
    means = (np.float32(mean) + steps * np.spacing(np.float32(mean))).astype(np.float32)
    stds = (np.float32(std) + steps * np.spacing(np.float32(std))).astype(np.float32)
    got = (logs.astype(np.float32)[None, None, :] - means[:, None, None]) / stds[None, :, None]
    # Misses first, then the distance in steps from the solution.
    rank = (np.sum(got != z, axis=-1) * (4 * _ULPS + 1)
            + np.add.outer(np.abs(steps), np.abs(steps)))
    i, j = np.unravel_index(np.argmin(rank), rank.shape)
    return means[i], stds[j]


def _check(lean: LeanTransform, feature_spec: Mapping[str, object],
           rows: Sequence[Mapping[str, object]], expected: Mapping[str, np.ndarray]) -> None:
    """Fails naming the model inputs where the lean transform and the Transform layer disagree."""
    got = lean(tf.io.parse_example(_serialized(rows), parse_spec(feature_spec)))
    if set(got) != set(expected):
        raise ValueError(f"the lean transform makes model inputs {sorted(got)}, the Transform "
                         f"layer {sorted(expected)}")
    wrong = sorted(name for name, value in got.items()
                   if not np.allclose(value.numpy()[:, 0], expected[name], rtol=_RTOL,
                                      atol=_ATOL))
    if wrong:
        raise ValueError(f"the lean serving transform disagrees with the Transform layer on "
                         f"{wrong}: preprocessing.py and components/lean_transform.py differ")

"""The credit Transform's `preprocessing_fn`: a bank's columns -> model inputs, driven by the table.

The columns' roles come from the table check (components/credit/table.py,
`transform_config`) through the Transform's custom_config:

    {"label": name, "numeric": [...], "log1p": [...], "categorical": [...]}

- numeric: log1p first for the skewed non-negative ones (negative values are
  clipped to 0 there), then a z-score with the training split's mean and
  standard deviation over the present values; a missing value becomes 0 (the
  mean) and sets `<name>_missing_xf` to 1. Every numeric column has the
  indicator, so an application that lacks a value the training data always had
  is still scored;
- categorical: an id from a vocabulary of the training split, most frequent
  value first (so id 0 is the population's typical value, the baseline of the
  reason codes), with NUM_OOV_BUCKETS ids for values never seen; a missing
  value is the category MISSING_CATEGORY;
- the label, written 0/1 by the table check, passes through; its counts are
  recorded for the class weights as for fraud (LABEL_COUNTS_VOCAB).

The credit schema declares every column variable-length (SchemaGen with
infer_feature_shape=False), so each arrives here as a SparseTensor of at most
one value per row, and a missing cell is an absent value.
"""
from typing import Any, Dict, Tuple

import tensorflow as tf
import tensorflow_transform as tft

from components import preprocessing as fraud_preprocessing
from components.preprocessing import missing_indicator_name, transformed_name

NUM_OOV_BUCKETS = 1
MISSING_CATEGORY = "__missing__"
# The most frequent values of a categorical column that get their own id; the
# rarer ones share the out-of-vocabulary id (a free-text column cannot grow
# the model without bound).
MAX_CATEGORIES = 1000


def vocabulary_name(name: str) -> str:
    return f"credit_{name}"


def _column(x) -> Tuple[tf.Tensor, tf.sparse.SparseTensor]:
    """(present [batch] bool, the [batch, 1] SparseTensor) of one column."""
    if isinstance(x, tf.RaggedTensor):
        x = x.to_sparse()
    if not isinstance(x, tf.sparse.SparseTensor):
        # Dense (a schema with fixed shapes): every row holds its value, zeros too.
        values = tf.reshape(x, [-1])
        rows = tf.range(tf.shape(values, out_type=tf.int64)[0])
        x = tf.SparseTensor(tf.stack([rows, tf.zeros_like(rows)], axis=1), values,
                            tf.stack([tf.size(rows, out_type=tf.int64), 1]))
    column = tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1])
    ones = tf.SparseTensor(column.indices, tf.ones_like(column.values, tf.int32),
                           column.dense_shape)
    return tf.squeeze(tf.sparse.to_dense(ones), axis=1) > 0, column


def numeric(x, log1p: bool) -> Tuple[tf.Tensor, tf.Tensor]:
    """(z-scored value with missing at 0, missing indicator) of a numeric column."""
    present, column = _column(x)
    values = tf.cast(column.values, tf.float32)
    if log1p:
        values = tf.math.log1p(tf.maximum(values, 0.0))
    scaled = tft.scale_to_z_score(tf.SparseTensor(column.indices, values, column.dense_shape))
    value = tf.squeeze(tf.sparse.to_dense(scaled, default_value=0.0), axis=1)
    # A column the training split never fills has no mean: its values carry
    # nothing the model learned, and the indicator says they were there.
    value = tf.where(tf.math.is_finite(value), value, 0.0)
    return value, 1.0 - tf.cast(present, tf.float32)


def categorical(x, name: str) -> tf.Tensor:
    """The vocabulary id of a categorical column (numbers are categories too)."""
    _, column = _column(x)
    values = column.values if column.dtype == tf.string else tf.strings.as_string(column.values)
    strings = tf.SparseTensor(column.indices, values, column.dense_shape)
    dense = tf.squeeze(tf.sparse.to_dense(strings, default_value=MISSING_CATEGORY), axis=1)
    return tft.compute_and_apply_vocabulary(dense, top_k=MAX_CATEGORIES,
                                            num_oov_buckets=NUM_OOV_BUCKETS,
                                            vocab_filename=vocabulary_name(name))


def label(x, name: str) -> tf.Tensor:
    """The 0/1 label as int64; fails naming the column when a row lacks it or holds another value."""
    present, column = _column(x)
    value = tf.squeeze(tf.sparse.to_dense(tf.cast(column, tf.int64)), axis=1)
    checks = [
        tf.debugging.assert_equal(tf.reduce_all(present), True,
                                  message=f"label column '{name}' is absent from some examples"),
        # tf.equal, not ==: the Transform builds this graph in TF1 mode, where ==
        # compares the tensor objects.
        tf.debugging.assert_equal(tf.reduce_all(tf.equal(value, 0) | tf.equal(value, 1)), True,
                                  message=f"label column '{name}' must hold 0 or 1"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(value)


def preprocessing_fn(inputs: Dict[str, Any], custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    """tf.Transform callback: the model inputs and the label of a batch of applications."""
    outputs = {}
    log1p = set(custom_config["log1p"])
    for name in custom_config["numeric"]:
        value, missing = numeric(inputs[name], name in log1p)
        outputs[transformed_name(name)] = value
        outputs[missing_indicator_name(name)] = missing
    for name in custom_config["categorical"]:
        outputs[transformed_name(name)] = categorical(inputs[name], name)
    label_key = custom_config["label"]
    outputs[label_key] = label(inputs[label_key], label_key)
    fraud_preprocessing.record_label_counts(outputs[label_key])
    return outputs

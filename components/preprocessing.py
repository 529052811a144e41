"""The Transform component's `preprocessing_fn`: raw transaction features -> model inputs.

Every model feature of `components.features.MODEL_FEATURES` has one rule here:

- heavy-tailed magnitudes (amounts, sums, counts, seconds, distances, speeds,
  hours from the card's usual time, the amount ratios): log1p, then a z-score
  with the training split's mean and standard deviation;
- fraud rates and the shares of a card's history: already in [0, 1], kept
  (clipped) as they are;
- categories: an integer id from a vocabulary of the training split, with
  NUM_OOV_BUCKETS extra ids for values never seen in training;
- flags: 0/1 as floats; the hour of day: its sine and cosine (23 h is next to 0 h).

Missing values are explicit. A feature of OPTIONAL_FEATURES is absent from an
example when it is undefined (a card's first transaction has no "seconds since
the previous one"), so the schema declares it variable-length and it reaches
`preprocessing_fn` as a SparseTensor. Each one becomes two model inputs:

    <name>_xf          the transformed value, imputed when absent: statistics
                       are taken over the present values only, and an absent
                       value becomes their mean (z-score 0 / the mean rate);
    <name>_missing_xf  1.0 when the value was absent, else 0.0.

A required feature may reach `preprocessing_fn` dense or as a SparseTensor,
depending on whether the schema gives it a fixed shape; both give the same
result, and a required value that is absent fails the transform naming the
feature instead of being silently imputed.

All model inputs end in `_xf`, so raw features can never be fed to the model
by mistake. The label `is_fraud` passes through unchanged. The training split's
label counts are stored as the vocabulary LABEL_COUNTS_VOCAB (lines
"<count> <label>"), from which the Trainer derives class weights.
"""
import math
from typing import Any, Dict, Iterable, Optional, Tuple

import tensorflow as tf
import tensorflow_transform as tft

from components.features import (LABEL_KEY, MODEL_FEATURES, OPTIONAL_FEATURES,
                                 selected_features)

TRANSFORMED_SUFFIX = "_xf"
NUM_OOV_BUCKETS = 1
LABEL_COUNTS_VOCAB = "label_counts"

# log1p, then z-score.
LOG_ZSCORE_FEATURES = (
    "amount",
    "card_txn_count_1h", "card_txn_count_24h", "card_txn_count_7d", "card_txn_count_30d",
    "card_amount_sum_1h", "card_amount_sum_24h", "card_amount_sum_7d", "card_amount_sum_30d",
    "seconds_since_prev_txn", "distance_from_prev_km", "speed_from_prev_kmh",
    "amount_to_mean_30d", "distance_from_usual_location_km", "hours_from_usual_time",
    "amount_to_category_mean_30d",
)
RATE_FEATURES = ("terminal_fraud_rate_7d", "terminal_fraud_rate_30d",
                 "merchant_category_share_30d", "channel_share_30d")
CATEGORICAL_FEATURES = ("merchant_category", "channel")
FLAG_FEATURES = ("is_weekend", "is_night")
CYCLIC_FEATURES = {"hour_of_day": 24}


def transformed_name(name: str) -> str:
    return name + TRANSFORMED_SUFFIX


def missing_indicator_name(name: str) -> str:
    return transformed_name(name + "_missing")


def vocabulary_name(name: str) -> str:
    """The vocab_filename of a categorical feature's vocabulary."""
    return name


def _check_rules_cover_model_features() -> None:
    ruled = (set(LOG_ZSCORE_FEATURES) | set(RATE_FEATURES) | set(CATEGORICAL_FEATURES)
             | set(FLAG_FEATURES) | set(CYCLIC_FEATURES))
    if ruled != set(MODEL_FEATURES):
        raise ValueError(
            "preprocessing rules and components.features.MODEL_FEATURES disagree: "
            f"without a rule {sorted(set(MODEL_FEATURES) - ruled)}, "
            f"not a model feature {sorted(ruled - set(MODEL_FEATURES))}")


# ---------------------------------------------------------------------------
# Shapes: one value per example, whatever the schema made of the feature.

def _as_column(x: tf.sparse.SparseTensor) -> tf.sparse.SparseTensor:
    """A [batch, 1] SparseTensor holding the first (only) value of each row."""
    return tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1])


def _to_sparse(x, name: str) -> tf.sparse.SparseTensor:
    if isinstance(x, tf.RaggedTensor):
        x = x.to_sparse()
    if not isinstance(x, tf.sparse.SparseTensor):
        raise ValueError(
            f"optional feature '{name}' arrived as a dense tensor; the schema must declare it "
            "variable-length (no shape, min presence 0) because it is absent when unknown")
    return _as_column(x)


def _present_mask(x: tf.sparse.SparseTensor) -> tf.Tensor:
    """[batch] bool: which rows of a [batch, 1] SparseTensor hold a value."""
    ones = tf.SparseTensor(x.indices, tf.ones_like(x.values, tf.int32), x.dense_shape)
    return tf.squeeze(tf.sparse.to_dense(ones), axis=1) > 0


def _required(x, name: str) -> tf.Tensor:
    """A required feature as a dense [batch] tensor; fails if any row lacks it."""
    if isinstance(x, tf.RaggedTensor):
        x = x.to_sparse()
    if isinstance(x, tf.sparse.SparseTensor):
        column = _as_column(x)
        present = _present_mask(column)
        check = tf.debugging.assert_equal(
            tf.reduce_all(present), True,
            message=f"required feature '{name}' is absent from some examples")
        with tf.control_dependencies([check]):
            default = "" if x.dtype == tf.string else 0
            return tf.squeeze(tf.sparse.to_dense(column, default_value=default), axis=1)
    if x.shape.rank == 2:
        return tf.squeeze(x, axis=1)
    return x


# ---------------------------------------------------------------------------
# Transforms.

# The element-wise rules, on tensors of any shape: the Transform applies them here
# and the lean serving graph (components/lean_transform.py) to stacked features.

def log1p(x: tf.Tensor) -> tf.Tensor:
    return tf.math.log1p(tf.cast(x, tf.float32))


def rate(x: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(tf.cast(x, tf.float32), 0.0, 1.0)


def flag(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(x, tf.float32)


def cyclic(x: tf.Tensor, period: float) -> Tuple[tf.Tensor, tf.Tensor]:
    """The sine and cosine of x's phase in its period."""
    angle = tf.cast(x, tf.float32) * (2.0 * math.pi / period)
    return tf.sin(angle), tf.cos(angle)


def _log_zscore(x: tf.Tensor) -> tf.Tensor:
    return tft.scale_to_z_score(log1p(x))


def _optional_log_zscore(column: tf.sparse.SparseTensor) -> tf.Tensor:
    """Present values z-scored over the present values; absent ones at 0, their mean."""
    logs = tf.SparseTensor(column.indices, log1p(column.values), column.dense_shape)
    scaled = tft.scale_to_z_score(logs)
    return tf.squeeze(tf.sparse.to_dense(scaled, default_value=0.0), axis=1)


def _optional_rate(column: tf.sparse.SparseTensor) -> tf.Tensor:
    """Present rates as they are; absent ones at the mean of the present training rates."""
    rates = tf.SparseTensor(column.indices, rate(column.values), column.dense_shape)
    mean_rate = tft.mean(rates)
    values = tf.squeeze(tf.sparse.to_dense(rates, default_value=0.0), axis=1)
    return tf.where(_present_mask(column), values, mean_rate)


def _optional(x, name: str) -> Tuple[tf.Tensor, tf.Tensor]:
    """(imputed value, missing indicator) of an optional feature."""
    column = _to_sparse(x, name)
    if name in LOG_ZSCORE_FEATURES:
        value = _optional_log_zscore(column)
    elif name in RATE_FEATURES:
        value = _optional_rate(column)
    else:
        raise ValueError(f"optional feature '{name}' has no imputation rule")
    missing = 1.0 - tf.cast(_present_mask(column), tf.float32)
    return value, missing


def _required_feature(x: tf.Tensor, name: str) -> Dict[str, tf.Tensor]:
    if name in LOG_ZSCORE_FEATURES:
        return {transformed_name(name): _log_zscore(x)}
    if name in RATE_FEATURES:
        return {transformed_name(name): rate(x)}
    if name in CATEGORICAL_FEATURES:
        ids = tft.compute_and_apply_vocabulary(
            x, num_oov_buckets=NUM_OOV_BUCKETS, vocab_filename=vocabulary_name(name))
        return {transformed_name(name): ids}
    if name in FLAG_FEATURES:
        return {transformed_name(name): flag(x)}
    return dict(zip(output_names(name), cyclic(x, CYCLIC_FEATURES[name])))


def record_label_counts(label: tf.Tensor) -> None:
    """Stores the analyzed split's label counts as a vocabulary with frequencies."""
    tft.vocabulary(tf.strings.as_string(label), vocab_filename=LABEL_COUNTS_VOCAB,
                   store_frequency=True)


def output_names(name: str) -> Tuple[str, ...]:
    """The model inputs the rules make of one model feature."""
    if name in OPTIONAL_FEATURES:
        return transformed_name(name), missing_indicator_name(name)
    if name in CYCLIC_FEATURES:
        return transformed_name(name + "_sin"), transformed_name(name + "_cos")
    return (transformed_name(name),)


def model_features_of(transformed_names: Iterable[str]) -> Tuple[str, ...]:
    """The model features a Transform output was made from (all, or a selection).

    The exported signatures take these raw features and no others, so a
    feature the pipeline excluded is neither parsed nor required at serving.
    """
    present = set(transformed_names)
    return tuple(name for name in MODEL_FEATURES if set(output_names(name)) <= present)


def preprocessing_fn(inputs: Dict[str, tf.Tensor],
                     custom_config: Optional[Dict[str, Any]] = None) -> Dict[str, tf.Tensor]:
    """tf.Transform callback: the model inputs and the label of a batch of raw examples.

    Passthrough features (ids, timestamp, fraud_scenario) are dropped: they are
    not model inputs; so are the features in custom_config["exclude_features"]
    (the pipeline's `features.exclude`).
    """
    _check_rules_cover_model_features()
    outputs = {}
    for name in selected_features((custom_config or {}).get("exclude_features", ())):
        if name in OPTIONAL_FEATURES:
            outputs.update(zip(output_names(name), _optional(inputs[name], name)))
        else:
            outputs.update(_required_feature(_required(inputs[name], name), name))
    label = _required(inputs[LABEL_KEY], LABEL_KEY)
    record_label_counts(label)
    outputs[LABEL_KEY] = label
    return outputs

"""What each model feature is worth to the pushed model: permutation importance on the eval split.

A feature's value is how much PR-AUC (average precision) and ROC-AUC the model
loses when that feature's values are shuffled across the eval examples, so
its link with the label is broken while its distribution stays. Each feature
is shuffled several times with different seeds; the mean drop is its value and
the standard deviation the spread. A feature the model does not use is worth
nothing, whatever it costs.
"""
import dataclasses
import glob
import os
from typing import Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from common.serving_contract import OUTPUT_KEY, SERVING_RAW
from components import features

Columns = Dict[str, np.ndarray]
BATCH_ROWS = 4096
_NUMPY_TYPES = {"float": np.float32, "int": np.int64, "string": object}


@dataclasses.dataclass
class FeatureValue:
    name: str
    value_pr_auc: float
    value_pr_auc_spread: float
    value_roc_auc: float
    value_roc_auc_spread: float


def read_eval_split(examples_uri: str, max_rows: int) -> Tuple[Columns, np.ndarray]:
    """(model feature columns, labels) of the first `max_rows` eval examples of FeatureGen."""
    return read_split(examples_uri, "eval", max_rows)


def read_split(examples_uri: str, split: str, max_rows: int) -> Tuple[Columns, np.ndarray]:
    """(model feature columns, labels) of the first `max_rows` examples of a FeatureGen split.

    An optional feature absent from an example is NaN, as serving_raw takes it.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    rows = [features.from_example(tf.train.Example.FromString(record))
            for record in split_records(examples_uri, split, max_rows)]
    if not rows:
        raise ValueError(f"{examples_uri}: the {split} split holds no examples")
    return feature_columns(rows), np.array([row[features.LABEL_KEY] for row in rows])


def split_records(examples_uri: str, split: str, count: int) -> List[bytes]:
    """The first `count` serialized tf.Examples of a FeatureGen split (gzipped TFRecords)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    return [record.numpy() for record in
            tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)]


def feature_columns(rows: Sequence[Mapping]) -> Columns:
    """Model feature columns of feature dicts; an absent or None optional feature is NaN."""
    def value(row, name):
        found = row.get(name)
        return np.nan if found is None else found
    return {name: np.array([value(row, name) for row in rows], dtype=_NUMPY_TYPES[kind])
            for name, kind in features.MODEL_FEATURES.items()}


def as_requests(records: Sequence[bytes], inputs: Sequence[str]) -> List[bytes]:
    """Serialized tf.Examples holding only `inputs`: what the risk engine sends the model."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    keep = set(inputs)
    return [features.serialize_example(
        {k: v for k, v in features.from_example(tf.train.Example.FromString(record)).items()
         if k in keep}) for record in records]


def served_inputs(version_dir: str) -> List[str]:
    """The raw features a pushed version takes: its serving_raw inputs, sorted."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    signature = tf.saved_model.load(version_dir).signatures[SERVING_RAW]
    return sorted(signature.structured_input_signature[1])


def model_scorer(version_dir: str) -> Callable[[Columns], np.ndarray]:
    """Scores columns with a pushed model's serving_raw signature (other columns are ignored)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    signature = tf.saved_model.load(version_dir).signatures[SERVING_RAW]
    inputs = sorted(signature.structured_input_signature[1])

    def score(columns: Columns) -> np.ndarray:
        size = len(next(iter(columns.values())))
        return np.concatenate([
            signature(**{name: tf.constant(columns[name][start:start + BATCH_ROWS])
                         for name in inputs})[OUTPUT_KEY].numpy()
            for start in range(0, size, BATCH_ROWS)])
    return score


def permutation_values(score: Callable[[Columns], np.ndarray], columns: Mapping[str, np.ndarray],
                       labels: np.ndarray, names: Sequence[str], repetitions: int = 3,
                       seed: int = 0) -> List[FeatureValue]:
    """The drop in PR-AUC and ROC-AUC when each named column is shuffled, `repetitions` times."""
    if repetitions < 1:
        raise ValueError(f"repetitions must be at least 1, got {repetitions}")
    if len(set(labels.tolist())) < 2:
        raise ValueError("the eval split needs both classes to value features")
    baseline = score(dict(columns))
    base_pr, base_roc = average_precision_score(labels, baseline), roc_auc_score(labels, baseline)
    values = []
    for index, name in enumerate(names):
        drops_pr, drops_roc = [], []
        for repetition in range(repetitions):
            rng = np.random.default_rng([seed, index, repetition])
            shuffled = dict(columns, **{name: columns[name][rng.permutation(len(labels))]})
            scores = score(shuffled)
            drops_pr.append(base_pr - average_precision_score(labels, scores))
            drops_roc.append(base_roc - roc_auc_score(labels, scores))
        values.append(FeatureValue(name, float(np.mean(drops_pr)), float(np.std(drops_pr)),
                                   float(np.mean(drops_roc)), float(np.std(drops_roc))))
    return values

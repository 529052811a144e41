"""A split of raw examples run through the Transform graph once and held as numpy arrays.

Both Trainers (components/trainer.py, components/credit/trainer.py) read their
splits this way and train from memory: running the Transform graph over the
raw examples again every epoch would cost more than training the network.
The fraud Trainer reads through the lean serving transform instead
(`read_split_with`, components/lean_transform.py): the Transform's own
constants, checked against its layer, in a graph five times cheaper per row
(at 1 M transactions, 6 against 26 CPU seconds for the training split), and
the very graph its served model runs.

Memory bound: a whole split must fit in memory. It holds one value per
transformed feature and row, float32 for numbers and int64 for vocabulary ids
and the label: rows x (4 x float inputs + 8 x (ids + 1)) bytes. Reading a
split briefly needs twice that (its batches, then the concatenated arrays).
"""
import dataclasses
import functools
from typing import Callable, Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from components import model as model_lib
from components.features import LABEL_KEY

# Rows per batch when a split is read through the Transform graph (8192 rather
# than 1024: an eighth less CPU to read 1 M transactions); the order
# and the arrays do not depend on the training batch size.
READ_BATCH_SIZE = 8192


@dataclasses.dataclass(frozen=True)
class Split:
    """Transformed features ({input: [n]}) and labels [n] of some rows."""
    features: Dict[str, np.ndarray]
    labels: np.ndarray

    def take(self, rows: np.ndarray) -> "Split":
        return Split({name: value[rows] for name, value in self.features.items()},
                     self.labels[rows])

    def concat(self, other: "Split") -> "Split":
        return Split({name: np.concatenate([value, other.features[name]])
                      for name, value in self.features.items()},
                     np.concatenate([self.labels, other.labels]))

    def model_inputs(self) -> Dict[str, np.ndarray]:
        return {name: value[:, None] for name, value in self.features.items()}


def transformed_dataset(files: Sequence[str], data_accessor,
                        tf_transform_output: tft.TFTransformOutput,
                        label_key: str = LABEL_KEY) -> tf.data.Dataset:
    """One pass over raw examples in file order: batches of (model inputs, label [batch, 1] float)."""
    raw = data_accessor.tf_dataset_factory(
        list(files),
        tfxio.TensorFlowDatasetOptions(batch_size=READ_BATCH_SIZE, num_epochs=1, shuffle=False),
        tf_transform_output.raw_metadata.schema)
    layer = tf_transform_output.transform_features_layer()
    names = model_lib.input_names(tf_transform_output, label_key)

    # Converting the Transform layer's Python code with autograph costs seconds
    # and buys nothing: it has no tensor-dependent Python control flow.
    @tf.autograph.experimental.do_not_convert
    def to_model_inputs(raw_features):
        transformed = layer(raw_features)
        label = tf.cast(tf.expand_dims(transformed[label_key], axis=-1), tf.float32)
        return model_lib.as_model_inputs(transformed, names), label

    return raw.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE)


def read_split(files: Sequence[str], data_accessor, tf_transform_output: tft.TFTransformOutput,
               label_key: str = LABEL_KEY) -> Split:
    """One pass of a split through the Transform graph, in file order, as numpy."""
    return _as_split(transformed_dataset(files, data_accessor, tf_transform_output, label_key))


def serialized_records(files: Sequence[str]) -> tf.data.Dataset:
    """The serialized records of TFRecord files, in order (a file is gzipped when *.gz)."""
    return functools.reduce(tf.data.Dataset.concatenate, [
        tf.data.TFRecordDataset(path, compression_type="GZIP" if path.endswith(".gz") else "")
        for path in files])


def read_split_with(files: Sequence[str],
                    transform: Callable[[Dict[str, tf.Tensor]], Dict[str, tf.Tensor]],
                    parse_spec: Mapping[str, tf.io.FixedLenFeature], names: Sequence[str],
                    label_key: str = LABEL_KEY) -> Split:
    """One pass of a split, in file order, as numpy: each batch of serialized examples
    parsed by `parse_spec` (the label added, required) and given to `transform`, whose
    outputs `names` are the model inputs.
    """
    spec = {**parse_spec, label_key: tf.io.FixedLenFeature([], tf.int64)}

    @tf.function
    def to_model_inputs(serialized):
        raw = tf.io.parse_example(serialized, spec)
        transformed = transform(raw)
        label = tf.cast(tf.expand_dims(raw[label_key], axis=-1), tf.float32)
        return {name: transformed[name] for name in names}, label

    return _as_split(serialized_records(files).batch(READ_BATCH_SIZE)
                     .map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE))


def _as_split(batches: Iterable[Tuple[Dict[str, tf.Tensor], tf.Tensor]]) -> Split:
    """Batches of (model inputs [batch, 1], label [batch, 1]) concatenated as numpy."""
    features: Dict[str, List[np.ndarray]] = {}
    labels = []
    for inputs, label in batches:
        for name, value in inputs.items():
            features.setdefault(name, []).append(value.numpy()[:, 0])
        labels.append(label.numpy()[:, 0])
    return Split({name: np.concatenate(parts) for name, parts in features.items()},
                 np.concatenate(labels).astype(np.int64))

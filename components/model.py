"""The fraud model: a tf-keras functional network over the Transform's outputs.

Inputs are the transformed features (`*_xf`), one [batch, 1] input each.
Categorical ids become a one-hot vector when the vocabulary is tiny and an
embedding otherwise; everything is concatenated into a small ReLU MLP whose
sigmoid output is the fraud probability. All trainable weights outside the
embeddings live in Dense layers, which is what pruning and QAT act on.
"""
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from common.serving_contract import OUTPUT_KEY
from components import preprocessing
from components.features import LABEL_KEY

# The Keras output layer is named as the served output it becomes.
OUTPUT_LAYER = OUTPUT_KEY
# A category with at most this many ids (OOV included) is one-hot encoded, by the
# layer named as its input with this suffix.
ONE_HOT_MAX_BUCKETS = 4
ONE_HOT_SUFFIX = "_one_hot"
# The wide-and-deep model's MLP output, added to the wide path's logit.
DEEP_LOGIT = "deep_logit"
# The layer concatenating the encoded inputs (quantization-aware training wraps it).
FEATURES_LAYER = "features"


def categorical_inputs() -> List[str]:
    return [preprocessing.transformed_name(name) for name in preprocessing.CATEGORICAL_FEATURES]


def input_names(tf_transform_output: tft.TFTransformOutput,
                label_key: str = LABEL_KEY) -> List[str]:
    """The model's inputs: every transformed feature except the label, sorted."""
    return sorted(name for name in tf_transform_output.transformed_feature_spec()
                  if name != label_key)


def as_model_inputs(transformed: Dict[str, tf.Tensor],
                    names: Sequence[str]) -> Dict[str, tf.Tensor]:
    """The model's [batch, 1] inputs from the Transform's [batch] outputs."""
    return {name: tf.expand_dims(transformed[name], axis=-1) for name in names}


def _encode_category(inputs: tf.Tensor, name: str, num_buckets: int, embedding_dim: int,
                     one_hot_max_buckets: int) -> tf.Tensor:
    if num_buckets <= one_hot_max_buckets:
        return tf.keras.layers.CategoryEncoding(
            num_tokens=num_buckets, output_mode="one_hot", name=name + ONE_HOT_SUFFIX)(inputs)
    embedded = tf.keras.layers.Embedding(num_buckets, embedding_dim,
                                         name=f"{name}_embedding")(inputs)
    return tf.keras.layers.Flatten(name=f"{name}_flat")(embedded)


def build_model(tf_transform_output: tft.TFTransformOutput, hidden_units: Sequence[int],
                embedding_dim: int, categorical: Optional[Iterable[str]] = None,
                label_key: str = LABEL_KEY, l2: float = 0.0, dropout: float = 0.0,
                wide: bool = False, one_hot_max_buckets: int = ONE_HOT_MAX_BUCKETS,
                output_name: str = OUTPUT_LAYER, name: str = "fraud") -> tf.keras.Model:
    """The uncompiled functional model; call it inside the distribution strategy's scope.

    `categorical`: the inputs that are vocabulary ids (the fraud model's by
    default). `l2` and `dropout` regularise the hidden layers, which small
    tables need. A category with at most `one_hot_max_buckets` ids is one-hot
    encoded, a larger one embedded. `wide` adds a linear path from the encoded inputs to the
    logit beside the MLP (wide and deep): the network then contains a logistic
    regression, which is what a few hundred applications support.
    """
    categorical = set(categorical_inputs() if categorical is None else categorical)
    regularizer = tf.keras.regularizers.l2(l2) if l2 else None
    inputs, encoded = {}, []
    for input_name in input_names(tf_transform_output, label_key):
        if input_name in categorical:
            inputs[input_name] = tf.keras.Input(shape=(1,), name=input_name, dtype=tf.int64)
            num_buckets = tf_transform_output.num_buckets_for_transformed_feature(input_name)
            encoded.append(_encode_category(inputs[input_name], input_name, num_buckets,
                                            embedding_dim, one_hot_max_buckets))
        else:
            inputs[input_name] = tf.keras.Input(shape=(1,), name=input_name, dtype=tf.float32)
            encoded.append(inputs[input_name])
    features = tf.keras.layers.Concatenate(name=FEATURES_LAYER)(encoded)
    x = features
    for i, units in enumerate(hidden_units):
        x = tf.keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer,
                                  name=f"hidden_{i}")(x)
        if dropout:
            x = tf.keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    if not wide:
        output = tf.keras.layers.Dense(1, activation="sigmoid", name=output_name)(x)
        return tf.keras.Model(inputs=inputs, outputs=output, name=name)
    logit = tf.keras.layers.Add(name="logit")([
        tf.keras.layers.Dense(1, name=DEEP_LOGIT)(x),
        tf.keras.layers.Dense(1, kernel_regularizer=regularizer, name="wide_logit")(features)])
    output = tf.keras.layers.Activation("sigmoid", name=output_name)(logit)
    return tf.keras.Model(inputs=inputs, outputs=output, name=name)


def serving_call(model: tf.keras.Model) -> Callable[[Mapping[str, tf.Tensor]], tf.Tensor]:
    """`model` as a function of its [batch, 1] inputs, with fewer ops than calling it.

    For a serving graph: the model's own layers and variables from the
    concatenation of the encoded inputs on, but a one-hot category is encoded
    by tf.one_hot: Keras's CategoryEncoding checks on every call that the ids
    are in range (some 20 graph nodes), which the ids of a vocabulary lookup
    with its OOV bucket always are.
    """
    features = next(layer for layer in model.layers
                    if FEATURES_LAYER in (layer.name, getattr(layer, "layer", layer).name))
    node, head = _head(model, features)
    encoders = [_serving_encoder(model, layer, tensor) for layer, tensor in
                zip(features.inbound_nodes[node].inbound_layers, features.get_input_at(node))]
    return lambda inputs: head([encode(inputs) for encode in encoders])


def _head(model: tf.keras.Model, features: tf.keras.layers.Layer):
    """(node index, model from the encoded inputs to the output) of `features` in `model`.

    Pruning's strip and quantization reuse the trained model's layers, so the
    layer may also have nodes in the model it was cloned from: the one of
    `model` is the one whose inputs lead to its output.
    """
    for node in range(len(features.inbound_nodes)):
        try:
            return node, tf.keras.Model(features.get_input_at(node), model.output)
        except ValueError:  # a node of another model: its inputs do not lead here
            continue
    raise ValueError(f"model {model.name}: layer {features.name} does not lead to its output")


def _serving_encoder(model: tf.keras.Model, layer: tf.keras.layers.Layer, encoded: tf.Tensor):
    """The function of the model's inputs giving `encoded`, the output of `layer`."""
    if isinstance(layer, tf.keras.layers.InputLayer):
        return lambda inputs: inputs[layer.name]
    if isinstance(layer, tf.keras.layers.CategoryEncoding) and layer.output_mode == "one_hot":
        name = layer.name[:-len(ONE_HOT_SUFFIX)]
        return lambda inputs: tf.one_hot(tf.squeeze(inputs[name], axis=-1), layer.num_tokens)
    return tf.keras.Model(model.input, encoded)


def compile_model(model: tf.keras.Model, learning_rate: float, steps_per_execution: int) -> None:
    """Adam on binary cross-entropy with AUC, PR-AUC, precision and recall.

    `steps_per_execution` batches run in one call of the compiled train step:
    for a network this small, the per-call Python of Keras and of
    MirroredStrategy costs more than the step itself.
    """
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate),
        steps_per_execution=steps_per_execution,
        loss=tf.keras.losses.BinaryCrossentropy(),
        metrics=[
            tf.keras.metrics.AUC(name="auc"),
            tf.keras.metrics.AUC(curve="PR", name="pr_auc"),
            tf.keras.metrics.Precision(name="precision"),
            tf.keras.metrics.Recall(name="recall"),
        ],
    )


def skip_autograph_for_tf_keras() -> None:
    """Keeps autograph from transpiling tf-keras's own code, as it already skips `keras`.

    Autograph leaves the packages on its do-not-convert list alone. `keras` is
    on it, but tf-keras (the same Keras 2 code under the package `tf_keras`)
    is not, so the first fit(), evaluate() and SavedModel export of a process
    transpile Keras internals: about a minute of CPU on a busy 2-core machine,
    for code written to run unconverted. Idempotent; affects the process.
    """
    # Private, but autograph offers no public way to extend this list.
    from tensorflow.python.autograph.core import config, config_lib

    if not any(isinstance(rule, config_lib.DoNotConvert) and rule.matches("tf_keras")
               for rule in config.CONVERSION_RULES):
        config.CONVERSION_RULES = (config_lib.DoNotConvert("tf_keras"),) + config.CONVERSION_RULES

"""Model compression with tensorflow-model-optimization: magnitude pruning and QAT.

Pruning wraps every Dense layer (and only those: embeddings and one-hot
encodings are not prunable) in `prune_low_magnitude` with a PolynomialDecay
schedule that reaches the target sparsity at `end_step`; training needs the
`pruning_callbacks`, and `strip_pruning` removes the wrappers (keeping the
zeros) before export.

Quantization-aware training runs after pruning, as a fine-tuning stage: the
stripped, sparse model's Dense layers are annotated and quantized with the
prune-preserving 8-bit scheme, so fake-quantization is learned while the
zeros found by pruning stay zero. The exported model is then both sparse and
quantization-aware.
"""
import dataclasses
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

# The number of mask updates spread over the pruning window.
PRUNING_UPDATES = 10


@dataclasses.dataclass(frozen=True)
class PruningPlan:
    target_sparsity: float
    begin_step: int
    end_step: int
    frequency: int


def pruning_plan(total_steps: int, target_sparsity: float, begin_fraction: float,
                 end_fraction: float) -> PruningPlan:
    """Steps at which pruning starts and reaches the target, within `total_steps`.

    The pruning step counter runs 1..total_steps. The window is shortened to a
    whole number of update periods so that the last mask update falls exactly
    on `end_step`, where the schedule's sparsity equals the target.
    """
    if total_steps < 3:
        raise ValueError(f"pruning needs at least 3 training steps, got {total_steps}")
    begin = min(max(1, int(begin_fraction * total_steps)), total_steps - 2)
    end = min(max(begin + 1, int(end_fraction * total_steps)), total_steps - 1)
    frequency = max(1, (end - begin) // PRUNING_UPDATES)
    end = begin + frequency * ((end - begin) // frequency)
    return PruningPlan(target_sparsity, begin, end, frequency)


def _is_dense(layer: tf.keras.layers.Layer) -> bool:
    return isinstance(layer, tf.keras.layers.Dense)


def prune_dense_layers(model: tf.keras.Model, plan: PruningPlan,
                       trained: bool = False) -> tf.keras.Model:
    """A copy of the model whose Dense layers are wrapped for magnitude pruning.

    An untrained model's other layers are rebuilt from their configs; a trained
    one's are reused, so its embeddings keep their weights for fine-tuning.
    """
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=plan.target_sparsity,
        begin_step=plan.begin_step, end_step=plan.end_step, frequency=plan.frequency)

    def clone(layer):
        if _is_dense(layer):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer if trained else layer.__class__.from_config(layer.get_config())

    return tf.keras.models.clone_model(model, clone_function=clone)


def pruning_callbacks(log_dir: str) -> List[tf.keras.callbacks.Callback]:
    """UpdatePruningStep (required) and TensorBoard logging with per-layer sparsity."""
    return [tfmot.sparsity.keras.UpdatePruningStep(),
            tfmot.sparsity.keras.PruningSummaries(log_dir=log_dir, update_freq="epoch")]


def strip_pruning(model: tf.keras.Model) -> tf.keras.Model:
    """The model without pruning wrappers; the pruned weights stay zero."""
    return tfmot.sparsity.keras.strip_pruning(model)


def quantize_dense_layers(model: tf.keras.Model) -> tf.keras.Model:
    """A quantization-aware copy of a trained model, keeping its weights and zeros."""
    def annotate(layer):
        if _is_dense(layer):
            return tfmot.quantization.keras.quantize_annotate_layer(layer)
        return layer

    annotated = tf.keras.models.clone_model(model, clone_function=annotate)
    return tfmot.quantization.keras.quantize_apply(
        annotated, tfmot.quantization.keras.collab_opts.Default8BitPrunePreserveQuantizeScheme())


def dense_kernels(model: tf.keras.Model) -> Dict[str, np.ndarray]:
    """Layer name -> kernel of every Dense layer, also inside pruning or QAT wrappers."""
    kernels = {}
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if _is_dense(inner):
            # The variable, not `inner.kernel`: a QAT wrapper owns the kernel
            # variable and points that attribute at the fake-quantized tensor.
            kernel = next(w for w in layer.weights if w.name.endswith("/kernel:0"))
            kernels[inner.name] = kernel.numpy()
    return kernels


def parameter_counts(model: tf.keras.Model) -> Dict[str, int]:
    """The number of trainable parameters, and of those that are not zero."""
    values = [w.numpy() for w in model.trainable_weights]
    return {"trainable_parameters": int(sum(v.size for v in values)),
            "nonzero_parameters": int(sum(np.count_nonzero(v) for v in values))}


def dense_kernel_sparsity(model: tf.keras.Model) -> Dict[str, float]:
    """Layer name -> fraction of exactly-zero weights in its Dense kernel."""
    return {name: float(np.mean(kernel == 0.0)) for name, kernel in dense_kernels(model).items()}


# ---------------------------------------------------------------------------
# Post-training 8-bit quantization with TFLite.

# The two 8-bit forms, in the Trainer's model_run directory.
TFLITE_FILE = "model_int8.tflite"  # int8 weights and activations
TFLITE_WEIGHTS_FILE = "model_int8_weights.tflite"  # int8 weights, float activations
# Training rows the converter calibrates the activations' int8 ranges on.
TFLITE_CALIBRATION_ROWS = 1000


class OneHot(tf.keras.layers.Layer):
    """CategoryEncoding's one-hot of [batch, 1] ids, as tf.one_hot (a TFLite builtin op)."""

    def __init__(self, num_tokens: int, **kwargs):
        super().__init__(**kwargs)
        self.num_tokens = num_tokens

    def call(self, ids):
        return tf.one_hot(tf.squeeze(ids, axis=-1), self.num_tokens)

    def get_config(self):
        return {**super().get_config(), "num_tokens": self.num_tokens}


def logit_model(model: tf.keras.Model, output_layer: str) -> tf.keras.Model:
    """A copy of a trained model that TFLite's builtin ops run, returning the logit.

    CategoryEncoding runs DenseBincount, which TFLite lacks, so it becomes the
    same one-hot by tf.one_hot. The output layer's sigmoid is left out: int8
    quantizes a sigmoid's output in steps of 1/256, which would score every
    transaction below a 0.4% fraud probability alike; the caller applies it.
    """
    def clone(layer):
        if isinstance(layer, tf.keras.layers.CategoryEncoding):
            return OneHot(layer.num_tokens, name=layer.name)
        config = layer.get_config()
        if layer.name == output_layer:
            config["activation"] = "linear"
        return layer.__class__.from_config(config)

    copy = tf.keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def tflite_int8(model: tf.keras.Model, output_layer: str,
                calibration_inputs: Optional[Dict[str, np.ndarray]] = None) -> bytes:
    """The model as a TFLite flatbuffer with int8 weights, float in and out.

    With `calibration_inputs` (model input name -> [rows, 1] array of training
    rows, each one calibration step) the activations are int8 too; without,
    they stay float (dynamic-range quantization). Full int8 concatenates all
    inputs at one scale, set by the widest (the z-scores), so features of small
    range such as fraud rates lose their precision there.
    """
    converter = tf.lite.TFLiteConverter.from_keras_model(logit_model(model, output_layer))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if calibration_inputs is not None:
        rows = len(next(iter(calibration_inputs.values())))

        def representative_dataset():
            for i in range(rows):
                yield {name: value[i:i + 1] for name, value in calibration_inputs.items()}

        converter.representative_dataset = representative_dataset
    return converter.convert()


class TfliteScorer:
    """Scores model inputs with a flatbuffer of `tflite_int8`, a fixed batch size at a time
    (the interpreter is resized once)."""

    def __init__(self, content: bytes, batch_size: int):
        self.interpreter = tf.lite.Interpreter(model_content=content, num_threads=1)
        self.batch_size = batch_size
        signature = self.interpreter.get_signature_runner()
        self.inputs = signature.get_input_details()
        (self.output,) = (detail["index"] for detail in signature.get_output_details().values())
        # The runner holds the interpreter's buffers, which resizing reallocates.
        del signature
        for detail in self.inputs.values():
            self.interpreter.resize_tensor_input(detail["index"], [batch_size, 1])
        self.interpreter.allocate_tensors()

    def logits(self, batch: Dict[str, np.ndarray]) -> np.ndarray:
        """[batch_size] logits of one batch of exactly `batch_size` rows."""
        for name, detail in self.inputs.items():
            self.interpreter.set_tensor(detail["index"], batch[name].astype(detail["dtype"]))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)[:, 0]

    def probabilities(self, inputs: Dict[str, np.ndarray]) -> np.ndarray:
        """Sigmoid scores of all rows; the last partial batch is padded with its first row."""
        rows = len(next(iter(inputs.values())))
        scores = []
        for start in range(0, rows, self.batch_size):
            batch = {name: value[start:start + self.batch_size] for name, value in inputs.items()}
            size = len(next(iter(batch.values())))
            batch = {name: np.concatenate([value, np.repeat(value[:1], self.batch_size - size,
                                                            axis=0)])
                     for name, value in batch.items()}
            scores.append(self.logits(batch)[:size])
        return 1.0 / (1.0 + np.exp(-np.concatenate(scores)))

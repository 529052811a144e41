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
from typing import Dict, List

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


def dense_kernel_sparsity(model: tf.keras.Model) -> Dict[str, float]:
    """Layer name -> fraction of exactly-zero weights in its Dense kernel."""
    return {name: float(np.mean(kernel == 0.0)) for name, kernel in dense_kernels(model).items()}

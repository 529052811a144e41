"""The Trainer's hyperparameters: what `riskpipe run --config` sets in its `trainer:` section.

The pipeline passes them to run_fn as `dataclasses.asdict(TrainerConfig)` in the
Trainer's custom_config (components/trainer.py reads them back). Each task
starts from its own defaults, FRAUD_TRAINER and CREDIT_TRAINER in
pipeline/configs.py, which override some of these.
"""
import dataclasses
from typing import Optional, Tuple


@dataclasses.dataclass
class TrainerConfig:
    hidden_units: Tuple[int, ...] = (64, 32)
    embedding_dim: int = 4
    batch_size: int = 256
    epochs: int = 6
    # Training batches per call of the compiled train step (Keras's
    # steps_per_execution): the same steps and the same model, for less
    # per-step Python; at 1 M transactions, 64 instead of 84 CPU seconds of
    # training at 1 and 32 with an identical PR-AUC.
    steps_per_execution: int = 32
    learning_rate: float = 1e-3
    # "balanced" (n / (2 * n_class)), "sqrt" (square root of balanced) or "none".
    # sqrt keeps fraud weighted up without pushing every score towards 1: at
    # 1 M transactions it beat "balanced" on PR-AUC (0.631 vs 0.533). The fraud
    # task now defaults to synthetic frauds and "none" (FRAUD_TRAINER).
    class_weight_scheme: str = "sqrt"
    # Balanced resampling of the training split instead of class weights.
    balanced_resampling: bool = False
    # Fraud Trainer: synthetic frauds added to the training split, per real
    # fraud (0: none), interpolated between a fraud and one of its
    # `synthetic_neighbours` nearest frauds in the transformed space
    # (components/synthetic_minority.py). They combine with class weights or
    # resampling; the served probability stays calibrated to the real fraud rate.
    synthetic_fraud_ratio: float = 0.0
    synthetic_neighbours: int = 5
    # Fraud Trainer, negative downsampling: each epoch trains on every fraud
    # and this share of the legitimate transactions, drawn afresh per epoch,
    # so an epoch costs that much less and the passes together still see most
    # of them. The served probability is corrected as for a class weight of
    # this size on the legitimate class. 1: every transaction in every epoch.
    negative_sampling_rate: float = 1.0
    target_sparsity: float = 0.5
    pruning_begin_fraction: float = 0.2
    pruning_end_fraction: float = 0.8
    # Quantization-aware fine-tuning after pruning, for `qat_epochs` more epochs.
    quantization_aware: bool = False
    qat_epochs: int = 1
    # Fraud Trainer, knowledge distillation: a teacher whose hidden layers are
    # this many times wider than `hidden_units` trains first, then the
    # network of `hidden_units` (the student, which is pruned, quantized and
    # exported as configured) learns from the labels and the teacher's
    # softened scores (components/distillation.py). 0: no teacher.
    teacher_width_multiplier: int = 0
    distillation_alpha: float = 0.5
    distillation_temperature: float = 2.0
    # Fraud Trainer: also write 8-bit post-training quantized TFLite forms of
    # the trained network (the model after the Transform) into the model_run
    # directory, for in-process scoring with the TFLite interpreter: int8
    # weights and activations, and int8 weights with float activations.
    tflite_int8: bool = False
    # Number of warmup requests (PredictionLog records, at most 1000) written
    # into assets.extra.
    warmup_examples: int = 16
    # Seeds weights, dropout and the shuffle order; the same seed and data give
    # the same model. None leaves training unseeded.
    seed: Optional[int] = None
    # Regularisation of the hidden layers (small tables need it).
    l2: float = 0.0
    dropout: float = 0.0
    # A linear path from the inputs to the logit beside the MLP (wide and deep).
    wide: bool = False
    # Credit, with `wide`: fit the linear path alone first (a logistic
    # regression inside the network, to convergence), then the whole network
    # from there with the deep path starting at zero; the deep path is kept
    # only if it lowers the validation loss.
    wide_first: bool = False
    # Credit: early stopping on the loss of a validation slice of the training
    # split after this many epochs without a better one (the best weights are
    # kept); 0 trains all `epochs`. With it, pruning
    # is a fine-tuning phase of `pruning_epochs` after the dense training
    # stopped, since the number of dense steps is not known in advance.
    early_stopping_patience: int = 0
    pruning_epochs: int = 5

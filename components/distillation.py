"""Knowledge distillation: a small student network trained on a wider teacher's scores.

The fraud model has one sigmoid output, so the teacher's soft label is its
probability at temperature T, sigmoid(z_t / T) for its logit z_t (a softmax
over the two class logits (0, z) is that same sigmoid; there is no softmax
over one unit to soften). The student's loss on an example with label y is

    alpha * BCE(y, sigmoid(z_s)) + (1 - alpha) * T^2 * BCE(sigmoid(z_t / T), sigmoid(z_s / T))

The T^2 (Hinton et al., 2015) keeps the soft term's gradients the same size
whatever T, so alpha weighs the two terms alike at every temperature. Class
weights multiply an example's whole loss, as they multiply the hard loss of a
model trained without a teacher.

The Keras models end in a sigmoid, so logits are taken back from their
probabilities, clipped as Keras's own binary cross-entropy clips them.
"""
from typing import Optional

import tensorflow as tf

from components.export import logit

# Keras's binary cross-entropy clips probabilities to [EPSILON, 1 - EPSILON].
EPSILON = 1e-7


def logit_of(probability: tf.Tensor) -> tf.Tensor:
    """The logit of a sigmoid output, clipped away from 0 and 1 where float32 saturates."""
    return logit(tf.clip_by_value(probability, EPSILON, 1.0 - EPSILON))


def distillation_loss(labels: tf.Tensor, student_logits: tf.Tensor, teacher_logits: tf.Tensor,
                      alpha: float, temperature: float) -> tf.Tensor:
    """The per-example loss of the module docstring; all inputs [batch, 1], output [batch]."""
    hard = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=student_logits)
    soft = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.sigmoid(teacher_logits / temperature), logits=student_logits / temperature)
    return tf.squeeze(alpha * hard + (1.0 - alpha) * temperature ** 2 * soft, axis=-1)


class Distiller(tf.keras.Model):
    """Trains `student` on the distillation loss against a frozen, trained `teacher`.

    Compile it with an optimizer and the student's metrics (a compiled loss is
    not used); fit and evaluate then report the distillation loss as `loss`
    and the metrics on the student's probabilities. Pruning wrappers inside the student work as
    in a plain model: tfmot's callbacks find them in nested models.
    """

    def __init__(self, student: tf.keras.Model, teacher: tf.keras.Model, alpha: float,
                 temperature: float):
        super().__init__(name="distiller")
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.alpha, self.temperature = alpha, temperature
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker] + self.compiled_metrics.metrics

    def _loss(self, x, y, sample_weight: Optional[tf.Tensor], training: bool):
        probability = self.student(x, training=training)
        per_example = distillation_loss(
            tf.cast(y, tf.float32), logit_of(probability),
            logit_of(self.teacher(x, training=False)), self.alpha, self.temperature)
        # Divided by the global batch, so replicas' gradients sum to the batch mean.
        loss = tf.nn.compute_average_loss(per_example, sample_weight=sample_weight)
        if self.student.losses:
            loss += tf.nn.scale_regularization_loss(tf.add_n(self.student.losses))
        return probability, loss

    def _report(self, y, probability, sample_weight, loss):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self.loss_tracker.update_state(loss * replicas)
        self.compiled_metrics.update_state(y, probability, sample_weight)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            probability, loss = self._loss(x, y, sample_weight, training=True)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return self._report(y, probability, sample_weight, loss)

    def test_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        probability, loss = self._loss(x, y, sample_weight, training=False)
        return self._report(y, probability, sample_weight, loss)

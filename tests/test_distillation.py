"""Knowledge distillation's loss and its Keras training model (components/distillation.py)."""
import math

import numpy as np
import pytest
import tensorflow as tf

from components import distillation
from pipeline import run_summary
from pipeline.configs import EvalConfig


def _column(value):
    return tf.constant([[value]], tf.float32)


def test_the_loss_on_a_hand_worked_example():
    # y = 0, student logit 1, teacher logit 3, alpha 0.25, T = 2:
    # hard = -ln(1 - sigmoid(1)) = 1.313262
    # soft target sigmoid(3 / 2) = 0.817574, student at T sigmoid(1 / 2) = 0.622459
    # soft = -(0.817574 ln 0.622459 + 0.182426 ln 0.377541) = 0.565290
    # loss = 0.25 x 1.313262 + 0.75 x 2^2 x 0.565290 = 2.024185
    loss = distillation.distillation_loss(_column(0.0), _column(1.0), _column(3.0),
                                          alpha=0.25, temperature=2.0)
    assert loss.shape == (1,)
    assert float(loss[0]) == pytest.approx(2.024185, abs=1e-5)


def test_alpha_one_is_the_hard_loss_and_alpha_zero_ignores_the_label():
    labels, student, teacher = _column(1.0), _column(-0.7), _column(2.0)
    hard = distillation.distillation_loss(labels, student, teacher, 1.0, 3.0)
    assert float(hard[0]) == pytest.approx(-math.log(1 / (1 + math.exp(0.7))), abs=1e-6)
    soft = [float(distillation.distillation_loss(_column(y), student, teacher, 0.0, 3.0)[0])
            for y in (0.0, 1.0)]
    assert soft[0] == pytest.approx(soft[1])


def test_the_soft_loss_is_lowest_where_the_student_matches_the_teacher():
    teacher = _column(1.2)
    logits = np.linspace(-3, 5, 81)
    losses = [float(distillation.distillation_loss(_column(0.0), _column(z), teacher, 0.0, 2.0)[0])
              for z in logits]
    assert logits[int(np.argmin(losses))] == pytest.approx(1.2, abs=0.05)


def test_logit_of_inverts_the_sigmoid_and_stays_finite_at_saturation():
    z = tf.constant([-8.0, 0.0, 3.5])
    np.testing.assert_allclose(distillation.logit_of(tf.sigmoid(z)), z, atol=1e-4)
    assert np.all(np.isfinite(distillation.logit_of(tf.constant([0.0, 1.0]))))


def _network(units, seed):
    inputs = tf.keras.Input((2,), name="x")
    hidden = tf.keras.layers.Dense(units, activation="relu",
                                   kernel_initializer=tf.keras.initializers.GlorotUniform(seed))(
                                       inputs)
    output = tf.keras.layers.Dense(1, activation="sigmoid")(hidden)
    return tf.keras.Model(inputs, output)


def test_the_distiller_trains_the_student_only_and_reports_the_distillation_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 2)).astype(np.float32)
    y = (x[:, :1] + 0.3 * x[:, 1:] > 0.5).astype(np.float32)
    teacher, student = _network(16, 1), _network(4, 2)
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    student_weights = [w.copy() for w in student.get_weights()]
    distiller = distillation.Distiller(student, teacher, alpha=0.5, temperature=2.0)
    distiller.compile(optimizer=tf.keras.optimizers.Adam(0.05),
                      metrics=[tf.keras.metrics.AUC(name="auc")])
    distiller.fit(x, y, batch_size=64, epochs=2, verbose=0)

    for before, after in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert any(not np.array_equal(b, a) for b, a in zip(student_weights, student.get_weights()))
    reported = distiller.evaluate(x, y, batch_size=256, verbose=0, return_dict=True)
    expected = distillation.distillation_loss(
        tf.constant(y), distillation.logit_of(student(x)), distillation.logit_of(teacher(x)),
        0.5, 2.0)
    assert reported["loss"] == pytest.approx(float(tf.reduce_mean(expected)), rel=1e-5)
    assert set(reported) == {"loss", "auc"}


def test_the_run_summary_names_the_parameters_and_the_teacher():
    summary = run_summary.RunSummary(metadata_path="m", compression={
        "min_dense_kernel_sparsity": 0.0, "target_sparsity": 0.0,
        "trainable_parameters": 869, "nonzero_parameters": 869,
        "distillation": {"teacher_hidden_units": [64, 32]}})
    lines = run_summary.format_summary(summary, EvalConfig()).splitlines()
    assert ("parameters: 869 trainable, 869 non-zero; distilled from a [64, 32] teacher".split()
            in [line.split() for line in lines])

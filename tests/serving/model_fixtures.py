"""A tiny fraud model with the pushed model's serving contract, for serving tests.

Signatures, as components/export.py writes them:
  serving_default  examples: tf.string [None] serialized tf.Example -> fraud_probability float [None]
  serving_raw      one tensor per raw feature                        -> fraud_probability
  classification   (tensorflow/serving/classify) inputs -> classes, scores
  regression       (tensorflow/serving/regress)  inputs -> outputs
plus assets.extra/tf_serving_warmup_requests. `bias` shifts the logit, so two
versions give different answers to the same transaction.
"""
import os
import shutil
import tempfile

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from common import serving_contract as contract
from common.serving_contract import (CLASSIFICATION, CLASSIFY_INPUTS, CLASSIFY_OUTPUT_CLASSES,
                                     CLASSIFY_OUTPUT_SCORES, EXAMPLES_INPUT, OUTPUT_KEY,
                                     REGRESS_INPUTS, REGRESS_OUTPUTS, REGRESSION, SERVING_DEFAULT,
                                     SERVING_RAW)
from components.export import set_signature_methods

CATEGORIES = ("grocery", "fuel", "restaurant", "online", "travel", "electronics", "atm", "luxury")
CATEGORY_WEIGHTS = (-1.0, -0.5, -0.8, 0.6, 0.4, 0.9, 0.3, 1.2)
CHANNELS = ("card_present", "card_not_present")


def make_example(amount: float, merchant_category: str = "online",
                 channel: str = "card_not_present") -> tf.train.Example:
    return tf.train.Example(features=tf.train.Features(feature={
        "amount": tf.train.Feature(float_list=tf.train.FloatList(value=[amount])),
        "merchant_category": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[merchant_category.encode()])),
        "channel": tf.train.Feature(bytes_list=tf.train.BytesList(value=[channel.encode()])),
    }))


class TinyFraudModel(tf.Module):
    def __init__(self, bias: float):
        super().__init__()
        self.amount_weight = tf.Variable(0.8)
        self.card_not_present_weight = tf.Variable(0.7)
        self.bias = tf.Variable(bias - 4.0)
        self.categories = tf.constant(CATEGORIES)
        self.category_weights = tf.Variable(CATEGORY_WEIGHTS)

    def _probability(self, amount, merchant_category, channel):
        matches = tf.cast(tf.equal(merchant_category[:, None], self.categories[None, :]), tf.float32)
        category = tf.reduce_sum(matches * self.category_weights[None, :], axis=1)
        card_not_present = tf.cast(tf.equal(channel, "card_not_present"), tf.float32)
        logit = (self.amount_weight * tf.math.log1p(tf.maximum(amount, 0.0)) + category
                 + self.card_not_present_weight * card_not_present + self.bias)
        return tf.sigmoid(logit)

    def _parse(self, examples):
        features = tf.io.parse_example(examples, {
            "amount": tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
            "merchant_category": tf.io.FixedLenFeature([], tf.string, default_value=""),
            "channel": tf.io.FixedLenFeature([], tf.string, default_value=""),
        })
        return self._probability(features["amount"], features["merchant_category"],
                                 features["channel"])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(self, examples):
        return {OUTPUT_KEY: self._parse(examples)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="amount"),
                                  tf.TensorSpec([None], tf.string, name="merchant_category"),
                                  tf.TensorSpec([None], tf.string, name="channel")])
    def serve_raw(self, amount, merchant_category, channel):
        return {OUTPUT_KEY: self._probability(amount, merchant_category, channel)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=CLASSIFY_INPUTS)])
    def classify(self, inputs):
        probability = self._parse(inputs)
        scores = tf.stack([1.0 - probability, probability], axis=1)
        classes = tf.tile(tf.constant([["legit", "fraud"]]), [tf.shape(inputs)[0], 1])
        return {CLASSIFY_OUTPUT_CLASSES: classes, CLASSIFY_OUTPUT_SCORES: scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=REGRESS_INPUTS)])
    def regress(self, inputs):
        return {REGRESS_OUTPUTS: self._parse(inputs)}


def warmup_logs(model_name: str = "fraud"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = SERVING_DEFAULT
    request.inputs[EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(
        [make_example(12.5, "grocery", "card_present").SerializeToString(),
         make_example(950.0, "electronics").SerializeToString()], dtype=tf.string))
    return [prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request))]


def export_model(export_dir: str, bias: float = 0.0, warmup_records=None) -> str:
    """Writes the tiny model to export_dir (which must not exist)."""
    model = TinyFraudModel(bias)
    tf.saved_model.save(model, export_dir, signatures={
        SERVING_DEFAULT: model.serve_examples,
        SERVING_RAW: model.serve_raw,
        CLASSIFICATION: model.classify,
        REGRESSION: model.regress,
    })
    set_signature_methods(export_dir, contract.SIGNATURE_METHODS)
    contract.write_warmup_requests(export_dir, warmup_logs() if warmup_records is None
                                 else warmup_records)
    return export_dir


def publish_version(source_dir: str, base_path: str, version: int) -> str:
    """Copies a SavedModel into base_path/<version> the way the Pusher does: into a
    temporary directory first, then renamed into place."""
    os.makedirs(base_path, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{version}-", dir=base_path)
    shutil.rmtree(staging)
    shutil.copytree(source_dir, staging)
    target = os.path.join(base_path, str(version))
    os.rename(staging, target)
    return target


def write_half_version(source_dir: str, base_path: str, version: int,
                       with_saved_model_pb: bool) -> str:
    """A version directory caught mid-copy: the variables are missing, and
    saved_model.pb is present only when asked (a copy done out of order)."""
    target = os.path.join(base_path, str(version))
    os.makedirs(target)
    if with_saved_model_pb:
        shutil.copy(os.path.join(source_dir, contract.SAVED_MODEL_FILENAME), target)
    return target

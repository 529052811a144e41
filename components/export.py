"""The serving SavedModel: the Transform's preprocessing and the model behind four signatures.

Every signature applies the preprocessing inside the model, so a caller sends
raw features and no client reimplements it. The graph behind them is lean
(LEAN): one tf.io.parse_example of the model features into dense tensors, the
lean transform of components/lean_transform.py (each preprocessing rule once
on the stacked features that share it, with the constants and vocabularies of
the Transform output, checked against the Transform layer at export), then the
model's layers (components/model.py `serving_call`). It gives the scores the
Transform layer would (TRANSFORM_LAYER, the reference kept for tests and
benchmarks/serving_graph.py: `tf_transform_output.transform_features_layer()`
then the Keras model) to within float32 rounding, with a fifth of its graph
nodes: for a pushed fraud model, 160 in serving_default against 833, and 93
run per call in a session against 429 (benchmarks/serving_graph.py).

serving_default   inputs  examples: string [None], serialized tf.Examples with the
                          model features (passthrough features and the label may be
                          present and are ignored; an optional feature is left out
                          of the Example when unknown)
                  outputs fraud_probability: float [None], the calibrated probability;
                          raw_score: float [None], the score of the model as
                          trained (class-weighted or resampled)
serving_raw       inputs  one tensor per model feature, named as the feature, shape
                          [None]: float32 for floats, int64 for ints, string for
                          categories. An optional feature that is unknown for a
                          transaction is NaN (all optional features are floats), so
                          a risk engine fills the batch from a feature dict with
                          `value if present else float("nan")`. NaN in a required
                          feature is an INVALID_ARGUMENT error naming it, as is an
                          Example without a required feature.
                  outputs fraud_probability, raw_score: as serving_default
classification    TF Serving Classify API (method tensorflow/serving/classify)
                  inputs  inputs: serialized tf.Examples
                  outputs scores: float [None, 2] (not fraud, fraud), from
                          fraud_probability;
                          classes: string [None, 2] ("0", "1")
regression        TF Serving Regress API (method tensorflow/serving/regress)
                  inputs  inputs: serialized tf.Examples
                  outputs outputs: float [None], fraud_probability

Calibration: class weights w1 on frauds and w0 on the rest multiply the odds
the model learns by w1 / w0; balanced resampling to a fraud share s from the
data's pi multiplies them by (s / (1 - s)) / (pi / (1 - pi)). raw_score is
that model's sigmoid output; fraud_probability undoes the factor, the prior
correction: logit(fraud_probability) = logit(raw_score) - ln(w1 / w0) (or
- [ln(s / (1 - s)) - ln(pi / (1 - pi))]), the shift the Trainer computes from
the training split's label counts (components/calibration.py). It is exact for
the weighting the model was trained with, needs no data beyond those counts,
and leaves the eval split unseen, so the Evaluator's figures on it stay an
honest out-of-sample measure; a fitted calibration (Platt scaling, isotonic)
would need a held-out split of its own. It does not correct the model's own
errors, so the Trainer reports Brier score and ECE of both outputs on the eval
split (calibration.json in its model_run directory, shown in the run summary).
The probability is of fraud at the training split's fraud rate. Measured on the
demo data (sqrt weights): on the training split the corrected score averages
0.0107 against 1.08% fraud (ECE 0.0013), so the correction itself is right; on
the later eval split Brier goes 0.0130 -> 0.0109 and ECE 0.0185 -> 0.0075, and
what remains is the period's: 1.51% fraud, and scores of 0.1-0.3 are fraud
about twice as often as they say.

tf.saved_model.save writes every signature with the Predict method name; the
classify and regress method names, which TF Serving's Classify and Regress
handlers require, are set in saved_model.pb after saving (and the SavedModel
fingerprint is rewritten to match).

Warmup: assets.extra/tf_serving_warmup_requests holds PredictionLog records of
Predict requests on serving_default, batches of real eval examples with sizes
cycling through WARMUP_BATCH_SIZES. They are replayed against the exported
model before it is published, since a failing warmup fails a server's load.

The model is written to a local temporary directory and copied into the
serving directory with saved_model.pb last: its presence marks a complete model.
"""
import os
import shutil
import tempfile
from typing import Callable, Dict, List, Mapping, NamedTuple, Sequence

import tensorflow as tf
import tensorflow_transform as tft
# Private, but the only way to rewrite the fingerprint after editing saved_model.pb.
from tensorflow.python.saved_model import fingerprinting_utils
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from common import serving_contract as contract
from common.serving_contract import (CLASSIFICATION, CLASSIFY_INPUTS, CLASSIFY_OUTPUT_CLASSES,
                                     CLASSIFY_OUTPUT_SCORES, EXAMPLES_INPUT, OUTPUT_KEY,
                                     RAW_SCORE_KEY, REGRESS_INPUTS, REGRESS_OUTPUTS, REGRESSION,
                                     SERVING_DEFAULT, SERVING_RAW)
from components import lean_transform
from components import model as model_lib
from components import preprocessing
from components.features import OPTIONAL_FEATURES

CLASS_LABELS = ("0", "1")
WARMUP_BATCH_SIZES = (1, 8, 32)
# The graphs behind the signatures (module docstring): the one exported, and the
# Transform layer's, which it reproduces (the reference of tests and benchmarks).
LEAN, TRANSFORM_LAYER = "lean", "transform_layer"
# serving_raw's error for NaN in a required feature, after "feature <name>".
_NAN_MESSAGE = " is NaN: only optional features may be missing"


class _Graph(NamedTuple):
    """The tf.Module to save (it tracks the graph's resources) and the model's [batch, 1]
    raw score of serialized examples and of serving_raw's features."""

    module: tf.Module
    score_examples: Callable[[tf.Tensor], tf.Tensor]
    score_raw: Callable[[Dict[str, tf.Tensor]], tf.Tensor]


def serving_feature_spec(tf_transform_output: tft.TFTransformOutput) -> Dict[str, object]:
    """The raw feature spec of the model's features (no passthrough, no label, none excluded)."""
    raw = tf_transform_output.raw_feature_spec()
    used = preprocessing.model_features_of(tf_transform_output.transformed_feature_spec())
    absent = sorted(set(used) - set(raw))
    if absent:
        raise ValueError(f"the Transform's raw schema lacks model features {absent}")
    for name in OPTIONAL_FEATURES & set(used):
        if not isinstance(raw[name], tf.io.VarLenFeature) or raw[name].dtype != tf.float32:
            raise ValueError(f"optional feature '{name}' must be a variable-length float in the "
                             f"raw schema, got {raw[name]}")
    return {name: raw[name] for name in used}


def _raw_column(name: str, tensor: tf.Tensor, spec) -> object:
    """A serving_raw input tensor shaped like tf.io.parse_example's output for `spec`."""
    if tensor.dtype.is_floating:
        present = tf.logical_not(tf.math.is_nan(tensor))
        if name not in OPTIONAL_FEATURES:
            check = tf.debugging.assert_equal(
                tf.reduce_all(present), True,
                message=f"feature {name}{_NAN_MESSAGE}")
            with tf.control_dependencies([check]):
                tensor = tf.identity(tensor)
    else:
        present = tf.ones_like(tensor, dtype=tf.bool)
    if isinstance(spec, tf.io.VarLenFeature):
        rows = tf.where(present)
        return tf.SparseTensor(indices=tf.concat([rows, tf.zeros_like(rows)], axis=1),
                               values=tf.boolean_mask(tensor, present),
                               dense_shape=tf.stack([tf.shape(tensor, out_type=tf.int64)[0], 1]))
    if list(spec.shape) == [1]:
        return tf.expand_dims(tensor, axis=-1)
    return tensor


def calibrated_probability(raw_score: tf.Tensor, logit_shift: float) -> tf.Tensor:
    """sigmoid(logit(raw_score) - logit_shift): the prior correction of the module docstring.

    The logit is taken back from the sigmoid output as log(p) - log(1 - p), exact
    up to float32 rounding; a score saturated at 0 or 1 stays there.
    """
    return tf.sigmoid(logit(raw_score) - logit_shift)


def logit(probability: tf.Tensor) -> tf.Tensor:
    """log(p) - log(1 - p): a sigmoid output's logit, exact up to float32 rounding."""
    return tf.math.log(probability) - tf.math.log1p(-probability)


def _transform_layer_graph(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput,
                           feature_spec: Mapping[str, object]) -> _Graph:
    """The reference graph: the whole Transform layer on the parsed features, then the model."""
    module = tf.Module()
    module.tft_layer = tf_transform_output.transform_features_layer()
    input_names = model_lib.input_names(tf_transform_output)

    def score(raw_features) -> tf.Tensor:
        return model(model_lib.as_model_inputs(module.tft_layer(raw_features), input_names))

    return _Graph(
        module,
        lambda serialized: score(tf.io.parse_example(serialized, dict(feature_spec))),
        lambda features: score({name: _raw_column(name, tensor, feature_spec[name])
                                for name, tensor in features.items()}))


def _lean_graph(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput,
                feature_spec: Mapping[str, object]) -> _Graph:
    """The served graph: one parse, the lean transform, the model (module docstring)."""
    module = tf.Module()
    module.lean_transform = lean_transform.LeanTransform.from_transform_output(
        tf_transform_output, feature_spec)
    spec = lean_transform.parse_spec(feature_spec)
    required_floats = [name for name, s in spec.items()
                       if s.dtype.is_floating and name not in OPTIONAL_FEATURES]
    call = model_lib.serving_call(model)
    return _Graph(
        module,
        lambda serialized: call(module.lean_transform(tf.io.parse_example(serialized, spec))),
        lambda features: call(module.lean_transform(
            _checked_present(features, required_floats))))


def _checked_present(features: Dict[str, tf.Tensor], names: Sequence[str]) -> Dict[str, tf.Tensor]:
    """`features`, failing naming the first of `names` that holds a NaN.

    One check for all of them, where a check per feature would add a few graph
    nodes each.
    """
    if not names:
        return features
    nan = tf.reduce_any(tf.math.is_nan(tf.stack([features[n] for n in names], axis=1)), axis=0)
    first = tf.gather(tf.constant(names), tf.argmax(tf.cast(nan, tf.int32)))
    check = tf.debugging.Assert(tf.logical_not(tf.reduce_any(nan)),
                                [tf.strings.join(["feature ", first, _NAN_MESSAGE])])
    with tf.control_dependencies([check]):
        return {name: tf.identity(tensor) if name in names else tensor
                for name, tensor in features.items()}


_GRAPHS = {LEAN: _lean_graph, TRANSFORM_LAYER: _transform_layer_graph}


def _make_signatures(graph: _Graph, feature_spec: Mapping[str, object], logit_shift: float):
    def score(raw: tf.Tensor) -> Dict[str, tf.Tensor]:
        raw = tf.squeeze(raw, axis=-1)
        return {OUTPUT_KEY: calibrated_probability(raw, logit_shift), RAW_SCORE_KEY: raw}

    # autograph=False: nothing here needs it, and converting the Keras and
    # Transform layers' Python code costs seconds per signature.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)],
                 autograph=False)
    def serve_examples(examples):
        return score(graph.score_examples(examples))

    @tf.function(autograph=False)
    def serve_raw(**features):
        return score(graph.score_raw(features))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=CLASSIFY_INPUTS)],
                 autograph=False)
    def classify(inputs):
        fraud = score(graph.score_examples(inputs))[OUTPUT_KEY]
        scores = tf.stack([1.0 - fraud, fraud], axis=1)
        classes = tf.tile(tf.constant([CLASS_LABELS]), [tf.shape(fraud)[0], 1])
        return {CLASSIFY_OUTPUT_SCORES: scores, CLASSIFY_OUTPUT_CLASSES: classes}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=REGRESS_INPUTS)],
                 autograph=False)
    def regress(inputs):
        return {REGRESS_OUTPUTS: score(graph.score_examples(inputs))[OUTPUT_KEY]}

    raw_specs = {name: tf.TensorSpec([None], spec.dtype, name=name)
                 for name, spec in feature_spec.items()}
    return {
        SERVING_DEFAULT: serve_examples.get_concrete_function(),
        SERVING_RAW: serve_raw.get_concrete_function(**raw_specs),
        CLASSIFICATION: classify.get_concrete_function(),
        REGRESSION: regress.get_concrete_function(),
    }


def set_signature_methods(export_dir: str, method_names: Mapping[str, str]) -> None:
    """Sets the method_name of signatures in saved_model.pb and refreshes the fingerprint."""
    saved_model = contract.read_saved_model(export_dir)
    for meta_graph in saved_model.meta_graphs:
        for name, method in method_names.items():
            if name not in meta_graph.signature_def:
                raise ValueError(f"{export_dir}: no signature named '{name}'")
            meta_graph.signature_def[name].method_name = method
    path = os.path.join(export_dir, contract.SAVED_MODEL_FILENAME)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(saved_model.SerializeToString())
    fingerprinting_utils.write_fingerprint(export_dir)


def warmup_requests(serialized_examples: Sequence[bytes],
                    num_records: int) -> List[prediction_log_pb2.PredictionLog]:
    """Predict requests on serving_default over the examples, batch sizes cycling."""
    if not 0 <= num_records <= contract.MAX_WARMUP_RECORDS:
        raise ValueError(f"warmup_examples must be in [0, {contract.MAX_WARMUP_RECORDS}], "
                         f"got {num_records}")
    if num_records and not serialized_examples:
        raise ValueError("no examples to build warmup requests from")
    records, position = [], 0
    for i in range(num_records):
        size = WARMUP_BATCH_SIZES[i % len(WARMUP_BATCH_SIZES)]
        batch = [serialized_examples[(position + j) % len(serialized_examples)]
                 for j in range(size)]
        position += size
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = SERVING_DEFAULT
        request.inputs[EXAMPLES_INPUT].CopyFrom(
            tf.make_tensor_proto(batch, dtype=tf.string, shape=[len(batch)]))
        records.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)))
    return records


def _replay_warmup(export_dir: str, records: Sequence[prediction_log_pb2.PredictionLog],
                  output_key: str = OUTPUT_KEY) -> None:
    """Runs every warmup request on the exported model, as a server does at load."""
    loaded = tf.saved_model.load(export_dir)

    def predict(request: predict_pb2.PredictRequest) -> None:
        signature = loaded.signatures[request.model_spec.signature_name]
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        scores = signature(**inputs)[output_key]
        if scores.shape[0] != len(inputs[EXAMPLES_INPUT]):
            raise ValueError(f"a warmup request returned {scores.shape[0]} scores for "
                             f"{len(inputs[EXAMPLES_INPUT])} examples")

    contract.replay_warmup(records, {"predict_log": predict})


def _publish(source_dir: str, serving_model_dir: str) -> None:
    """Copies a SavedModel directory, writing saved_model.pb last."""
    if tf.io.gfile.exists(serving_model_dir) and tf.io.gfile.listdir(serving_model_dir):
        raise FileExistsError(f"serving model directory {serving_model_dir} is not empty")
    saved_model_pb = os.path.join(source_dir, contract.SAVED_MODEL_FILENAME)
    for directory, _, files in tf.io.gfile.walk(source_dir):
        target = os.path.join(serving_model_dir, os.path.relpath(directory, source_dir))
        tf.io.gfile.makedirs(target)
        for name in files:
            source = os.path.join(directory, name)
            if source != saved_model_pb:
                tf.io.gfile.copy(source, os.path.join(target, name), overwrite=True)
    tf.io.gfile.copy(saved_model_pb, os.path.join(serving_model_dir, contract.SAVED_MODEL_FILENAME),
                     overwrite=True)


def export_serving_model(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput,
                         serving_model_dir: str, warmup_examples: Sequence[bytes],
                         num_warmup_records: int, logit_shift: float,
                         serving_graph: str = LEAN) -> None:
    """Saves the serving SavedModel with its signatures and warmup requests.

    `logit_shift` is the prior correction for the model's class weights or
    resampling (components/calibration.py). `serving_graph` is what the
    signatures run: LEAN, or TRANSFORM_LAYER, the reference it reproduces.
    """
    feature_spec = serving_feature_spec(tf_transform_output)
    graph = _GRAPHS[serving_graph](model, tf_transform_output, feature_spec)
    # The SavedModel tracks the model's variables, not the Keras model: Keras's
    # own serialization would retrace every layer, and serving needs only the
    # signatures.
    graph.module.model_variables = list(model.variables)
    signatures = _make_signatures(graph, feature_spec, logit_shift)
    save_and_publish(graph.module, signatures, serving_model_dir,
                     warmup_requests(warmup_examples, num_warmup_records), OUTPUT_KEY)


def save_and_publish(module: tf.Module, signatures, serving_model_dir: str,
                     records: Sequence[prediction_log_pb2.PredictionLog],
                     output_key: str) -> None:
    """Saves, checks by replaying the warmup requests, then publishes (saved_model.pb last).

    The model is written to a local temporary directory first, so a failure
    leaves nothing in the serving directory.
    """
    staging = tempfile.mkdtemp(prefix="riskpipe-export-")
    try:
        tf.saved_model.save(module, staging, signatures=signatures)
        set_signature_methods(staging, {name: method for name, method in
                                        contract.SIGNATURE_METHODS.items() if name in signatures})
        contract.write_warmup_requests(staging, records)
        _replay_warmup(staging, records, output_key)
        _publish(staging, serving_model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

"""The credit serving SavedModel: the Transform graph and the model behind three signatures.

serving_default   inputs  examples: string [None], serialized tf.Examples with the
                          table's columns as CsvExampleGen wrote them (a missing
                          value is left out of the Example)
                  outputs default_probability: float [None], calibrated (prior-corrected
                          for the class weights, as fraud's score is);
                          score_points: float [None], offset - factor * logit(p), the
                          scorecard scale of components/credit/scorecard.py;
                          raw_score: float [None], the model's score as trained
serving_raw       inputs  one tensor per feature column, named as the column, shape
                          [None]: float32 for numeric columns (NaN = missing), string
                          for categorical ones ("" = missing; numbers as text when the
                          bank codes categories as numbers)
                  outputs as serving_default
explain           inputs  as serving_raw
                  outputs as serving_default, plus reason_codes: string [None, k], the
                          columns pushing the score most toward default, strongest
                          first, and reason_contributions: float [None, k], their
                          contributions to the log-odds of default
                          (components/credit/reasons.py); a contribution <= 0 is not
                          an adverse reason

serving_raw and explain take plain typed tensors so that a client needs only
the column names and kinds, which GetModelMetadata gives.
"""
from typing import Dict, Mapping, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from common.serving_contract import (DEFAULT_PROBABILITY_KEY, EXAMPLES_INPUT, EXPLAIN,
                                     RAW_SCORE_KEY, REASON_CODES_KEY, REASON_CONTRIBUTIONS_KEY,
                                     SCORE_POINTS_KEY, SERVING_DEFAULT, SERVING_RAW)
from components import export as fraud_export
from components import model as model_lib
from components.credit import reasons, scorecard
from components.credit.config import ScorecardScale


def _raw_column(tensor: tf.Tensor, spec) -> object:
    """A serving_raw input as tf.io.parse_example would give the column for `spec`."""
    if tensor.dtype == tf.string:
        present = tf.not_equal(tensor, "")
        values = tf.boolean_mask(tensor, present)
        if spec.dtype != tf.string:
            values = tf.strings.to_number(values, spec.dtype)
    else:
        present = tf.logical_not(tf.math.is_nan(tensor))
        values = tf.boolean_mask(tensor, present)
        values = tf.cast(tf.round(values) if spec.dtype.is_integer else values, spec.dtype)
    rows = tf.where(present)
    column = tf.SparseTensor(indices=tf.concat([rows, tf.zeros_like(rows)], axis=1),
                             values=values,
                             dense_shape=tf.stack([tf.shape(tensor, out_type=tf.int64)[0], 1]))
    if isinstance(spec, tf.io.VarLenFeature):
        return column
    # A reviewed schema may give an always-present column a fixed shape.
    return tf.sparse.to_dense(column)


class _Scorer:
    """The scoring functions the signatures share, over one model and Transform layer."""

    def __init__(self, model, tft_layer, input_names: Sequence[str], logit_shift: float,
                 scale: ScorecardScale, groups: Mapping[str, Sequence[str]], k: int):
        self.model, self.tft_layer, self.input_names = model, tft_layer, list(input_names)
        self.logit_shift = logit_shift
        self.factor, self.offset = scorecard.factor_and_offset(scale)
        self.groups, self.k = groups, k

    def logits(self, model_inputs) -> tf.Tensor:
        return fraud_export.logit(tf.squeeze(self.model(model_inputs), axis=-1))

    def model_inputs(self, raw_features):
        return model_lib.as_model_inputs(self.tft_layer(raw_features), self.input_names)

    def outputs(self, logit: tf.Tensor) -> Dict[str, tf.Tensor]:
        calibrated = logit - self.logit_shift
        return {DEFAULT_PROBABILITY_KEY: tf.sigmoid(calibrated),
                SCORE_POINTS_KEY: self.offset - self.factor * calibrated,
                RAW_SCORE_KEY: tf.sigmoid(logit)}

    def score(self, raw_features) -> Dict[str, tf.Tensor]:
        return self.outputs(self.logits(self.model_inputs(raw_features)))

    def explain(self, raw_features) -> Dict[str, tf.Tensor]:
        inputs = self.model_inputs(raw_features)
        logit, contribution = reasons.contributions(self.logits, inputs, self.groups)
        names, values = reasons.top_reasons(contribution, list(self.groups), self.k)
        return {**self.outputs(logit), REASON_CODES_KEY: names,
                REASON_CONTRIBUTIONS_KEY: values}


def raw_input_specs(numeric: Sequence[str], categorical: Sequence[str]) -> Dict[str, tf.TensorSpec]:
    specs = {name: tf.TensorSpec([None], tf.float32, name=name) for name in numeric}
    specs.update({name: tf.TensorSpec([None], tf.string, name=name) for name in categorical})
    return specs


def _make_signatures(scorer: _Scorer, feature_spec: Dict[str, object],
                     raw_specs: Dict[str, tf.TensorSpec]):
    # autograph=False: nothing here needs it, and converting the Keras and
    # Transform layers' Python code costs seconds per signature.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)],
                 autograph=False)
    def serve_examples(examples):
        return scorer.score(tf.io.parse_example(examples, feature_spec))

    def parsed(features):
        return {name: _raw_column(tensor, feature_spec[name]) for name, tensor in features.items()}

    @tf.function(autograph=False)
    def serve_raw(**features):
        return scorer.score(parsed(features))

    @tf.function(autograph=False)
    def explain(**features):
        return scorer.explain(parsed(features))

    return {SERVING_DEFAULT: serve_examples.get_concrete_function(),
            SERVING_RAW: serve_raw.get_concrete_function(**raw_specs),
            EXPLAIN: explain.get_concrete_function(**raw_specs)}


def export_credit_model(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput,
                        serving_model_dir: str, columns: Mapping[str, Sequence[str]],
                        logit_shift: float, scale: ScorecardScale, reason_codes: int,
                        warmup_examples: Sequence[bytes], num_warmup_records: int) -> None:
    """Saves the credit SavedModel with its signatures and warmup requests, then publishes it.

    `columns` is the table's transform_config (label, numeric, log1p, categorical).
    """
    feature_names = list(columns["numeric"]) + list(columns["categorical"])
    raw = tf_transform_output.raw_feature_spec()
    feature_spec = {name: raw[name] for name in feature_names}
    module = tf.Module()
    module.model_variables = list(model.variables)
    module.tft_layer = tf_transform_output.transform_features_layer()
    scorer = _Scorer(model, module.tft_layer,
                     model_lib.input_names(tf_transform_output, columns["label"]), logit_shift,
                     scale, reasons.column_inputs(columns["numeric"], columns["categorical"]),
                     reason_codes)
    signatures = _make_signatures(scorer, feature_spec,
                                  raw_input_specs(columns["numeric"], columns["categorical"]))
    records = fraud_export.warmup_requests(warmup_examples, num_warmup_records)
    fraud_export.save_and_publish(module, signatures, serving_model_dir, records,
                                  DEFAULT_PROBABILITY_KEY)

"""The credit preprocessing_fn on a tiny table, analysed and applied with tf.Transform on Beam.

Every column is variable-length, as the credit schema declares it, so missing
cells are absent values.
"""
import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components.credit import preprocessing

COLUMNS = {"label": "default", "numeric": ["income", "age", "never_filled"],
           "log1p": ["income"], "categorical": ["purpose", "region_code"]}
ROWS = [
    {"default": 0, "income": 1000.0, "age": 30.0, "purpose": "car", "region_code": 1},
    {"default": 1, "income": 10000.0, "age": 50.0, "purpose": "car", "region_code": 2},
    {"default": 0, "age": 40.0, "purpose": "home", "region_code": 1},
    {"default": 0, "income": 100.0, "age": 20.0, "region_code": 1},
]
SPEC = {"default": tf.io.VarLenFeature(tf.int64), "income": tf.io.VarLenFeature(tf.float32),
        "age": tf.io.VarLenFeature(tf.float32), "never_filled": tf.io.VarLenFeature(tf.float32),
        "purpose": tf.io.VarLenFeature(tf.string), "region_code": tf.io.VarLenFeature(tf.int64)}


def _instances(rows):
    """tf.Transform's instance dicts: a list per feature, empty when the cell is missing."""
    return [{name: [row[name]] if name in row else [] for name in SPEC} for row in rows]


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(SPEC))
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft"))):
        (outputs, _), _ = (_instances(ROWS), metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, COLUMNS))
    return {name: np.array([row[name] for row in outputs]) for name in outputs[0]}


def test_numeric_columns_are_standardised_over_present_values(transformed):
    logs = np.log1p([1000.0, 10000.0, 100.0])
    expected = (logs - logs.mean()) / logs.std()
    np.testing.assert_allclose(transformed["income_xf"][[0, 1, 3]], expected, atol=1e-5)
    assert transformed["income_xf"][2] == 0.0  # missing: imputed at the mean
    np.testing.assert_array_equal(transformed["income_missing_xf"], [0, 0, 1, 0])
    assert abs(transformed["age_xf"].mean()) < 1e-6 and not transformed["age_missing_xf"].any()


def test_a_column_the_training_split_never_fills_is_zero_not_nan(transformed):
    assert np.all(transformed["never_filled_xf"] == 0.0)
    np.testing.assert_array_equal(transformed["never_filled_missing_xf"], [1, 1, 1, 1])


def test_categories_get_ids_most_frequent_first_and_numbers_are_categories(transformed):
    # region_code 1 is the most frequent value: id 0, the reason codes' baseline.
    np.testing.assert_array_equal(transformed["region_code_xf"], [0, 1, 0, 0])
    purpose = transformed["purpose_xf"]
    assert purpose[0] == purpose[1] == 0 and len(set(purpose.tolist())) == 3  # car, home, missing


def test_the_label_passes_through(transformed):
    np.testing.assert_array_equal(transformed["default"], [0, 1, 0, 0])
    assert math.isclose(transformed["default"].mean(), 0.25)

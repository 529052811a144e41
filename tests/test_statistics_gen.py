"""components/statistics_gen: StatisticsGen on a random sample of the splits above a cap."""
import dataclasses
import json
import os

import pytest

from common.errors import UsageError
from components.feature_gen.executor import num_examples_property
from components.statistics_gen import executor
from pipeline import pipeline as dag
from pipeline.configs import PipelineConfig, StatisticsConfig, credit_defaults, load_config

# Rows per split of the executor test: the train split is sampled at 0.1,
# each record on its own, so about 500 +- 21 of its 5,000 rows are kept.
TRAIN_ROWS, EVAL_ROWS, CAP = 5000, 500, 500


@pytest.mark.parametrize("counts, max_examples, rates", [
    ({"train": 150_000, "eval": 50_000}, 200_000, {}),
    ({"train": 200_000}, 200_000, {}),
    ({"train": 1_000_000, "eval": 100_000}, 200_000, {"train": 0.2}),
    ({"train": 800_000, "eval": 400_000}, 200_000, {"train": 0.25, "eval": 0.5}),
    ({"train": None, "eval": None}, 200_000, {}),
    ({"train": 1_000_000}, 0, {}),
])
def test_sample_rates(counts, max_examples, rates):
    assert executor.sample_rates(counts, max_examples) == rates


def _examples_artifact(directory: str, rows: dict, counts: dict):
    """An Examples artifact of gzipped TFRecords of tiny tf.Examples, one file per split."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tfx.components.util import examples_utils  # pylint: disable=import-outside-toplevel
    from tfx.proto import example_gen_pb2  # pylint: disable=import-outside-toplevel
    from tfx.types import (  # pylint: disable=import-outside-toplevel
        artifact_utils, standard_artifacts)

    examples = standard_artifacts.Examples()
    examples.uri = directory
    examples.split_names = artifact_utils.encode_split_names(list(rows))
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(examples, "tfrecords_gzip")
    for split, n in rows.items():
        os.makedirs(os.path.join(directory, f"Split-{split}"))
        path = os.path.join(directory, f"Split-{split}", "data.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for i in range(n):
                feature = {"amount": tf.train.Feature(float_list=tf.train.FloatList(value=[i]))}
                writer.write(tf.train.Example(
                    features=tf.train.Features(feature=feature)).SerializeToString())
    for split, count in counts.items():
        examples.set_int_custom_property(num_examples_property(split), count)
    return examples


def _described_examples(statistics, split: str) -> int:
    import tensorflow_data_validation as tfdv  # pylint: disable=import-outside-toplevel

    path = os.path.join(statistics.uri, f"Split-{split}", "FeatureStats.pb")
    return tfdv.load_stats_binary(path).datasets[0].num_examples


def test_executor_samples_only_the_split_above_the_cap(tmp_path):
    from tfx.types import standard_artifacts  # pylint: disable=import-outside-toplevel

    examples = _examples_artifact(str(tmp_path / "examples"),
                                  {"train": TRAIN_ROWS, "eval": EVAL_ROWS},
                                  {"train": TRAIN_ROWS, "eval": EVAL_ROWS})
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / "statistics")
    executor.Executor().Do({"examples": [examples]}, {"statistics": [statistics]},
                           {"max_examples": CAP, "exclude_splits": "[]"})
    sampled = _described_examples(statistics, "train")
    assert abs(sampled - CAP) < 100
    assert _described_examples(statistics, "eval") == EVAL_ROWS
    assert json.loads(statistics.get_json_value_custom_property("sample_rate_by_split")) == {
        "train": CAP / TRAIN_ROWS, "eval": 1.0}

    # The same records on a second run: statistics of the same data compare alike.
    again = standard_artifacts.ExampleStatistics()
    again.uri = str(tmp_path / "again")
    executor.Executor().Do({"examples": [examples]}, {"statistics": [again]},
                           {"max_examples": CAP, "exclude_splits": "[]"})
    assert _described_examples(again, "train") == sampled


def test_records_are_sampled_independently_at_the_rate():
    records = [f"record {i}".encode() for i in range(20_000)]
    kept = [record for record in records if executor.is_sampled(record, 0.25)]
    assert abs(len(kept) - 5000) < 300
    # Neighbours are kept independently: no run of kept records is long.
    flags = [executor.is_sampled(record, 0.25) for record in records]
    longest, run = 0, 0
    for flag in flags:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    assert longest < 15
    assert all(executor.is_sampled(record, 1.0) for record in records[:100])


def test_executor_reads_every_row_of_splits_of_unknown_size(tmp_path):
    from tfx.types import standard_artifacts  # pylint: disable=import-outside-toplevel

    # CsvExampleGen records no split sizes.
    examples = _examples_artifact(str(tmp_path / "examples"), {"train": EVAL_ROWS}, {})
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / "statistics")
    executor.Executor().Do({"examples": [examples]}, {"statistics": [statistics]},
                           {"max_examples": 10})
    assert _described_examples(statistics, "train") == EVAL_ROWS


@pytest.mark.parametrize("value", [-1, 1.5, "many", True])
def test_max_examples_must_be_an_integer_at_least_zero(tmp_path, value):
    path = tmp_path / "config.yaml"
    path.write_text(f"statistics:\n  max_examples: {value}\n")
    with pytest.raises(UsageError, match=f"{path}: statistics.max_examples must be an integer "
                                         ">= 0"):
        load_config(str(path))


def test_max_examples_comes_from_the_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("statistics:\n  max_examples: 0\n")
    assert load_config(str(path)).statistics.max_examples == 0
    assert PipelineConfig().statistics.max_examples == 200_000


def _statistics_gen(pipeline):
    return next(c for c in pipeline.components if c.id == dag.STATISTICS_GEN)


def test_fraud_pipeline_gives_statistics_gen_its_cap():
    config = PipelineConfig(statistics=StatisticsConfig(max_examples=12_345))
    node = _statistics_gen(dag.create_pipeline(config))
    assert node.executor_spec.executor_class is executor.Executor
    assert node.exec_properties["max_examples"] == 12_345
    assert node.inputs["examples"].producer_component_id == dag.FEATURE_GEN
    assert set(node.outputs) == {"statistics"}


def test_credit_pipeline_gives_statistics_gen_its_cap(tmp_path):
    from components.credit.config import CreditConfig  # pylint: disable=import-outside-toplevel
    from components.credit.table import stage_table  # pylint: disable=import-outside-toplevel

    data = tmp_path / "applications.csv"
    data.write_text("id,amount,risk\n" + "".join(
        f"{i},{100 + i},{'bad' if i % 3 == 0 else 'good'}\n" for i in range(30)))
    credit = CreditConfig(label="risk", positive="bad")
    config = dataclasses.replace(credit_defaults(PipelineConfig()), credit=credit,
                                 statistics=StatisticsConfig(max_examples=0))
    table = stage_table(str(data), credit, str(tmp_path / "staged"))
    node = _statistics_gen(dag.create_pipeline(config, credit_table=table))
    assert node.exec_properties["max_examples"] == 0
    assert node.inputs["examples"].producer_component_id == dag.EXAMPLE_GEN

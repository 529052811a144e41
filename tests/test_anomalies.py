"""Bad data stops `riskpipe run` before any model is trained, naming what is wrong.

Each test copies the tiny dataset, breaks one daily partition and reruns the
pipeline on the e2e run's pipeline root: exit 1, a one-line message naming the
failing component and the column or feature, no Transform or Trainer
execution, nothing new under the serving root.
"""
import csv
import glob
import os
import shutil

import pytest

from pipeline import pipeline as dag
from pipeline import mlmd_queries

pytestmark = pytest.mark.e2e


def _broken_copy(tiny_data, tmp_path, edit):
    """A copy of the dataset whose last partition's rows (header first) go through `edit`."""
    data = str(tmp_path / "raw")
    shutil.copytree(tiny_data, data)
    path = sorted(glob.glob(os.path.join(data, "date=*", "transactions.csv")))[-1]
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(edit(rows))
    return data, path


def _run_broken(pipeline_run, run_riskpipe, data):
    assert pipeline_run.result.exit_code == 0, pipeline_run.result.stderr
    versions = pipeline_run.versions()
    before = mlmd_queries.last_execution_id(pipeline_run.metadata_path)
    result = run_riskpipe(pipeline_run.run_args(data_root=data))
    nodes = {node: state for node, state, _ in pipeline_run.executions(before)}
    assert result.exit_code == 1, result.stdout + result.stderr
    assert dag.TRANSFORM not in nodes and dag.TRAINER not in nodes, nodes
    assert pipeline_run.versions() == versions
    # Progress lines, then the error on one line; no traceback.
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("riskpipe run:")]
    assert len(errors) == 1, result.stderr
    return errors[0], nodes


def test_missing_column_names_the_file_and_column(pipeline_run, run_riskpipe, tiny_data,
                                                  tmp_path):
    def drop_merchant_category(rows):
        index = rows[0].index("merchant_category")
        return [row[:index] + row[index + 1:] for row in rows]

    data, path = _broken_copy(tiny_data, tmp_path, drop_merchant_category)
    message, nodes = _run_broken(pipeline_run, run_riskpipe, data)
    assert nodes.get(dag.FEATURE_GEN) == "failed"
    assert message.startswith("riskpipe run: error: FeatureGen: ")
    assert path in message and "merchant_category" in message


def test_unparseable_value_names_the_file_and_column(pipeline_run, run_riskpipe, tiny_data,
                                                     tmp_path):
    def amount_as_words(rows):
        index = rows[0].index("amount")
        rows[3][index] = "twelve"
        return rows

    data, path = _broken_copy(tiny_data, tmp_path, amount_as_words)
    message, nodes = _run_broken(pipeline_run, run_riskpipe, data)
    assert nodes.get(dag.FEATURE_GEN) == "failed"
    assert message.startswith("riskpipe run: error: FeatureGen: ")
    assert path in message and "amount" in message and "twelve" in message


def test_category_outside_the_domain_stops_at_the_validation_gate(pipeline_run, run_riskpipe,
                                                                  tiny_data, tmp_path):
    def casino_merchants(rows):
        index = rows[0].index("merchant_category")
        for row in rows[1:6]:
            row[index] = "casino"
        return rows

    data, _ = _broken_copy(tiny_data, tmp_path, casino_merchants)
    message, nodes = _run_broken(pipeline_run, run_riskpipe, data)
    assert nodes.get(dag.EXAMPLE_VALIDATOR) == "ran"
    assert nodes.get(dag.ANOMALY_GATE) == "failed"
    assert message.startswith("riskpipe run: error: AnomalyGate: ")
    assert "feature 'merchant_category'" in message and "casino" in message


def test_verbose_run_shows_the_component_logs_and_traceback(pipeline_run, run_riskpipe,
                                                            tiny_data, tmp_path):
    def drop_amount(rows):
        index = rows[0].index("amount")
        return [row[:index] + row[index + 1:] for row in rows]

    data, path = _broken_copy(tiny_data, tmp_path, drop_amount)
    result = run_riskpipe(pipeline_run.run_args(data_root=data) + ["--verbose"])
    assert result.exit_code == 1
    assert "Component FeatureGen is running." in result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("riskpipe run: error: FeatureGen: ")
    assert path in result.stderr.strip().splitlines()[-1]

"""The local runner's plumbing: Beam options, the pinned schema, and failure causes."""
import os

import pytest

from common.errors import DataError, UsageError
from pipeline import local_runner
from pipeline.configs import PipelineConfig


def test_no_beam_options_means_the_in_process_direct_runner():
    assert local_runner.beam_args([]) == []


def test_given_beam_options_ship_riskpipe_to_the_workers():
    args = local_runner.beam_args(["--direct_running_mode=multi_processing",
                                   "--direct_num_workers=2"])
    assert args[:2] == ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    assert args[2] == f"--setup_file={local_runner.SETUP_FILE}"


def test_a_package_named_by_the_user_is_kept():
    args = ["--runner=DataflowRunner", "--extra_package=/pkgs/riskpipe.tar.gz"]
    assert local_runner.beam_args(args) == args


def test_schema_pin_follows_the_content(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text('feature { name: "amount" type: FLOAT }\n')
    first = local_runner.pin_schema(str(schema), str(tmp_path / "root"))
    assert local_runner.pin_schema(str(schema), str(tmp_path / "root")) == first
    schema.write_text('feature { name: "amount" type: INT }\n')
    second = local_runner.pin_schema(str(schema), str(tmp_path / "root"))
    assert second != first
    assert open(second).read() == schema.read_text()
    assert "type: FLOAT" in open(first).read()


def test_missing_schema_is_a_data_error(tmp_path):
    missing = str(tmp_path / "nope.pbtxt")
    with pytest.raises(DataError, match=missing):
        local_runner.pin_schema(missing, str(tmp_path))


def _raised(make):
    try:
        make()
    except Exception as err:  # pylint: disable=broad-except
        return err
    raise AssertionError("nothing raised")


def test_root_cause_finds_a_data_error_under_beam_wrapping():
    def beam_like():
        try:
            raise DataError("/raw/date=2026-01-03/transactions.csv: line 7, column 'amount': "
                            "'abc' is not a number")
        except DataError as err:
            raise DataError(str(err) + " [while running 'Parse']") from err

    def launcher_like():
        try:
            beam_like()
        except DataError as err:
            raise RuntimeError("pipeline failed") from err

    cause, kind = local_runner.root_cause(_raised(launcher_like))
    assert kind is DataError
    assert cause == ("/raw/date=2026-01-03/transactions.csv: line 7, column 'amount': "
                     "'abc' is not a number")


def test_root_cause_reads_an_error_sent_as_text_by_a_beam_worker():
    text = ("Pipeline failed: Traceback (most recent call last):\n"
            '  File "executor.py", line 1, in process\n'
            "common.errors.UsageError: feature_gen.eval_days must be at least 1 "
            "[while running 'Split']\n")
    cause, kind = local_runner.root_cause(RuntimeError(text))
    assert (cause, kind) == ("feature_gen.eval_days must be at least 1", UsageError)


def test_root_cause_of_a_component_bug_keeps_its_type_and_first_line():
    cause, kind = local_runner.root_cause(ValueError("shapes (3,) and (4,) differ\nmore detail"))
    assert (cause, kind) == ("ValueError: shapes (3,) and (4,) differ", None)


def test_metadata_lives_under_the_pipeline_root_by_default():
    config = PipelineConfig(pipeline_root="/runs/p")
    assert local_runner.metadata_path(config) == os.path.join("/runs/p", "metadata.sqlite")

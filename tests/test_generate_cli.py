"""`riskpipe generate`: flags, exit codes, one-line errors, atomic output, progress bar."""
import io
import json
import os

import pytest

from cli import main as cli
from datagen import dataset

SMALL = ["--transactions", "1500", "--days", "3", "--fraud-rate", "0.02"]


def _generate(*args):
    return cli.main(["generate", *args])


def _manifest(out):
    with open(os.path.join(out, dataset.MANIFEST)) as f:
        return json.load(f)


def _leftovers(parent):
    return [name for name in os.listdir(parent) if name.startswith(".")]


def test_generate_writes_a_dataset_and_says_so(tmp_path, capsys):
    out = str(tmp_path / "raw")
    assert _generate(*SMALL, "--seed", "5", "--start-date", "2025-12-30", "--out", out) == 0
    captured = capsys.readouterr()
    assert "1500 transactions" in captured.out and out in captured.out
    # Not a terminal: no progress bar.
    assert captured.err == ""
    assert sorted(os.listdir(out)) == [
        "date=2025-12-30", "date=2025-12-31", "date=2026-01-01", dataset.MANIFEST]
    params = _manifest(out)["parameters"]
    assert params["seed"] == 5 and params["transactions"] == 1500 and params["days"] == 3
    assert params["customers"] > 0
    assert _leftovers(tmp_path) == []


def test_customers_flag_sets_the_population(tmp_path):
    out = str(tmp_path / "raw")
    assert _generate(*SMALL, "--customers", "40", "--out", out) == 0
    assert _manifest(out)["parameters"]["customers"] == 40


BAD_ARGUMENTS = [
    (["--transactions", "-5"], "--transactions"),
    (["--transactions", "0"], "--transactions"),
    (["--transactions", "many"], "--transactions"),
    (["--days", "-1"], "--days"),
    (["--customers", "-3"], "--customers"),
    (["--fraud-rate", "0"], "--fraud-rate"),
    (["--fraud-rate", "0.5"], "--fraud-rate"),
    (["--fraud-rate", "-0.01"], "--fraud-rate"),
    (["--fraud-rate", "high"], "--fraud-rate"),
    (["--seed", "-1"], "--seed"),
    (["--start-date", "2026-13-01"], "--start-date"),
]


@pytest.mark.parametrize("args,flag", BAD_ARGUMENTS)
def test_bad_argument_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, args, flag):
    out = tmp_path / "raw"
    assert _generate(*SMALL, *args, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("riskpipe generate: error:")
    assert flag in err
    assert os.listdir(tmp_path) == []


def test_missing_out_exits_2(capsys):
    assert _generate(*SMALL) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out is required" in err


def test_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    assert _generate(*SMALL, "--out", str(blocker / "raw")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not writable" in err
    assert os.listdir(tmp_path) == ["a-file"]


def test_out_that_is_a_file_exits_2(tmp_path, capsys):
    target = tmp_path / "raw"
    target.write_text("keep me\n")
    assert _generate(*SMALL, "--out", str(target), "--overwrite") == 2
    assert "not a directory" in capsys.readouterr().err
    assert target.read_text() == "keep me\n"


def test_out_holding_data_needs_overwrite(tmp_path, capsys):
    out = str(tmp_path / "raw")
    assert _generate(*SMALL, "--seed", "1", "--out", out) == 0
    before = _manifest(out)
    capsys.readouterr()
    assert _generate(*SMALL, "--seed", "2", "--out", out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err
    assert _manifest(out) == before
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_the_whole_dataset(tmp_path):
    out = str(tmp_path / "raw")
    assert _generate("--transactions", "1500", "--days", "4", "--out", out) == 0
    assert _generate(*SMALL, "--seed", "9", "--out", out, "--overwrite") == 0
    assert _manifest(out)["parameters"]["seed"] == 9
    assert len([n for n in os.listdir(out) if n.startswith("date=")]) == 3
    assert _leftovers(tmp_path) == []


def test_overwrite_refuses_a_directory_not_written_by_generate(tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    assert _generate(*SMALL, "--out", str(out), "--overwrite") == 2
    assert "refusing" in capsys.readouterr().err
    assert os.listdir(out) == ["notes.txt"]


def test_empty_out_directory_is_used(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    assert _generate(*SMALL, "--out", str(out)) == 0
    assert dataset.is_dataset(str(out))


def test_missing_parent_directories_are_created(tmp_path):
    out = tmp_path / "data" / "raw"
    assert _generate(*SMALL, "--out", str(out)) == 0
    assert dataset.is_dataset(str(out))


def test_write_failure_mid_run_exits_2_and_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    calls = []
    real = dataset.day_csv

    def failing_day_csv(day, names):
        calls.append(day.index)
        if day.index == 1:
            raise OSError(28, "No space left on device")
        return real(day, names)

    monkeypatch.setattr(dataset, "day_csv", failing_day_csv)
    out = tmp_path / "data" / "raw"
    assert _generate(*SMALL, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err
    assert calls == [0, 1]
    assert os.listdir(tmp_path) == []


def test_interrupted_run_leaves_nothing_behind(tmp_path, monkeypatch):
    def interrupt(day, names):
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset, "day_csv", interrupt)
    assert _generate(*SMALL, "--out", str(tmp_path / "raw")) == 130
    assert os.listdir(tmp_path) == []


def test_progress_bar_is_drawn_on_a_terminal(tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert _generate(*SMALL, "--out", str(tmp_path / "raw")) == 0
    assert "3/3" in terminal.getvalue() and "day" in terminal.getvalue()


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _generate("--help")
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--transactions", "--days", "--customers", "--fraud-rate", "--seed",
                 "--start-date", "--out", "--overwrite"):
        assert flag in text
    assert "date=YYYY-MM-DD/transactions.csv" in text

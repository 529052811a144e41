"""`riskpipe generate --kind credit`: the simulated credit applications and their ground truth."""
import datetime
import filecmp
import json
import os

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from cli import datagen_commands
from cli import main as cli
from datagen import credit, dataset

START = "2024-01-01"
NUMERIC = [name for name, kind in credit.COLUMNS.items()
           if kind != "text" and name != credit.LABEL]
CATEGORIES = {"purpose": credit.PURPOSES, "housing": credit.HOUSING,
              "region": credit.REGIONS, "employment_type": credit.EMPLOYMENT_TYPES}


@pytest.fixture(scope="module")
def table():
    return credit.simulate_applications(6000, 0.1, 3, START)


def _write(out, rows=1500, seed=1, **kwargs):
    credit.write_credit_table(str(out), rows=rows, default_rate=0.1, seed=seed,
                              start_date=START, **kwargs)
    return str(out)


def _manifest(out):
    with open(os.path.join(out, credit.MANIFEST)) as f:
        return json.load(f)


def test_same_arguments_give_identical_bytes_and_another_seed_differs(tmp_path):
    first, again = _write(tmp_path / "first"), _write(tmp_path / "again")
    names = [credit.TABLE, credit.MANIFEST]
    assert sorted(os.listdir(first)) == sorted(names)
    _, mismatch, errors = filecmp.cmpfiles(first, again, names, shallow=False)
    assert mismatch == [] and errors == []
    other = _write(tmp_path / "other", seed=2)
    assert not filecmp.cmp(os.path.join(first, credit.TABLE), os.path.join(other, credit.TABLE),
                           shallow=False)


def test_columns_dtypes_and_ranges(table):
    assert list(table.columns) == list(credit.COLUMNS) and table.columns[-1] == "default"
    for name, kind in credit.COLUMNS.items():
        expected = {"text": object, "int": np.int64}.get(kind, np.float64)
        assert table[name].dtype == expected, name
    assert table.application_id.str.fullmatch(r"A\d{6}").all()
    assert table.application_id.is_unique and table.application_id.iloc[0] == "A000001"
    dates = pd.to_datetime(table.application_date, format="%Y-%m-%d")
    assert dates.is_monotonic_increasing
    assert dates.min() >= pd.Timestamp(START) and dates.max() < pd.Timestamp("2026-01-01")
    assert dates.dt.to_period("M").nunique() == 24
    assert table.age.between(18, 80).all()
    assert table.debt_to_income.between(0, 1.5).all()
    assert table.credit_utilization.dropna().between(0, 1.2).all()
    assert table.existing_credits.between(0, 8).all()
    assert (table.income.dropna() > 0).all() and (table.loan_amount > 0).all()
    assert (table.years_employed.dropna() >= 0).all()
    delinquencies = table.past_delinquencies
    assert (delinquencies >= 0).all() and (delinquencies == 0).mean() > 0.7
    assert delinquencies.max() >= 5
    assert set(table.loan_duration_months) == set(credit.LOAN_DURATIONS)
    for name, values in CATEGORIES.items():
        assert set(table[name]) == set(values), name
    assert set(table["default"]) == {0, 1}


def test_missing_values_where_a_bank_has_them_and_never_in_the_label(table):
    share = table.isna().mean()
    assert 0.015 < share["income"] < 0.05
    assert 0.04 < share["years_employed"] < 0.09
    assert 0.07 < share["credit_utilization"] < 0.14
    others = [c for c in table.columns if c not in ("income", "years_employed",
                                                     "credit_utilization")]
    assert share[others].sum() == 0
    # Thin files: applicants without any credit lack revolving utilisation most often.
    no_credit = table.existing_credits == 0
    assert (table.credit_utilization[no_credit].isna().mean()
            > 2 * table.credit_utilization[~no_credit].isna().mean())


def test_csv_holds_the_table_with_empty_cells_for_missing_values(tmp_path):
    out = _write(tmp_path / "credit")
    path = os.path.join(out, credit.TABLE)
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines[0] == ",".join(credit.COLUMNS) and len(lines) == 1501
    assert any(",," in line for line in lines[1:])
    read = pd.read_csv(path, float_precision="round_trip")
    pd.testing.assert_frame_equal(read, credit.simulate_applications(1500, 0.1, 1, START))


def test_manifest_records_kind_parameters_and_realised_rate(tmp_path):
    out = _write(tmp_path / "credit", rows=2000, seed=6)
    written = _manifest(out)
    assert written["kind"] == "credit"
    assert written["parameters"] == {"rows": 2000, "default_rate": 0.1, "seed": 6,
                                     "start_date": START}
    assert written["rows"] == 2000
    labels = pd.read_csv(os.path.join(out, credit.TABLE))["default"]
    assert written["defaults"] == labels.sum()
    assert written["realised_default_rate"] == pytest.approx(labels.mean())
    assert dataset.is_dataset(out)


@pytest.mark.parametrize("rate", [0.05, 0.2])
def test_realised_default_rate_is_the_target(rate):
    labels = credit.simulate_applications(30_000, rate, 11, START)["default"]
    assert abs(labels.mean() - rate) < 0.002


def test_region_and_only_region_is_ignored_by_the_ground_truth(table):
    features = [c for c in credit.COLUMNS if c not in ("application_id", "application_date",
                                                       credit.LABEL)]
    assert set(credit.GROUND_TRUTH_DRIVERS) | set(credit.IGNORED_BY_GROUND_TRUTH) == set(features)
    assert not set(credit.GROUND_TRUTH_DRIVERS) & set(credit.IGNORED_BY_GROUND_TRUTH)
    assert credit.IGNORED_BY_GROUND_TRUTH == ("region",)
    income = table.income.fillna(table.income.median()).to_numpy()
    moved = table.assign(region=table.region.sample(frac=1, random_state=0).to_numpy())
    np.testing.assert_array_equal(credit.ground_truth_logit(moved, income),
                                  credit.ground_truth_logit(table, income))


def _holdout_auc(model, frame, columns):
    """ROC-AUC on a random third of `frame` of `model` fitted on the rest."""
    test = np.random.default_rng(0).random(len(frame)) < 1 / 3
    model.fit(frame.loc[~test, columns], frame.loc[~test, "default"])
    return roc_auc_score(frame.loc[test, "default"],
                         model.predict_proba(frame.loc[test, columns])[:, 1])


def test_labels_are_learnable_but_not_trivially_separable():
    frame = credit.simulate_applications(9000, 0.2, 5, START)
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                            LogisticRegression(max_iter=1000))
    assert 0.6 < _holdout_auc(numeric, frame, NUMERIC) < 0.9
    region = make_pipeline(OneHotEncoder(), LogisticRegression())
    assert abs(_holdout_auc(region, frame, ["region"]) - 0.5) < 0.05


def test_write_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    def full_disk(table):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(credit, "table_csv", full_disk)
    assert _generate("--kind", "credit", "--rows", "50", "--out",
                     str(tmp_path / "data" / "credit")) == 2
    assert os.listdir(tmp_path) == []


def _generate(*args):
    return cli.main(["generate", *args])


def test_cli_writes_the_credit_table_and_says_so(tmp_path, capsys):
    out = str(tmp_path / "credit")
    assert _generate("--kind", "credit", "--rows", "800", "--default-rate", "0.2",
                     "--seed", "4", "--start-date", "2023-06-01", "--out", out) == 0
    captured = capsys.readouterr()
    assert "800 credit applications" in captured.out and out in captured.out
    assert captured.err == ""
    assert sorted(os.listdir(out)) == [credit.TABLE, credit.MANIFEST]
    assert _manifest(out)["parameters"] == {"rows": 800, "default_rate": 0.2, "seed": 4,
                                            "start_date": "2023-06-01"}
    written = pd.read_csv(os.path.join(out, credit.TABLE))
    assert written.application_date.min() >= "2023-06-01"
    assert written["default"].sum() == 160
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


def test_cli_defaults_are_the_library_defaults(tmp_path):
    assert datagen_commands.CREDIT_DEFAULTS == {
        "rows": credit.DEFAULT_ROWS, "default_rate": credit.DEFAULT_DEFAULT_RATE,
        "start_date": credit.DEFAULT_START_DATE}


def test_cli_overwrite_replaces_only_a_riskpipe_directory(tmp_path, capsys):
    out = str(tmp_path / "credit")
    assert _generate("--kind", "credit", "--rows", "50", "--out", out) == 0
    assert _generate("--kind", "credit", "--rows", "60", "--out", out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _generate("--kind", "credit", "--rows", "60", "--out", out, "--overwrite") == 0
    assert _manifest(out)["rows"] == 60
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine\n")
    assert _generate("--kind", "credit", "--out", str(precious), "--overwrite") == 2
    assert "refusing" in capsys.readouterr().err
    assert os.listdir(precious) == ["notes.txt"]


WRONG_KIND = [
    (["--kind", "credit", "--transactions", "5"], "--transactions"),
    (["--kind", "credit", "--days", "3"], "--days"),
    (["--kind", "credit", "--customers", "10"], "--customers"),
    (["--kind", "credit", "--fraud-rate", "0.01"], "--fraud-rate"),
    (["--kind", "credit", "--drift", "population_shift", "--drift-start-day", "1"], "--drift"),
    (["--kind", "fraud", "--rows", "5"], "--rows"),
    (["--kind", "fraud", "--default-rate", "0.1"], "--default-rate"),
    (["--rows", "5"], "--rows"),
]
BAD_VALUES = [
    (["--kind", "loans"], "--kind"),
    (["--kind", "credit", "--rows", "0"], "--rows"),
    (["--kind", "credit", "--rows", "-3"], "--rows"),
    (["--kind", "credit", "--rows", "many"], "--rows"),
    (["--kind", "credit", "--default-rate", "0"], "--default-rate"),
    (["--kind", "credit", "--default-rate", "0.5"], "--default-rate"),
    (["--kind", "credit", "--default-rate", "-0.1"], "--default-rate"),
    (["--kind", "credit", "--default-rate", "high"], "--default-rate"),
    (["--kind", "credit", "--seed", "-1"], "--seed"),
    (["--kind", "credit", "--start-date", "2024-02-30"], "--start-date"),
]


@pytest.mark.parametrize("args,flag", WRONG_KIND + BAD_VALUES)
def test_wrong_kind_flag_or_bad_value_exits_2_naming_the_flag(tmp_path, capsys, args, flag):
    assert _generate(*args, "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("riskpipe generate: error:")
    assert flag in err
    assert os.listdir(tmp_path) == []


def test_missing_out_exits_2(capsys):
    assert _generate("--kind", "credit", "--rows", "10") == 2
    assert "--out is required" in capsys.readouterr().err


def test_help_documents_the_credit_kind(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _generate("--help")
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("--kind", "--rows", "--default-rate", "applications.csv", "credit_utilization",
                 "region"):
        assert word in text


def test_dates_span_24_months_from_a_leap_day():
    dates = credit.simulate_applications(3000, 0.1, 0, "2024-02-29").application_date
    assert dates.min() >= "2024-02-29" and dates.max() < "2026-03-01"
    assert datetime.date.fromisoformat(dates.max()) > datetime.date(2026, 1, 31)

"""components/credit/table.py: reading, checking and staging a bank's credit application table.

Every table is a small CSV written to tmp_path; error tests assert on the
message text, which must name the file, the row (line number, header = 1) and
the column.
"""
import csv
import json
import os
from typing import Dict, List

import numpy as np
import pytest

from common.errors import DataError, UsageError
from components.credit import table as ct
from components.credit.config import CreditConfig

GOOD_BAD = """id;Date;Duration in month;Purpose;Credit amount;risk
1;2024-01-05;12;car;1000;good
2;2024-02-11;24;radio/TV;2500;bad
3;2024-03-02;6;car;800;good
4;2024-04-20;36;education;9000;bad
5;2024-05-13;12;car;1200;good
6;2024-06-30;18;furniture;1800;good
"""


def write(directory, name: str, text: str) -> str:
    path = os.path.join(str(directory), name)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return path


def config(**fields) -> CreditConfig:
    fields.setdefault("label", "risk")
    fields.setdefault("positive", "bad")
    return CreditConfig(**fields)


def table_text(columns: Dict[str, List[str]], delimiter: str = ",") -> str:
    names = list(columns)
    rows = zip(*columns.values())
    return "\n".join([delimiter.join(names)] + [delimiter.join(row) for row in rows]) + "\n"


def labelled(n: int, **columns: List[str]) -> Dict[str, List[str]]:
    """Columns plus a risk label alternating bad/good over n rows."""
    data = {name: values for name, values in columns.items()}
    data["risk"] = ["bad" if i % 3 == 0 else "good" for i in range(n)]
    return data


def read_csv(path: str) -> List[Dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def error(kind, path: str, cfg: CreditConfig) -> str:
    with pytest.raises(kind) as info:
        ct.read_table(path, cfg)
    return str(info.value)


def by_name(table: ct.Table) -> Dict[str, ct.Column]:
    return {c.name: c for c in table.columns}


# --- names -------------------------------------------------------------------

@pytest.mark.parametrize("header, position, name", [
    ("Duration in month", 4, "duration_in_month"),
    ("  Credit  Amount (EUR) ", 2, "credit_amount_eur"),
    ("Status of existing checking account", 1, "status_of_existing_checking_account"),
    ("a-b.c/d", 1, "a_b_c_d"),
    ("__x__", 1, "x"),
    ("ID", 1, "id"),
    ("Größe", 3, "gr_e"),
    ("Einkommen (€)", 3, "einkommen"),
    ("收入", 3, "column_3"),
    ("1st payment", 5, "c_1st_payment"),
    ("2024", 5, "c_2024"),
    ("", 1, "column_1"),
    ("   ", 7, "column_7"),
])
def test_column_name(header, position, name):
    assert ct.column_name(header, position) == name


def test_names_in_config_may_be_headers_or_feature_names(tmp_path):
    path = write(tmp_path, "t.csv", GOOD_BAD)
    by_header = ct.read_table(path, config(label="risk", date="Date", drop=("Credit amount",)))
    by_feature = ct.read_table(path, config(label="risk", date="date", drop=("credit_amount",)))
    assert by_header == by_feature
    assert by_header.dropped == ("credit_amount",)
    assert by_header.date == "date" and by_header.label == "risk"


def test_empty_header_is_an_unnamed_index_column(tmp_path):
    path = write(tmp_path, "t.csv", ",amount,risk\n0,1,bad\n1,2,good\n2,3,good\n")
    table = ct.read_table(path, config())
    assert [c.name for c in table.features] == ["column_1", "amount"]
    assert table.features[0].header == ""


def test_two_headers_with_one_name(tmp_path):
    path = write(tmp_path, "t.csv", "Age,age ,risk\n1,2,bad\n3,4,good\n")
    message = error(DataError, path, config())
    assert path in message
    assert "'Age' (column 1)" in message and "'age' (column 2)" in message
    assert "'age'" in message


# --- inference ---------------------------------------------------------------

def test_inference_of_types(tmp_path):
    n = 9
    data = labelled(n,
                    amount=["1.5", "2", "3e0", "4", "5", "6", "7", "8", "9"],
                    job=["1", "2", "3", "1", "2", "3", "1", "2", "3"],
                    purpose=["car", "tv", "car", "car", "tv", "car", "tv", "car", "tv"],
                    mixed=["1", "2", "x", "y", "1", "z", "3", "w", "2"])
    path = write(tmp_path, "t.csv", table_text(data))
    table = ct.read_table(path, config(categorical=("job",)))
    kinds = {c.name: c.kind for c in table.features}
    assert kinds == {"amount": ct.NUMERIC, "job": ct.CATEGORICAL, "purpose": ct.CATEGORICAL,
                     "mixed": ct.CATEGORICAL}
    # Without the override the int-coded job is numeric.
    assert by_name(ct.read_table(path, config()))["job"].kind == ct.NUMERIC
    assert by_name(table)["purpose"].distinct == 2
    assert ct.transform_config(table) == {
        "label": "risk", "numeric": ["amount"], "log1p": [],
        "categorical": ["job", "purpose", "mixed"]}


def test_numeric_override(tmp_path):
    data = labelled(6, score=["1", "2", "3", "4", "NA", "6"], code=["a", "1", "2", "3", "4", "5"])
    path = write(tmp_path, "t.csv", table_text(data))
    table = ct.read_table(path, config(numeric=("score",)))
    assert by_name(table)["score"].kind == ct.NUMERIC
    assert by_name(table)["score"].missing == 1
    # 5 of 6 values parse: below 99%, so categorical unless declared numeric.
    assert by_name(table)["code"].kind == ct.CATEGORICAL
    message = error(DataError, path, config(numeric=("code",)))
    assert message.startswith(f"{path}: row 2, column 'code': 'a' is not a number")
    assert "credit.numeric" in message


def test_log1p_on_skewed_non_negative_columns_only(tmp_path):
    skewed = ["1", "1", "2", "2", "3", "3", "4", "5", "10", "40", "200", "5000"]
    symmetric = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]
    negative = ["-1"] + skewed[1:]
    data = labelled(12, skewed=skewed, symmetric=symmetric, negative=negative)
    path = write(tmp_path, "t.csv", table_text(data))
    table = ct.read_table(path, config())
    columns = by_name(table)
    assert columns["skewed"].log1p
    assert not columns["symmetric"].log1p
    assert not columns["negative"].log1p
    assert ct.transform_config(table)["log1p"] == ["skewed"]
    assert ct.transform_config(table)["numeric"] == ["skewed", "symmetric", "negative"]


def test_categorical_column_with_a_single_value(tmp_path):
    data = labelled(5, country=["DE"] * 5, amount=["1", "2", "3", "4", "5"])
    path = write(tmp_path, "t.csv", table_text(data))
    table = ct.read_table(path, config())
    country = by_name(table)["country"]
    assert (country.kind, country.distinct, country.missing) == (ct.CATEGORICAL, 1, 0)
    assert "country" in [c.name for c in table.features]


def test_column_without_any_value_is_dropped(tmp_path):
    path = write(tmp_path, "t.csv", "amount;notes;risk;\n1;;bad;\n2;NA;good;\n3; ;good;\n")
    table = ct.read_table(path, config())
    assert table.dropped == ("notes", "column_4")
    assert [c.name for c in table.features] == ["amount"]
    assert "dropped (no values)" in ct.describe(table)


def test_a_few_non_numbers_in_a_numeric_column(tmp_path):
    values = [str(i) for i in range(150)]
    values[120] = "12,5"
    data = labelled(150, amount=values)
    path = write(tmp_path, "t.csv", table_text(data, delimiter=";"))
    message = error(DataError, path, config())
    assert message.startswith(f"{path}: row 122, column 'amount': '12,5' is not a number")
    assert "credit.categorical" in message
    assert ct.read_table(path, config(categorical=("amount",))).features[0].kind == ct.CATEGORICAL


def test_infinity_is_not_a_number(tmp_path):
    values = [str(i) for i in range(200)]
    values[5] = "inf"
    path = write(tmp_path, "t.csv", table_text(labelled(200, amount=values)))
    assert "row 7, column 'amount': 'inf' is not a number" in error(DataError, path, config())


# --- checks ------------------------------------------------------------------

def test_empty_files(tmp_path):
    empty = write(tmp_path, "empty.csv", "")
    assert error(DataError, empty, config()) == f"{empty}: empty file, expected a header row"
    header_only = write(tmp_path, "header.csv", "amount,risk\n\n")
    assert error(DataError, header_only, config()) == f"{header_only}: a header but no data rows"


def test_label_empty_in_a_row(tmp_path):
    path = write(tmp_path, "t.csv", "amount,risk\n1,bad\n2,good\n3, \n4,NA\n")
    assert error(DataError, path, config()) == f"{path}: row 4, column 'risk': the label is empty"
    path = write(tmp_path, "u.csv", "amount,risk\n1,bad\n2,good\n4,NA\n")
    assert error(DataError, path, config()) == (
        f"{path}: row 4, column 'risk': the label is missing ('NA')")


def test_label_with_more_than_two_values(tmp_path):
    path = write(tmp_path, "t.csv", "amount,risk\n1,bad\n2,good\n3,good\n4,unknown\n")
    message = error(DataError, path, config())
    assert path in message and "'risk' has 3 values" in message
    assert "'good' (2), 'bad' (1), 'unknown' (1)" in message


def test_label_values_listed_at_most_ten(tmp_path):
    labels = [f"v{i}" for i in range(12)]
    path = write(tmp_path, "t.csv", table_text({"a": ["1"] * 12, "risk": labels}))
    message = error(DataError, path, config())
    assert "has 12 values" in message and message.endswith(" and 2 more")


def test_positive_value_not_among_the_labels(tmp_path):
    path = write(tmp_path, "t.csv", "amount,risk\n1,1\n2,2\n3,1\n")
    message = error(DataError, path, config(positive="bad"))
    assert message == (f"{path}: credit.positive 'bad' is not a value of the label column 'risk' "
                       f"(values: '1' (2), '2' (1))")
    assert "credit.positive: not set" in error(UsageError, path, config(positive=""))


def test_only_one_class(tmp_path):
    path = write(tmp_path, "t.csv", "amount,risk\n1,good\n2,good\n")
    message = error(DataError, path, config())
    assert path in message and "one class only" in message
    assert "all 2 rows are 'good', none the positive value 'bad'" in message
    path = write(tmp_path, "u.csv", "amount,risk\n1,bad\n2,bad\n")
    assert "all 2 rows are the positive value 'bad' (no negatives)" in error(DataError, path,
                                                                           config())


def test_bad_dates(tmp_path):
    path = write(tmp_path, "t.csv", "d,amount,risk\n2024-01-01,1,bad\n2024-13-01,2,good\n")
    assert error(DataError, path, config(date="d")) == (
        f"{path}: row 3, column 'd': '2024-13-01' is not a date (YYYY-MM-DD or an ISO date-time)")
    path = write(tmp_path, "u.csv", "d,amount,risk\n2024-01-01,1,bad\n,2,good\n")
    assert error(DataError, path, config(date="d")) == f"{path}: row 3, column 'd': no date (empty)"
    path = write(tmp_path, "v.csv", "d,amount,risk\n05.01.2024,1,bad\n06.01.2024,1,good\n")
    assert "row 2, column 'd': '05.01.2024' is not a date" in error(DataError, path, config(date="d"))


def test_iso_date_times_are_dates(tmp_path):
    path = write(tmp_path, "t.csv", "d,amount,risk\n2024-01-01T10:00:00Z,1,bad\n"
                                    "2024-02-01 08:30,2,good\n2024-03-01,3,good\n")
    staged = ct.stage_table(path, config(date="d", eval_start_date="2024-02-01"),
                            str(tmp_path / "staged"))
    train = read_csv(os.path.join(staged.directory, ct.TRAIN_DIR, ct.STAGED_FILE))
    evaluation = read_csv(os.path.join(staged.directory, ct.EVAL_DIR, ct.STAGED_FILE))
    assert [r["d"] for r in train] == ["2024-01-01"]
    assert [r["d"] for r in evaluation] == ["2024-02-01", "2024-03-01"]


def test_config_names_not_in_the_table(tmp_path):
    path = write(tmp_path, "t.csv", GOOD_BAD)
    message = error(UsageError, path, config(drop=("x",)))
    assert message.startswith("credit.drop: no column 'x' (columns: id, Date, Duration in month")
    assert error(UsageError, path, config(categorical=("nope",))).startswith(
        "credit.categorical: no column 'nope'")
    message = error(DataError, path, config(label="default"))
    assert message == (f"{path}: no column 'default' for credit.label (columns: id, Date, "
                       f"Duration in month, Purpose, Credit amount, risk)")
    assert error(DataError, path, config(id="customer")).startswith(
        f"{path}: no column 'customer' for credit.id (columns: ")
    assert error(DataError, path, config(date="when")).startswith(
        f"{path}: no column 'when' for credit.date")
    assert error(UsageError, path, config(label="")).startswith("credit.label: not set")


def test_conflicting_config(tmp_path):
    path = write(tmp_path, "t.csv", GOOD_BAD)
    message = error(UsageError, path, config(categorical=("Purpose",), numeric=("purpose",)))
    assert message == "credit.categorical and credit.numeric both list Purpose"
    assert error(UsageError, path, config(drop=("risk",))) == (
        "credit.drop: 'risk' is the credit.label column, not a feature")
    assert "credit.eval_fraction" in error(UsageError, path, config(eval_fraction=1.0))
    assert "credit.eval_start_date: 'soon'" in error(
        UsageError, path, config(date="Date", eval_start_date="soon"))
    assert "credit.date is not" in error(UsageError, path, config(eval_start_date="2024-01-01"))


def test_a_row_with_another_number_of_fields(tmp_path):
    path = write(tmp_path, "t.csv", "amount,risk\n1,bad\n\n2,good,extra\n")
    assert error(DataError, path, config()) == (
        f"{path}: row 4 has 3 fields, the header has 2 (delimiter ',')")
    path = write(tmp_path, "u.csv", "a;amount;risk\n1;2;bad\n1;good\n")
    assert "row 3 has 2 fields, the header has 3" in error(DataError, path, config())


def test_row_numbers_are_line_numbers(tmp_path):
    # A blank line and a quoted value over two lines shift the later rows.
    path = write(tmp_path, "t.csv", 'note,amount,risk\n"a\nb",1,bad\n\nx,2,good\n"y",3,\n')
    assert error(DataError, path, config()) == f"{path}: row 6, column 'risk': the label is empty"


def test_not_utf8(tmp_path):
    path = os.path.join(str(tmp_path), "latin1.csv")
    with open(path, "wb") as f:
        f.write("name,risk\nok,bad\nMüller,good\n".encode("latin-1"))
    message = error(DataError, path, config())
    assert message.startswith(f"{path}: row 3: not UTF-8 text")


def test_bom_and_crlf(tmp_path):
    path = os.path.join(str(tmp_path), "t.csv")
    with open(path, "wb") as f:
        f.write("\ufeffAmount;Risk\r\n1;bad\r\n2;good\r\n".encode("utf-8"))
    table = ct.read_table(path, config(label="Risk"))
    assert table.label == "risk" and table.features[0].header == "Amount"
    assert table.rows == 2


# --- delimiters and directories ----------------------------------------------

@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiters(tmp_path, delimiter):
    text = GOOD_BAD.replace(";", delimiter)
    path = write(tmp_path, "t.csv", text)
    table = ct.read_table(path, config(id="id", date="Date"))
    assert [c.name for c in table.features] == ["duration_in_month", "purpose", "credit_amount"]
    assert (table.rows, table.positives, table.negatives) == (6, 2, 4)


def test_quoted_values_with_the_delimiter(tmp_path):
    path = write(tmp_path, "t.csv", 'purpose;amount;risk\n"car; used";"1";bad\n"tv";2;good\n')
    table = ct.read_table(path, config())
    assert by_name(table)["purpose"].distinct == 2
    assert by_name(table)["amount"].kind == ct.NUMERIC


def test_directory_of_files(tmp_path):
    directory = tmp_path / "export"
    directory.mkdir()
    write(directory, "part-2.csv", "amount;risk\n3;good\n4;NA\n")
    write(directory, "part-1.csv", "amount;risk\n1;bad\n2;good\n")
    write(directory, "README.txt", "not a table")
    second = os.path.join(str(directory), "part-2.csv")
    assert error(DataError, str(directory), config()) == (
        f"{second}: row 3, column 'risk': the label is missing ('NA')")
    write(directory, "part-2.csv", "amount;risk\n3;good\n4;bad\n")
    table = ct.read_table(str(directory), config())
    assert table.files == (os.path.join(str(directory), "part-1.csv"), second)
    assert (table.rows, table.positives) == (4, 2)


def test_directory_with_a_mismatched_header(tmp_path):
    directory = tmp_path / "export"
    directory.mkdir()
    write(directory, "a.csv", "amount,age,risk\n1,30,bad\n")
    bad = write(directory, "b.csv", "amount,years,risk\n2,40,good\n")
    message = error(DataError, str(directory), config())
    assert message.startswith(f"{bad}: its header differs from that of ")
    assert "missing age; extra years" in message


def test_empty_directory_and_missing_path(tmp_path):
    assert "no *.csv files" in error(DataError, str(tmp_path), config())
    assert "no such file or directory" in error(UsageError, str(tmp_path / "nope.csv"), config())


# --- staging -----------------------------------------------------------------

def test_stage_with_a_date_boundary(tmp_path):
    path = write(tmp_path, "t.csv", GOOD_BAD)
    staged = ct.stage_table(path, config(id="id", date="Date", eval_start_date="2024-05-01"),
                            str(tmp_path / "staged"))
    assert staged.eval_start_date == "2024-05-01"
    assert staged.split_rows == {"train": 4, "eval": 2}
    assert sorted(os.listdir(staged.directory)) == ["eval", "table.json", "train"]
    train = read_csv(os.path.join(staged.directory, "train", ct.STAGED_FILE))
    evaluation = read_csv(os.path.join(staged.directory, "eval", ct.STAGED_FILE))
    assert list(train[0]) == ["id", "date", "risk", "duration_in_month", "purpose", "credit_amount"]
    assert [r["id"] for r in train] == ["1", "2", "3", "4"]
    assert [r["date"] for r in evaluation] == ["2024-05-13", "2024-06-30"]
    # --positive bad on a good/bad label: bad is 1, good 0.
    assert [r["risk"] for r in train] == ["0", "1", "0", "1"]
    assert staged.table.positive == "bad" and staged.table.negative == "good"
    assert train[1]["purpose"] == "radio/TV"


def test_stage_with_the_default_quantile(tmp_path):
    days = [f"2024-01-{d:02d}" for d in range(1, 11)]
    data = labelled(10, d=days, amount=[str(i) for i in range(10)])
    path = write(tmp_path, "t.csv", table_text(data))
    staged = ct.stage_table(path, config(date="d", eval_fraction=0.3), str(tmp_path / "staged"))
    assert staged.eval_start_date == "2024-01-08"
    assert staged.split_rows == {"train": 7, "eval": 3}


def test_empty_date_split_names_the_boundary(tmp_path):
    path = write(tmp_path, "t.csv", GOOD_BAD)
    root = str(tmp_path / "staged")
    with pytest.raises(DataError) as info:
        ct.stage_table(path, config(date="Date", eval_start_date="2025-01-01"), root)
    assert str(info.value).startswith(
        f"{path}: no applications dated on or after the eval boundary 2025-01-01 "
        f"(dates 2024-01-05 to 2024-06-30)")
    with pytest.raises(DataError) as info:
        ct.stage_table(path, config(date="Date", eval_start_date="2023-01-01"), root)
    assert "dated before the eval boundary 2023-01-01" in str(info.value)
    same_day = write(tmp_path, "u.csv", "d,amount,risk\n2024-01-01,1,bad\n2024-01-01,2,good\n")
    with pytest.raises(DataError) as info:
        ct.stage_table(same_day, config(date="d"), root)
    assert "eval boundary 2024-01-01" in str(info.value)
    assert not os.path.exists(root) or not [n for n in os.listdir(root)]


def test_stage_without_a_date_is_one_directory(tmp_path):
    path = write(tmp_path, "t.csv", GOOD_BAD)
    staged = ct.stage_table(path, config(), str(tmp_path / "staged"))
    assert staged.eval_start_date == "" and staged.split_rows == {}
    assert sorted(os.listdir(staged.directory)) == ["all", "table.json"]
    rows = read_csv(os.path.join(staged.directory, ct.ALL_DIR, ct.STAGED_FILE))
    assert len(rows) == 6
    # No id and no date configured: both are features, the label comes first.
    assert list(rows[0]) == ["risk", "id", "date", "duration_in_month", "purpose", "credit_amount"]
    assert staged.table.id == "" and staged.table.date == ""


def test_staged_cells(tmp_path):
    path = write(tmp_path, "t.csv", "Id; Amount ;Purpose;Rate;Notes;risk\n"
                                    " 7 ; 1 ;  car ;1.5;x;bad\n"
                                    "8;NA;?;2;y;good\n"
                                    "9;null; N/A ;3;z;good\n")
    staged = ct.stage_table(path, config(id="Id", drop=("Notes",)), str(tmp_path / "staged"))
    with open(os.path.join(staged.directory, ct.ALL_DIR, ct.STAGED_FILE), encoding="utf-8") as f:
        text = f.read()
    # Stripped values, missing tokens empty, dropped column left out; integers of a
    # column with decimals written as floats so every split infers FLOAT.
    assert text == "id,risk,amount,purpose,rate\n7,1,1,car,1.5\n8,0,,,2.0\n9,0,,,3.0\n"
    assert staged.table.dropped == ("notes",)


def test_digest_reuse(tmp_path):
    path = write(tmp_path, "t.csv", GOOD_BAD)
    root = str(tmp_path / "staged")
    cfg = config(id="id", date="Date")
    first = ct.stage_table(path, cfg, root)
    assert len(os.path.basename(first.directory)) == 16
    csv_path = os.path.join(first.directory, "train", ct.STAGED_FILE)
    os.utime(csv_path, (1, 1))
    again = ct.stage_table(path, config(id="ID", date="date"), root)
    assert again == first and os.stat(csv_path).st_mtime == 1
    assert ct.read_staged(first.directory) == first
    # reason_codes does not change the staged data; the positive value does.
    assert ct.stage_table(path, config(id="id", date="Date", reason_codes=2), root).directory == \
        first.directory
    other = ct.stage_table(path, config(id="id", date="Date", positive="good"), root)
    assert other.directory != first.directory
    write(tmp_path, "t.csv", GOOD_BAD + "7;2024-07-01;12;car;100;good\n")
    changed = ct.stage_table(path, cfg, root)
    assert changed.directory not in (first.directory, other.directory)
    assert sorted(os.listdir(root)) == sorted(
        os.path.basename(s.directory) for s in (first, other, changed))


def test_incomplete_staging_is_replaced(tmp_path):
    path = write(tmp_path, "t.csv", GOOD_BAD)
    root = str(tmp_path / "staged")
    staged = ct.stage_table(path, config(), root)
    os.unlink(os.path.join(staged.directory, ct.TABLE_FILE))
    again = ct.stage_table(path, config(), root)
    assert os.path.exists(os.path.join(again.directory, ct.TABLE_FILE))
    assert again == staged


def test_read_staged_of_a_plain_directory(tmp_path):
    with pytest.raises(DataError) as info:
        ct.read_staged(str(tmp_path))
    assert "no table.json" in str(info.value)


def test_table_json(tmp_path):
    path = write(tmp_path, "t.csv", GOOD_BAD)
    staged = ct.stage_table(path, config(date="Date", eval_start_date="2024-04-01"),
                            str(tmp_path / "staged"))
    with open(os.path.join(staged.directory, ct.TABLE_FILE), encoding="utf-8") as f:
        record = json.load(f)
    assert record["eval_start_date"] == "2024-04-01"
    assert record["split_rows"] == {"train": 3, "eval": 3}
    assert record["sources"][0]["path"] == os.path.abspath(path)
    assert record["table"]["label"] == "risk"
    assert not [n for n in os.listdir(str(tmp_path / "staged")) if n.startswith(".")]


def test_a_thousand_rows(tmp_path):
    rng = np.random.default_rng(7)
    n = 1000
    days = rng.integers(0, 365, n)
    income = rng.lognormal(8, 1, n).round(2)
    age = rng.normal(40, 10, n).round().astype(int)
    purpose = rng.choice(["car", "tv", "education", "business"], n)
    bad = rng.random(n) < 0.3
    data = {
        "Application ID": [f"A{i:05d}" for i in range(n)],
        "Application date": [str(np.datetime64("2023-01-01") + int(d)) for d in days],
        "Income": [str(v) for v in income],
        "Age": [str(v) for v in age],
        "Purpose": list(purpose),
        "Default": ["yes" if b else "no" for b in bad],
    }
    data["Income"][17] = "NA"
    path = write(tmp_path, "big.csv", table_text(data, delimiter=";"))
    cfg = CreditConfig(label="Default", positive="yes", id="Application ID",
                       date="Application date")
    staged = ct.stage_table(path, cfg, str(tmp_path / "staged"))
    table = staged.table
    assert table.rows == n and table.positives == int(bad.sum())
    assert sum(staged.split_rows.values()) == n
    assert 150 <= staged.split_rows["eval"] <= 250
    columns = by_name(table)
    assert columns["income"].log1p and columns["income"].missing == 1
    assert columns["age"].kind == ct.NUMERIC and not columns["age"].log1p
    assert columns["purpose"].kind == ct.CATEGORICAL and columns["purpose"].distinct == 4
    rows = (read_csv(os.path.join(staged.directory, "train", ct.STAGED_FILE))
            + read_csv(os.path.join(staged.directory, "eval", ct.STAGED_FILE)))
    assert sorted(r["application_id"] for r in rows) == sorted(data["Application ID"])
    assert all(r["application_date"] < staged.eval_start_date
               for r in read_csv(os.path.join(staged.directory, "train", ct.STAGED_FILE)))
    text = ct.describe(table)
    assert "application_date  Application date" in text
    assert "income" in text and "log1p+standardise" in text
    assert f"rows: {n} from 1 file(s)" in text


def test_describe(tmp_path):
    path = write(tmp_path, "t.csv", GOOD_BAD)
    table = ct.read_table(path, config(id="id", date="Date", drop=("Purpose",)))
    lines = ct.describe(table).splitlines()
    assert lines[0].split() == ["column", "header", "type", "missing", "distinct", "transform",
                                "role"]
    row = {line.split()[0]: line for line in lines[1:7]}
    assert row["duration_in_month"].split() == [
        "duration_in_month", "Duration", "in", "month", "numeric", "0", "(0.0%)", "5",
        "standardise", "feature"]
    assert row["risk"].split()[-1] == "label" and "1 = 'bad', 0 = 'good'" in row["risk"]
    assert row["id"].split()[-1] == "id" and row["date"].split()[-1] == "date"
    assert row["purpose"].split()[-1] == "dropped"
    assert lines[-1] == "default rate: 33.33% (2 'bad', 4 'good')"

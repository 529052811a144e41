"""FeatureGen's Beam featurization: batch/online parity, the out-of-time split, raw-data errors."""
import datetime
import glob
import os
import re

import pytest

from common.errors import DataError, UsageError
from components import features
from components.feature_gen import executor, raw_data
from components.feature_gen.raw_data import RawDataError
from components.transactions import RAW_COLUMNS

import synthetic_transactions as synthetic

FLOAT32_TOLERANCE = dict(rel=1e-6, abs=1e-6)


def read_examples(output_dir, split):
    """{transaction_id: feature dict} of one written split."""
    import tensorflow as tf

    files = glob.glob(os.path.join(output_dir, f"Split-{split}", "*.gz"))
    assert files, f"no files written for split {split}"
    out = {}
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        feats = features.from_example(tf.train.Example.FromString(record.numpy()))
        assert feats["transaction_id"] not in out
        out[feats["transaction_id"]] = feats
    return out


def assert_same_features(online, batch, transaction_id):
    assert set(online) == set(batch), (transaction_id, set(online) ^ set(batch))
    for name, value in online.items():
        if features.FEATURE_TYPES[name] == "float":
            assert batch[name] == pytest.approx(value, **FLOAT32_TOLERANCE), (transaction_id, name)
        else:
            assert batch[name] == value, (transaction_id, name)


def assert_parity(transactions, written):
    builder = features.OnlineFeatureBuilder()
    for txn in sorted(transactions, key=features.sort_key):
        assert_same_features(builder.update(txn), written[txn.transaction_id], txn.transaction_id)
    assert len(written) == len(transactions)


def assert_present_and_absent(written, names):
    """Each feature is both present and absent somewhere, so parity covers both cases."""
    for name in names:
        assert any(name in f for f in written.values()), name
        assert any(name not in f for f in written.values()), name


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """2,000 synthetic transactions over 20 days, featurized with eval from 2023-11-30."""
    root = tmp_path_factory.mktemp("synthetic")
    transactions = synthetic.random_stream(2000, days=20)
    synthetic.write_partitions(transactions, str(root / "raw"))
    summary = executor.featurize(str(root / "raw"), str(root / "out"),
                                 eval_start_date="2023-11-30")
    written = {split: read_examples(str(root / "out"), split) for split in executor.SPLITS}
    return transactions, summary, written


@pytest.fixture(scope="module")
def simulated_run(tmp_path_factory):
    """The simulator's data (4,000 transactions, 20 days), featurized with the last 5 days eval."""
    from datagen.dataset import write_dataset
    from datagen.simulator import SimulationConfig

    root = tmp_path_factory.mktemp("simulated")
    write_dataset(SimulationConfig(transactions=4000, days=20, fraud_rate=0.03, seed=11),
                  str(root / "raw"))
    partitions = raw_data.list_partitions(str(root / "raw"))
    transactions = [t for _, path in partitions for t in raw_data.read_transactions(path)]
    summary = executor.featurize(str(root / "raw"), str(root / "out"), eval_days=5)
    written = {split: read_examples(str(root / "out"), split) for split in executor.SPLITS}
    return transactions, partitions, summary, written


def test_batch_and_online_features_agree_on_an_edge_case_rich_stream(synthetic_run):
    transactions, _, written = synthetic_run
    assert_parity(transactions, {**written["train"], **written["eval"]})
    # The stream exercises what parity must cover.
    stamps = [(t.card_id, t.timestamp) for t in transactions]
    assert len(set(stamps)) < len(stamps), "no equal timestamps on a card"
    every = {**written["train"], **written["eval"]}
    assert_present_and_absent(every, ("terminal_fraud_rate_7d", "speed_from_prev_kmh",
                                      *features.FEATURE_GROUPS["card_profile"]))
    label_times = {(t.terminal_id, t.label_known_at) for t in transactions
                   if t.label_known_at > t.timestamp}
    assert label_times & {(t.terminal_id, t.timestamp) for t in transactions}, (
        "no label known exactly at a later transaction of its terminal")


def test_batch_and_online_features_agree_on_simulated_data(simulated_run):
    transactions, _, _, written = simulated_run
    every = {**written["train"], **written["eval"]}
    assert_parity(transactions, every)
    assert_present_and_absent(every, features.OPTIONAL_FEATURES)


def test_out_of_time_split_at_eval_start_date(synthetic_run):
    transactions, summary, written = synthetic_run
    start = int(datetime.datetime(2023, 11, 30, tzinfo=datetime.timezone.utc).timestamp())
    assert summary["eval_start_date"] == "2023-11-30"
    assert all(f["timestamp"] < start for f in written["train"].values())
    assert all(f["timestamp"] >= start for f in written["eval"].values())
    assert summary["train"] == len(written["train"]) and summary["eval"] == len(written["eval"])
    assert summary["train"] + summary["eval"] == len(transactions)
    # Features are computed before the split: the first eval hour sees train history.
    first_eval_hour = [f for f in written["eval"].values() if f["timestamp"] < start + 3600]
    assert any(f["card_txn_count_7d"] > 0 for f in first_eval_hour)


def test_out_of_time_split_of_the_last_eval_days(simulated_run):
    _, partitions, summary, written = simulated_run
    last_day = partitions[-1][0]
    assert summary["eval_start_date"] == (last_day - datetime.timedelta(days=4)).isoformat()
    eval_days = {datetime.datetime.fromtimestamp(f["timestamp"], datetime.timezone.utc).date()
                 for f in written["eval"].values()}
    train_days = {datetime.datetime.fromtimestamp(f["timestamp"], datetime.timezone.utc).date()
                  for f in written["train"].values()}
    assert len(eval_days) == 5 and max(train_days) < min(eval_days)


def test_written_examples_carry_the_label_and_passthrough_fields(synthetic_run):
    transactions, _, written = synthetic_run
    by_id = {t.transaction_id: t for t in transactions}
    for feats in list(written["eval"].values())[:50]:
        txn = by_id[feats["transaction_id"]]
        assert feats[features.LABEL_KEY] == txn.is_fraud
        assert (feats["card_id"], feats["terminal_id"], feats["timestamp"]) == (
            txn.card_id, txn.terminal_id, txn.timestamp)
        assert feats["fraud_scenario"] == txn.fraud_scenario


DAYS = [datetime.date(2024, 3, d) for d in (1, 2, 3, 4)]


@pytest.mark.parametrize("start, days, expected", [
    ("", 1, datetime.date(2024, 3, 4)),
    ("", 3, datetime.date(2024, 3, 2)),
    ("2024-03-02", 7, datetime.date(2024, 3, 2)),
])
def test_resolve_eval_start(start, days, expected):
    assert executor.resolve_eval_start(DAYS, start, days, "raw") == expected


@pytest.mark.parametrize("start, days, error, message", [
    ("", 4, DataError, "leaves the train split empty"),
    ("2024-03-01", 7, DataError, "leaves the train split empty"),
    ("2024-03-05", 7, DataError, "leaves the eval split empty"),
    ("", 0, UsageError, "eval_days must be at least 1"),
    ("03/02/2024", 7, UsageError, "eval_start_date: '03/02/2024' is not a YYYY-MM-DD date"),
])
def test_resolve_eval_start_rejects_an_empty_split(start, days, error, message):
    with pytest.raises(error, match=message):
        executor.resolve_eval_start(DAYS, start, days, "raw")


def write_raw(root, rows_by_day):
    """Writes raw partitions from {date: [row dict]} (values as CSV text); returns the paths."""
    paths = []
    for day, rows in rows_by_day.items():
        path = os.path.join(root, f"date={day}", "transactions.csv")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            header = list(rows[0]) if rows else list(RAW_COLUMNS)
            f.write(",".join(header) + "\n")
            for row in rows:
                f.write(",".join(row[name] for name in header) + "\n")
        paths.append(path)
    return paths


def raw_row(tid, time, **changes):
    row = {"transaction_id": tid, "timestamp": str(time), "card_id": "c1",
           "customer_id": "u1", "terminal_id": "m1", "amount": "12.50",
           "merchant_category": "fuel", "channel": "card_present", "latitude": "48.85",
           "longitude": "2.35", "is_fraud": "0", "fraud_scenario": "",
           "label_known_at": str(time + 60)}
    row.update(changes)
    return row


MAR_1 = 1_709_251_200  # 2024-03-01 00:00:00 UTC


def test_unparseable_value_stops_the_run_naming_file_line_and_column(tmp_path):
    paths = write_raw(str(tmp_path / "raw"), {
        "2024-03-01": [raw_row("t1", MAR_1 + 10), raw_row("t2", MAR_1 + 20)],
        "2024-03-02": [raw_row("t3", MAR_1 + 86400), raw_row("t4", MAR_1 + 86500),
                       raw_row("t5", MAR_1 + 86600, amount="12,50".replace(",", ";"))],
    })
    with pytest.raises(RawDataError) as caught:
        executor.featurize(str(tmp_path / "raw"), str(tmp_path / "out"), eval_days=1)
    assert str(caught.value) == (
        f"{paths[1]}:4: column 'amount': cannot parse '12;50' as float")
    assert isinstance(caught.value, DataError)


def test_missing_column_stops_the_run_naming_file_and_column(tmp_path):
    rows = [raw_row("t1", MAR_1 + 10), raw_row("t2", MAR_1 + 86400)]
    for row in rows:
        del row["label_known_at"], row["channel"]
    paths = write_raw(str(tmp_path / "raw"), {"2024-03-01": rows[:1], "2024-03-02": rows[1:]})
    expected = f"{paths[0]}: missing column(s) channel, label_known_at in the header row"
    with pytest.raises(RawDataError, match=f"^{re.escape(expected)}$"):
        executor.featurize(str(tmp_path / "raw"), str(tmp_path / "out"), eval_days=1)
    assert not os.path.exists(tmp_path / "out")


def test_repeated_transaction_id_stops_the_run(tmp_path):
    write_raw(str(tmp_path / "raw"), {
        "2024-03-01": [raw_row("t1", MAR_1 + 10)],
        "2024-03-02": [raw_row("t2", MAR_1 + 86400), raw_row("t1", MAR_1 + 86400)],
    })
    with pytest.raises(RawDataError, match="column 'transaction_id': 't1' appears more than once"):
        executor.featurize(str(tmp_path / "raw"), str(tmp_path / "out"), eval_days=1)


def test_no_raw_files_is_a_data_error(tmp_path):
    with pytest.raises(RawDataError, match="no raw transaction files matching"):
        executor.featurize(str(tmp_path / "nothing"), str(tmp_path / "out"))


def test_partition_directory_must_be_a_date(tmp_path):
    write_raw(str(tmp_path / "raw"), {"2024-3-1": [raw_row("t1", MAR_1)]})
    with pytest.raises(RawDataError, match="partition directory must be date=YYYY-MM-DD"):
        raw_data.list_partitions(str(tmp_path / "raw"))


@pytest.mark.parametrize("changes, message", [
    ({"timestamp": "1709251200.5"}, "column 'timestamp': cannot parse '1709251200.5' as int"),
    ({"amount": "nan"}, "column 'amount': 'nan' is not a finite number"),
    ({"amount": "-3"}, "column 'amount': negative amount"),
    ({"amount": ""}, "column 'amount': empty value"),
    ({"card_id": ""}, "column 'card_id': empty value"),
    ({"channel": "atm"}, "column 'channel': 'atm' is not one of card_present, card_not_present"),
    ({"is_fraud": "2"}, "column 'is_fraud': 2 is not 0 or 1"),
    ({"label_known_at": "1709251199"}, "column 'label_known_at': .* before the transaction's"),
    ({"latitude": ""}, "column 'latitude': empty while the other coordinate is set"),
    ({"longitude": "181"}, "column 'longitude': 181.0 is outside"),
])
def test_row_problems_name_file_line_and_column(tmp_path, changes, message):
    good = raw_row("t1", MAR_1)
    path, = write_raw(str(tmp_path), {"2024-03-01": [good, raw_row("t2", MAR_1, **changes)]})
    with pytest.raises(RawDataError, match=f"^{re.escape(path)}:3: {message}"):
        list(raw_data.read_transactions(path))


def test_row_with_a_wrong_number_of_fields_is_an_error(tmp_path):
    path = str(tmp_path / "transactions.csv")
    row = raw_row("t1", MAR_1)
    with open(path, "w") as f:
        f.write(",".join(RAW_COLUMNS) + "\n")
        f.write(",".join(row.values()) + ",extra\n")
    expected = f"{path}:2: row has 14 fields, the header has 13"
    with pytest.raises(RawDataError, match=f"^{re.escape(expected)}$"):
        list(raw_data.read_transactions(path))


def test_text_that_is_not_utf8_is_an_error(tmp_path):
    path, = write_raw(str(tmp_path), {"2024-03-01": [raw_row("t1", MAR_1),
                                                     raw_row("t2", MAR_1, card_id="caf\xe9")]})
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data.replace("café".encode(), b"caf\xe9"))
    with pytest.raises(RawDataError, match=f"^{re.escape(path)}:3: not UTF-8 text"):
        list(raw_data.read_transactions(path))


def test_malformed_csv_is_an_error(tmp_path):
    path, = write_raw(str(tmp_path), {"2024-03-01": [raw_row("t1", MAR_1),
                                                     raw_row("t2", MAR_1, card_id="c\0")]})
    with pytest.raises(RawDataError, match=f"^{re.escape(path)}:3: malformed CSV"):
        list(raw_data.read_transactions(path))


def test_header_with_a_byte_order_mark_and_other_column_order_reads(tmp_path):
    path = str(tmp_path / "transactions.csv")
    row = raw_row("t1", MAR_1)
    names = list(reversed(RAW_COLUMNS)) + ["bank_extra"]
    with open(path, "w", encoding="utf-8-sig") as f:
        f.write(",".join(names) + "\n")
        f.write(",".join([row[n] for n in reversed(RAW_COLUMNS)] + ["x"]) + "\n")
    raw_data.check_header(path)
    txn, = raw_data.read_transactions(path)
    assert (txn.transaction_id, txn.amount, txn.label_known_at) == ("t1", 12.5, MAR_1 + 60)


def test_rows_parse_into_transactions_with_optional_columns_empty(tmp_path):
    path, = write_raw(str(tmp_path), {"2024-03-01": [
        raw_row("t1", MAR_1, channel="card_not_present", latitude="", longitude=""),
        raw_row("t2", MAR_1 + 5, is_fraud="1", fraud_scenario="probing"),
    ]})
    online, present = raw_data.read_transactions(path)
    assert (online.latitude, online.longitude, online.fraud_scenario) == (None, None, "")
    assert online.timestamp == MAR_1 and online.amount == 12.5
    assert (present.is_fraud, present.fraud_scenario, present.label_known_at) == (
        1, "probing", MAR_1 + 65)
    assert (present.latitude, present.longitude) == (48.85, 2.35)


@pytest.mark.slow
def test_multi_process_runner_gives_the_same_examples_and_errors(tmp_path, synthetic_run):
    """Worker processes get only pickled DoFns: the distributed-runner situation."""
    transactions, _, written = synthetic_run
    synthetic.write_partitions(transactions, str(tmp_path / "raw"))
    beam_args = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    summary = executor.featurize(str(tmp_path / "raw"), str(tmp_path / "out"),
                                 eval_start_date="2023-11-30", beam_args=beam_args)
    assert (summary["train"], summary["eval"]) == (len(written["train"]), len(written["eval"]))
    for transaction_id, feats in read_examples(str(tmp_path / "out"), "eval").items():
        assert_same_features(written["eval"][transaction_id], feats, transaction_id)
    path = sorted(glob.glob(str(tmp_path / "raw" / "*" / "transactions.csv")))[3]
    with open(path, "a") as f:
        f.write(",".join(raw_row("bad", MAR_1, is_fraud="yes").values()) + "\n")
    with pytest.raises(RawDataError, match="column 'is_fraud': cannot parse 'yes' as int$"):
        executor.featurize(str(tmp_path / "raw"), str(tmp_path / "out2"),
                           eval_start_date="2023-11-30", beam_args=beam_args)

"""The feature definitions against values worked out by hand on small hand-written streams."""
import pytest

from components import features
from components.features import CardHistory, CardProfile, OnlineFeatureBuilder, TerminalHistory
from components.transactions import Transaction

SAT_2024_01_06 = 1_704_499_200  # Saturday 2024-01-06 00:00:00 UTC
HOUR, DAY = 3600, 86400
PARIS = (48.8566, 2.3522)
LONDON = (51.5074, -0.1278)
BERLIN = (52.5200, 13.4050)
# Haversine with R = 6371.0088 km, worked out separately.
PARIS_LONDON_KM = 343.5565
PARIS_BERLIN_KM = 877.4645
# One degree of a great circle: 6371.0088 km x pi / 180.
KM_PER_DEGREE = 111.195080


def txn(tid, timestamp, *, card="c1", terminal="m1", amount=10.0, place=None,
        is_fraud=0, known_at=None, channel=None, category="grocery"):
    lat, lon = place if place else (None, None)
    return Transaction(
        transaction_id=tid, timestamp=timestamp, card_id=card, customer_id="u1",
        terminal_id=terminal, amount=amount, merchant_category=category,
        channel=channel or ("card_present" if place else "card_not_present"),
        latitude=lat, longitude=lon, is_fraud=is_fraud,
        fraud_scenario="compromised_card" if is_fraud else "",
        label_known_at=timestamp if known_at is None else known_at)


def run_card(stream):
    history = CardHistory()
    out = []
    for t in stream:
        out.append(history.features_for(t))
        history.record(t)
    return out


def run_profile(stream):
    profile = CardProfile()
    out = []
    for t in stream:
        out.append(profile.features_for(t))
        profile.record(t)
    return out


def run_terminal(stream):
    history = TerminalHistory()
    out = []
    for t in stream:
        out.append(history.features_for(t))
        history.record(t)
    return out


T0 = SAT_2024_01_06 + 23 * HOUR  # Saturday 23:00 UTC
CARD_STREAM = [
    txn("a1", T0, amount=100.0, place=PARIS),                # the card's first transaction
    txn("a2", T0 + 1800, amount=50.0),                       # online, between card-present ones
    txn("a3", T0 + HOUR, amount=30.0, place=LONDON),         # exactly 1 h after a1
    txn("a4", T0 + HOUR, amount=20.0, place=PARIS),          # same second as a3
    txn("a5", T0 + 8 * DAY, amount=40.0, place=BERLIN),      # 8 days later
    txn("a6", T0 + 30 * DAY, amount=10.0),                   # exactly 30 d after a1
]


def test_card_first_transaction_has_zero_windows_and_no_history_features():
    first = run_card(CARD_STREAM)[0]
    assert first == {
        "card_txn_count_1h": 0, "card_txn_count_24h": 0,
        "card_txn_count_7d": 0, "card_txn_count_30d": 0,
        "card_amount_sum_1h": 0.0, "card_amount_sum_24h": 0.0,
        "card_amount_sum_7d": 0.0, "card_amount_sum_30d": 0.0,
    }


def test_card_online_transaction_has_no_distance_but_a_gap_and_mean_ratio():
    second = run_card(CARD_STREAM)[1]
    assert second["card_txn_count_1h"] == 1
    assert second["card_amount_sum_1h"] == pytest.approx(100.0)
    assert second["seconds_since_prev_txn"] == 1800.0
    assert second["amount_to_mean_30d"] == pytest.approx(0.5)
    assert "distance_from_prev_km" not in second
    assert "speed_from_prev_kmh" not in second


def test_card_present_after_online_measures_from_previous_card_present():
    third = run_card(CARD_STREAM)[2]
    # a1 is exactly 1 h earlier: outside the 1 h window (t - ts < 1 h), inside 24 h.
    assert third["card_txn_count_1h"] == 1
    assert third["card_amount_sum_1h"] == pytest.approx(50.0)
    assert third["card_txn_count_24h"] == 2
    assert third["card_amount_sum_24h"] == pytest.approx(150.0)
    # The gap is to the online a2; the distance skips it back to a1 in Paris.
    assert third["seconds_since_prev_txn"] == 1800.0
    assert third["distance_from_prev_km"] == pytest.approx(PARIS_LONDON_KM, abs=1e-3)
    assert third["speed_from_prev_kmh"] == pytest.approx(PARIS_LONDON_KM, abs=1e-3)  # 1 h apart
    assert third["amount_to_mean_30d"] == pytest.approx(30.0 / 75.0)


def test_card_equal_timestamps_count_the_earlier_id_with_zero_gap():
    fourth = run_card(CARD_STREAM)[3]
    assert fourth["card_txn_count_1h"] == 2            # a2 and a3 (dt = 0)
    assert fourth["card_amount_sum_1h"] == pytest.approx(80.0)
    assert fourth["card_txn_count_24h"] == 3
    assert fourth["card_amount_sum_24h"] == pytest.approx(180.0)
    assert fourth["seconds_since_prev_txn"] == 0.0
    assert fourth["distance_from_prev_km"] == pytest.approx(PARIS_LONDON_KM, abs=1e-3)
    # dt = 0 is taken as 1 s.
    assert fourth["speed_from_prev_kmh"] == pytest.approx(PARIS_LONDON_KM * 3600, rel=1e-6)
    assert fourth["amount_to_mean_30d"] == pytest.approx(20.0 / 60.0)


def test_card_windows_expire_after_their_length():
    fifth, sixth = run_card(CARD_STREAM)[4:]
    assert (fifth["card_txn_count_1h"], fifth["card_txn_count_24h"],
            fifth["card_txn_count_7d"], fifth["card_txn_count_30d"]) == (0, 0, 0, 4)
    assert fifth["card_amount_sum_7d"] == 0.0
    assert fifth["card_amount_sum_30d"] == pytest.approx(200.0)
    assert fifth["seconds_since_prev_txn"] == 8 * DAY - HOUR
    assert fifth["distance_from_prev_km"] == pytest.approx(PARIS_BERLIN_KM, abs=1e-3)
    assert fifth["speed_from_prev_kmh"] == pytest.approx(
        PARIS_BERLIN_KM / (8 * DAY - HOUR) * 3600, rel=1e-6)
    assert fifth["amount_to_mean_30d"] == pytest.approx(40.0 / 50.0)
    # a1 is exactly 30 d before a6: out of the 30 d window; a2..a5 are in.
    assert sixth["card_txn_count_30d"] == 4
    assert sixth["card_amount_sum_30d"] == pytest.approx(140.0)
    assert sixth["card_txn_count_7d"] == 0
    assert sixth["amount_to_mean_30d"] == pytest.approx(10.0 / 35.0)
    assert "distance_from_prev_km" not in sixth


def test_card_windows_over_a_long_history_match_a_direct_count():
    """Four months of a busy card: every window equals counting the earlier transactions
    directly, and the history keeps no more than about two windows' worth of them."""
    import random
    rng = random.Random(7)
    stream, t = [], T0
    for index in range(3000):
        t += rng.choice((0, 5, 600, HOUR, 5 * HOUR))
        stream.append(txn(f"l{index:05d}", t, amount=float(rng.randint(0, 500))))
    history = CardHistory()
    for position, current in enumerate(stream):
        got = history.features_for(current)
        for name, seconds in features.CARD_WINDOWS:
            earlier = [e for e in stream[max(0, position - 2000):position]
                       if current.timestamp - e.timestamp < seconds]
            assert got[f"card_txn_count_{name}"] == len(earlier), (position, name)
            assert got[f"card_amount_sum_{name}"] == pytest.approx(
                sum(e.amount for e in earlier), abs=1e-6), (position, name)
        history.record(current)
        in_month = got["card_txn_count_30d"] + 1
        assert len(history._times) <= 2 * in_month + 33  # pylint: disable=protected-access


def test_card_zero_mean_amount_leaves_ratio_absent():
    out = run_card([txn("z1", T0, amount=0.0), txn("z2", T0 + 60, amount=5.0)])
    assert out[1]["card_txn_count_1h"] == 1
    assert "amount_to_mean_30d" not in out[1]


def test_card_present_without_coordinates_is_no_location_fix():
    out = run_card([
        txn("p1", T0, place=PARIS),
        txn("p2", T0 + 60, channel="card_present"),        # no coordinates in the export
        txn("p3", T0 + 120, place=LONDON),
    ])
    assert "distance_from_prev_km" not in out[1]
    assert out[2]["distance_from_prev_km"] == pytest.approx(PARIS_LONDON_KM, abs=1e-3)
    assert out[2]["speed_from_prev_kmh"] == pytest.approx(PARIS_LONDON_KM * 30, abs=0.1)


P0 = SAT_2024_01_06  # midnight UTC: the times of day below are on the hour
PROFILE_STREAM = [
    txn("p1", P0 + 10 * HOUR, amount=20.0, place=(0.0, -1.0)),       # the card's first
    txn("p2", P0 + 14 * HOUR, amount=60.0, category="online"),       # online, no place
    txn("p3", P0 + DAY + 18 * HOUR, amount=40.0, place=(0.0, 1.0)),
    txn("p4", P0 + DAY + 18 * HOUR, amount=10.0, place=(0.0, 3.0)),  # same second as p3
    txn("p5", P0 + 30 * DAY + 10 * HOUR, amount=50.0, place=(0.0, 4.0)),  # 30 d after p1
]


def test_profile_of_a_first_transaction_is_empty():
    assert run_profile(PROFILE_STREAM)[0] == {}


def test_profile_of_a_new_category_and_channel():
    second = run_profile(PROFILE_STREAM)[1]
    assert second == {
        "merchant_category_share_30d": 0.0,     # no earlier online purchase
        "channel_share_30d": 0.0,               # nor any card-not-present one
        "hours_from_usual_time": pytest.approx(4.0),    # 14:00 against p1's 10:00
    }


def test_profile_compares_with_the_earlier_transactions():
    third = run_profile(PROFILE_STREAM)[2]
    assert third["merchant_category_share_30d"] == pytest.approx(1 / 2)   # p1 of p1, p2
    assert third["channel_share_30d"] == pytest.approx(1 / 2)
    assert third["amount_to_category_mean_30d"] == pytest.approx(40.0 / 20.0)
    # The usual time is the circular mean of 10:00 and 14:00, noon: 18:00 is 6 h off.
    assert third["hours_from_usual_time"] == pytest.approx(6.0)
    # Only p1 has a place: (0, -1) to (0, 1) is 2 degrees of the equator.
    assert third["distance_from_usual_location_km"] == pytest.approx(2 * KM_PER_DEGREE)


def test_profile_counts_a_transaction_at_the_same_second():
    fourth = run_profile(PROFILE_STREAM)[3]
    assert fourth["merchant_category_share_30d"] == pytest.approx(2 / 3)
    assert fourth["channel_share_30d"] == pytest.approx(2 / 3)
    assert fourth["amount_to_category_mean_30d"] == pytest.approx(10.0 / 30.0)
    # 10:00, 14:00 and 18:00 on the 24 h circle sum to (-sqrt(3), -1): 14:00, 4 h off.
    assert fourth["hours_from_usual_time"] == pytest.approx(4.0)
    # The centroid of (0, -1) and (0, 1) is (0, 0).
    assert fourth["distance_from_usual_location_km"] == pytest.approx(3 * KM_PER_DEGREE)


def test_profile_forgets_transactions_30_days_old():
    fifth = run_profile(PROFILE_STREAM)[4]
    # p1 is exactly 30 d earlier: out; p2, p3, p4 are in.
    assert fifth["merchant_category_share_30d"] == pytest.approx(2 / 3)
    assert fifth["amount_to_category_mean_30d"] == pytest.approx(50.0 / 25.0)
    assert fifth["distance_from_usual_location_km"] == pytest.approx(2 * KM_PER_DEGREE)
    # 14:00, 18:00, 18:00 sum to (-sqrt(3)/2, -5/2): 12 h + atan(5 / sqrt(3)) / 15 deg.
    usual = 16.726226
    assert fifth["hours_from_usual_time"] == pytest.approx(usual - 10.0)


def test_profile_features_absent_when_undefined():
    out = run_profile([
        txn("q1", P0 + 6 * HOUR, amount=0.0, channel="card_present"),   # no coordinates
        txn("q2", P0 + 18 * HOUR, amount=5.0, place=PARIS),
        txn("q3", P0 + 31 * DAY, amount=5.0, place=PARIS),
    ])
    # Before q2 only a card-present transaction without coordinates (no usual
    # place) and of zero amount (no mean amount at the category).
    assert out[1] == {"merchant_category_share_30d": 1.0, "channel_share_30d": 1.0,
                      "hours_from_usual_time": pytest.approx(12.0)}
    # Nothing in the 30 days before q3.
    assert out[2] == {}


def test_profile_has_no_usual_time_when_the_times_cancel_out():
    third = run_profile([txn("r1", P0 + 6 * HOUR), txn("r2", P0 + 18 * HOUR),
                         txn("r3", P0 + 20 * HOUR)])[2]
    assert "hours_from_usual_time" not in third      # 06:00 and 18:00 are opposite
    assert third["merchant_category_share_30d"] == 1.0


def test_profile_depends_on_the_last_30_days_only():
    """Exactly: a profile fed from any time on agrees 30 days later with one fed all along."""
    from synthetic_transactions import random_stream

    stream = random_stream(400, days=50, cards=1, terminals=6, seed=3)
    cut = stream[0].timestamp + 15 * DAY
    whole = run_profile(stream)
    late = run_profile([t for t in stream if t.timestamp >= cut])
    later = [i for i, t in enumerate(stream) if t.timestamp >= cut + 30 * DAY]
    assert later and [whole[i] for i in later] == late[-len(later):]
    assert any("distance_from_usual_location_km" in whole[i] for i in later)


B = SAT_2024_01_06
TERMINAL_STREAM = [
    txn("b1", B, card="k1", is_fraud=1, known_at=B + 100),
    txn("b2", B + 10, card="k2", is_fraud=1, known_at=B + 101),
    txn("b3", B + 20, card="k3", is_fraud=0, known_at=B + 20),
    txn("c1", B + 30, card="k4", is_fraud=0, known_at=B + 5000),
    txn("c2", B + 100, card="k5", is_fraud=0, known_at=B + 200),   # b1's label known exactly now
    txn("c3", B + 101, card="k6", is_fraud=1, known_at=B + 7 * DAY + 30),  # b2's known now
    txn("c4", B + 20 + 7 * DAY, card="k7", is_fraud=0, known_at=B + 7 * DAY + 80),
    txn("c5", B + 30 * DAY + 5, card="k8", is_fraud=0, known_at=B + 31 * DAY),
]


def test_terminal_rates_are_absent_until_a_label_is_known():
    out = run_terminal(TERMINAL_STREAM)
    assert out[0] == {}          # the terminal's first transaction
    assert out[1] == {}          # b1's label is not known yet
    # b3's own label is known at its timestamp, but b3 is not earlier than itself.
    assert out[2] == {}
    assert out[3] == {"terminal_fraud_rate_7d": 0.0, "terminal_fraud_rate_30d": 0.0}


def test_terminal_label_known_exactly_at_the_boundary_counts():
    out = run_terminal(TERMINAL_STREAM)
    # At B+100: b1 (known at B+100) and b3 are known; b2 (B+101) is not yet.
    assert out[4]["terminal_fraud_rate_7d"] == pytest.approx(1 / 2)
    # One second later b2's label is known too.
    assert out[5]["terminal_fraud_rate_30d"] == pytest.approx(2 / 3)


def test_terminal_windows_expire_after_their_length():
    out = run_terminal(TERMINAL_STREAM)
    # c4 is exactly 7 d after b3: b1..b3 leave the 7 d window; c1, c2 are labelled
    # legitimate; c3's label (B + 7 d + 30) is not known yet.
    assert out[6]["terminal_fraud_rate_7d"] == pytest.approx(0.0)
    assert out[6]["terminal_fraud_rate_30d"] == pytest.approx(2 / 5)
    # c5: b1 is 30 d + 5 s old (out); b2..c4 are in, with frauds b2 and c3.
    assert "terminal_fraud_rate_7d" not in out[7]
    assert out[7]["terminal_fraud_rate_30d"] == pytest.approx(2 / 6)


@pytest.mark.parametrize("timestamp, expected", [
    (SAT_2024_01_06, (0, 1, 1)),                       # Saturday midnight
    (SAT_2024_01_06 + 2 * DAY - 1, (23, 1, 1)),        # Sunday 23:59:59
    (SAT_2024_01_06 + 2 * DAY, (0, 0, 1)),             # Monday 00:00
    (SAT_2024_01_06 + 2 * DAY + 6 * HOUR - 1, (5, 0, 1)),
    (SAT_2024_01_06 + 2 * DAY + 6 * HOUR, (6, 0, 0)),
    (SAT_2024_01_06 + 2 * DAY + 12 * HOUR, (12, 0, 0)),
    (SAT_2024_01_06 + 2 * DAY + 22 * HOUR - 1, (21, 0, 0)),
    (SAT_2024_01_06 + 2 * DAY + 22 * HOUR, (22, 0, 1)),
    (SAT_2024_01_06 - 1, (23, 0, 1)),                  # Friday 23:59:59
])
def test_calendar_features_in_utc(timestamp, expected):
    got = features.calendar_features(timestamp)
    assert (got["hour_of_day"], got["is_weekend"], got["is_night"]) == expected


def test_online_builder_returns_the_full_feature_dict():
    builder = OnlineFeatureBuilder()
    out = {t.transaction_id: builder.update(t)
           for t in sorted(CARD_STREAM + TERMINAL_STREAM, key=features.sort_key)}
    first = out["a1"]
    assert first["transaction_id"] == "a1" and first["timestamp"] == T0
    assert first["card_id"] == "c1" and first["terminal_id"] == "m1"
    assert first["amount"] == 100.0 and first["channel"] == "card_present"
    assert first["merchant_category"] == "grocery"
    assert first["is_fraud"] == 0 and first["fraud_scenario"] == ""
    assert (first["hour_of_day"], first["is_weekend"], first["is_night"]) == (23, 1, 1)
    # a1 is the card's first; the terminal knows the labels of b1..c2 by then.
    assert set(features.MODEL_FEATURES) - set(first) == features.OPTIONAL_FEATURES - {
        "terminal_fraud_rate_7d", "terminal_fraud_rate_30d"}
    assert first["terminal_fraud_rate_30d"] == pytest.approx(2 / 5)
    assert out["a4"]["card_txn_count_1h"] == 2
    assert all(set(got) <= set(features.FEATURE_TYPES) for got in out.values())


def test_online_features_do_not_change_the_history():
    builder = OnlineFeatureBuilder()
    builder.update(CARD_STREAM[0])
    assert builder.features(CARD_STREAM[1]) == builder.features(CARD_STREAM[1])
    assert builder.update(CARD_STREAM[1])["card_txn_count_1h"] == 1
    assert builder.features(CARD_STREAM[2])["card_txn_count_24h"] == 2


def test_online_labels_recorded_later_count_from_their_known_time():
    def live(tid, timestamp):
        return Transaction(tid, timestamp, "c9", "u9", "m9", 5.0, "online", "card_not_present")

    builder = OnlineFeatureBuilder()
    builder.update(live("l1", B))
    builder.update(live("l2", B + 10))
    assert builder.record_label("l1", 1, known_at=B + 50)
    assert not builder.record_label("l1", 1, known_at=B + 50)   # a second label is ignored
    assert builder.record_label("l2", 0, known_at=B + 60)
    assert "terminal_fraud_rate_7d" not in builder.update(live("l3", B + 49))
    assert builder.update(live("l4", B + 50))["terminal_fraud_rate_7d"] == 1.0
    assert builder.update(live("l5", B + 60))["terminal_fraud_rate_7d"] == 0.5
    assert "is_fraud" not in builder.features(live("l6", B + 70))


def test_online_label_for_a_transaction_older_than_30_days_is_ignored():
    builder = OnlineFeatureBuilder()
    old = Transaction("o1", B, "c9", "u9", "m9", 5.0, "online", "card_not_present")
    builder.update(old)
    builder.update(Transaction("o2", B + 30 * DAY, "c9", "u9", "m9", 5.0, "online",
                               "card_not_present"))
    assert not builder.record_label("o1", 1, known_at=B + 30 * DAY + 1)
    assert not builder.record_label("never-seen", 1, known_at=B)


def test_transactions_out_of_time_order_are_rejected():
    builder = OnlineFeatureBuilder()
    builder.update(CARD_STREAM[2])
    with pytest.raises(ValueError, match="a1 .* older than the history of its card"):
        builder.features(CARD_STREAM[0])
    # Taking features moves the terminal to that time, even without observing.
    builder = OnlineFeatureBuilder()
    builder.update(TERMINAL_STREAM[0])
    builder.features(TERMINAL_STREAM[5])
    with pytest.raises(ValueError, match="b3 .* older than the history of its terminal"):
        builder.features(TERMINAL_STREAM[2])


def test_feature_contract_names_and_types():
    assert features.LABEL_KEY == "is_fraud"
    assert features.PASSTHROUGH_FEATURES["is_fraud"] == "int"
    assert features.OPTIONAL_FEATURES <= set(features.MODEL_FEATURES)
    assert set(features.MODEL_FEATURES) == {
        "amount", "merchant_category", "channel", "hour_of_day", "is_weekend", "is_night",
        "card_txn_count_1h", "card_txn_count_24h", "card_txn_count_7d", "card_txn_count_30d",
        "card_amount_sum_1h", "card_amount_sum_24h", "card_amount_sum_7d",
        "card_amount_sum_30d", "seconds_since_prev_txn", "distance_from_prev_km",
        "speed_from_prev_kmh", "amount_to_mean_30d", "distance_from_usual_location_km",
        "hours_from_usual_time", "merchant_category_share_30d", "channel_share_30d",
        "amount_to_category_mean_30d", "terminal_fraud_rate_7d", "terminal_fraud_rate_30d"}
    assert {n for n, k in features.MODEL_FEATURES.items() if k == "string"} == {
        "merchant_category", "channel"}
    assert {n for n, k in features.MODEL_FEATURES.items() if k == "int"} == {
        "hour_of_day", "is_weekend", "is_night", "card_txn_count_1h", "card_txn_count_24h",
        "card_txn_count_7d", "card_txn_count_30d"}


def test_serialized_example_parses_with_tensorflow():
    import tensorflow as tf

    feats = {
        "transaction_id": "t-" + "é" * 100,     # longer than 127 bytes
        "timestamp": 1_704_499_200,
        "is_fraud": 1,
        "amount": 12.5,
        "card_txn_count_1h": 0,
        "seconds_since_prev_txn": 0.0,
        "merchant_category": b"fuel",
    }
    parsed = tf.io.parse_single_example(features.serialize_example(feats), {
        "transaction_id": tf.io.FixedLenFeature([], tf.string),
        "timestamp": tf.io.FixedLenFeature([], tf.int64),
        "is_fraud": tf.io.FixedLenFeature([], tf.int64),
        "amount": tf.io.FixedLenFeature([], tf.float32),
        "card_txn_count_1h": tf.io.FixedLenFeature([], tf.int64),
        "seconds_since_prev_txn": tf.io.FixedLenFeature([], tf.float32),
        "merchant_category": tf.io.FixedLenFeature([], tf.string),
        "amount_to_mean_30d": tf.io.VarLenFeature(tf.float32),
    })
    assert parsed["transaction_id"].numpy().decode() == feats["transaction_id"]
    assert parsed["timestamp"].numpy() == 1_704_499_200
    assert parsed["amount"].numpy() == 12.5
    assert parsed["merchant_category"].numpy() == b"fuel"
    assert parsed["amount_to_mean_30d"].values.shape == (0,)    # absent
    example = features.to_example(feats)
    assert set(example.features.feature) == set(feats)
    round_trip = features.from_example(example)
    assert round_trip["merchant_category"] == "fuel"
    assert round_trip["timestamp"] == feats["timestamp"]


def test_serialized_examples_equal_ones_built_with_the_protobuf_api():
    from tensorflow.core.example import example_pb2

    from synthetic_transactions import random_stream

    builder = OnlineFeatureBuilder()
    for t in random_stream(300, days=3, cards=10, terminals=4):
        feats = builder.update(t)
        expected = example_pb2.Example()
        for name, value in feats.items():
            feature = expected.features.feature[name]
            kind = features.FEATURE_TYPES[name]
            if kind == "int":
                feature.int64_list.value.append(value)
            elif kind == "float":
                feature.float_list.value.append(value)
            else:
                feature.bytes_list.value.append(value.encode())
        assert example_pb2.Example.FromString(features.serialize_example(feats)) == expected


def test_serialized_example_handles_negative_and_large_ints():
    example = features.to_example({"timestamp": -5, "card_txn_count_30d": 2**40})
    assert example.features.feature["timestamp"].int64_list.value == [-5]
    assert example.features.feature["card_txn_count_30d"].int64_list.value == [2**40]


@pytest.mark.parametrize("bad, message", [
    ({"amount": None}, "feature 'amount' is None"),
    ({"not_a_feature": 1}, "unknown feature 'not_a_feature'"),
    ({"amount": 1e39}, "feature 'amount'.*float32"),
])
def test_serialize_rejects_bad_feature_dicts(bad, message):
    with pytest.raises(ValueError, match=message):
        features.serialize_example(bad)

"""Synthetic frauds: SMOTE-style interpolation between training frauds in the transformed space."""
import numpy as np
import pytest

from common.errors import DataError
from components.synthetic_minority import synthetic_frauds
from components.transformed_arrays import Split

CATEGORICAL = ("channel_xf", "merchant_category_xf")


def make_split(frauds: int, legit: int, seed: int = 0, offset: float = 0.0) -> Split:
    """Frauds around `offset`, legitimate rows far from them; three numeric inputs, a flag, two ids.

    Three continuous inputs make the segment through a synthetic point unique.
    """
    rng = np.random.default_rng(seed)
    n = frauds + legit
    labels = np.r_[np.ones(frauds), np.zeros(legit)].astype(np.int64)
    centre = np.where(labels == 1, offset, 100.0)
    return Split({"amount_xf": (centre + rng.normal(size=n)).astype(np.float32),
                  "seconds_since_prev_txn_xf": rng.normal(size=n).astype(np.float32),
                  "terminal_fraud_rate_7d_xf": rng.random(n).astype(np.float32),
                  "is_night_xf": rng.integers(0, 2, n).astype(np.float32),
                  "channel_xf": rng.integers(0, 3, n),
                  "merchant_category_xf": rng.integers(0, 12, n)}, labels)


def numeric(split: Split) -> np.ndarray:
    return np.stack([split.features[name] for name in sorted(split.features)
                     if name not in CATEGORICAL], axis=1).astype(np.float64)


def parents(synthetic: Split, source: Split):
    """Per synthetic row, (a, b, t) with row = a + t (b - a), a and b frauds of `source`."""
    frauds = source.take(np.flatnonzero(source.labels == 1))
    real = numeric(frauds)
    start, gap = real[:, None, :], real[None, :, :] - real[:, None, :]
    squared = np.maximum((gap ** 2).sum(axis=-1), 1e-12)
    found = []
    for point in numeric(synthetic):
        t = np.clip(((point - start) * gap).sum(axis=-1) / squared, 0.0, 1.0)
        miss = np.abs(start + t[..., None] * gap - point).max(axis=-1)
        a, b = np.unravel_index(np.argmin(miss), miss.shape)
        assert miss[a, b] < 1e-4, f"{point} lies on no segment between two frauds"
        found.append((a, b, t[a, b]))
    return frauds, found


def test_the_ratio_gives_the_number_of_synthetic_frauds():
    train = make_split(frauds=40, legit=200)
    for ratio, expected in ((1.0, 40), (2.5, 100), (0.1, 4), (0.0, 0)):
        synthetic = synthetic_frauds(train, ratio, 5, CATEGORICAL, seed=0)
        assert len(synthetic.labels) == expected
        assert set(synthetic.features) == set(train.features)
        assert (synthetic.labels == 1).all()
        for name, value in synthetic.features.items():
            assert value.dtype == train.features[name].dtype and len(value) == expected


def test_points_lie_on_segments_between_two_training_frauds_and_ids_come_from_a_parent():
    train = make_split(frauds=30, legit=300)
    synthetic = synthetic_frauds(train, 2.0, 3, CATEGORICAL, seed=1)
    frauds, found = parents(synthetic, train)
    for row, (a, b, t) in enumerate(found):
        nearer = a if t < 0.5 else b
        for name in CATEGORICAL:
            assert synthetic.features[name][row] == frauds.features[name][nearer]
    # Legitimate rows sit far away: none was a parent.
    assert synthetic.features["amount_xf"].max() < 50


def test_neighbours_are_the_nearest_frauds():
    train = make_split(frauds=50, legit=10)
    synthetic = synthetic_frauds(train, 1.0, 1, CATEGORICAL, seed=2)
    frauds, found = parents(synthetic, train)
    real = numeric(frauds)
    distances = np.linalg.norm(real[:, None] - real[None], axis=-1) + np.eye(len(real)) * 1e9
    for a, b, t in found:
        if 1e-3 < t < 1 - 1e-3:
            # One parent is the other's nearest fraud (which one started the point is unknown).
            assert distances[a, b] in (distances[a].min(), distances[b].min())


def test_the_same_seed_gives_the_same_synthetic_frauds():
    train = make_split(frauds=25, legit=100)
    first, again, other = (synthetic_frauds(train, 1.5, 5, CATEGORICAL, seed=seed)
                           for seed in (7, 7, 8))
    for name in train.features:
        np.testing.assert_array_equal(first.features[name], again.features[name])
    assert not np.array_equal(first.features["amount_xf"], other.features["amount_xf"])


def test_only_the_given_split_is_interpolated():
    # The Trainer passes the training split only; eval frauds elsewhere never appear.
    train, evaluation = make_split(30, 100, seed=3), make_split(30, 100, seed=4, offset=40.0)
    synthetic = synthetic_frauds(train, 4.0, 5, CATEGORICAL, seed=0)
    parents(synthetic, train)
    assert synthetic.features["amount_xf"].max() < 20 < evaluation.features["amount_xf"].min()


def test_more_neighbours_than_frauds_use_all_of_them():
    synthetic = synthetic_frauds(make_split(frauds=3, legit=10), 2.0, 10, CATEGORICAL, seed=0)
    assert len(synthetic.labels) == 6


def test_interpolation_needs_two_frauds():
    one = make_split(frauds=1, legit=10)
    with pytest.raises(DataError, match="has 1"):
        synthetic_frauds(one, 1.0, 5, CATEGORICAL, seed=0)
    assert len(synthetic_frauds(one, 0.0, 5, CATEGORICAL, seed=0).labels) == 0

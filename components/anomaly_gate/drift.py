"""Drift and skew of a run's statistics: TFDV's distances and the PSI of every model feature.

Both come from StatisticsGen's statistics alone, so nothing re-reads the examples:

- the distance is TFDV's, from the schema's comparators (`tfdv.validate_statistics`
  with previous or serving statistics): L-infinity for categories,
  Jensen-Shannon divergence for numbers, only for the features that have one;
- the PSI (common/distribution_stats.psi) of every model feature, over the bins
  the monitor uses (numbers: the reference's deciles; categories: the
  reference's values and "every other value"; then the missing values).
  Numbers are binned from the quantiles histograms (QUANTILES_BUCKETS of them):
  the reference's deciles are boundaries of its quantiles histogram, and the
  current data's count below a decile is read from its own quantiles
  histogram, spreading each bucket's values evenly over it (a zero-width bucket
  is a point). Categories are counted from the rank histograms (every value up to
  TFDV's 1,000 most frequent).

A feature has drifted when its PSI is above the PSI threshold or its TFDV
distance above the schema's threshold. Identifiers, the timestamp and the
label get no PSI: they change from run to run by design.
"""
from typing import Dict, List, Optional

import numpy as np
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from common.distribution_stats import psi, psi_band
from components.features import MODEL_FEATURES

# What a row compares with.
PREVIOUS_RUN, SERVING = "previous run", "serving"
DECILES = 10
# Quantiles buckets StatisticsGen is asked for: the current data's count below a
# reference decile is then interpolated within 1% of its values, not 10%. On the
# tests' drifted data, TFDV's default 10 buckets gave distance_from_prev_km a PSI
# of 0.28 (train) and 0.80 (eval) where its raw values give 0.24 and 0.27; 100
# buckets give 0.237 and 0.282.
QUANTILES_BUCKETS = 100
# Skew is the training data's (the train split) against the serving data's.
SKEW_SPLIT = "train"
_DISTANCE_NAMES = {"L_INFTY": "L-infinity distance",
                   "JENSEN_SHANNON_DIVERGENCE": "Jensen-Shannon divergence"}


def _cdf(buckets, points: np.ndarray) -> np.ndarray:
    """The buckets' count of values <= each point, values spread evenly within buckets."""
    below = np.zeros(len(points))
    for bucket in buckets:
        width = bucket.high_value - bucket.low_value
        share = (np.clip((points - bucket.low_value) / width, 0.0, 1.0) if width > 0
                 else (points >= bucket.low_value).astype(float))
        below += bucket.sample_count * share
    return below


def _quantiles(num_stats):
    return next((h for h in num_stats.histograms
                 if h.type == statistics_pb2.Histogram.QUANTILES), None)


def numeric_counts(num_stats, edges: np.ndarray) -> List[float]:
    """Counts over (-inf, e1], (e1, e2], ..., (ek, inf), then the missing values."""
    histogram = _quantiles(num_stats)
    # A feature missing from every example has no histogram.
    buckets = histogram.buckets if histogram is not None else []
    total = sum(bucket.sample_count for bucket in buckets)
    below = _cdf(buckets, edges)
    return np.diff(below, prepend=0.0).tolist() + [total - below[-1],
                                                   num_stats.common_stats.num_missing]


def categorical_counts(string_stats, categories: List[str]) -> List[float]:
    """Counts of each known category, of every other value, then of the missing values."""
    counts = {bucket.label: bucket.sample_count for bucket in string_stats.rank_histogram.buckets}
    known = [counts.get(category, 0.0) for category in categories]
    common = string_stats.common_stats
    return known + [common.tot_num_values - sum(known), common.num_missing]


def feature_psi(expected, actual) -> Optional[float]:
    """The PSI of a feature's statistics (FeatureNameStatistics) against the reference's.

    None when the reference has no value of the feature to bin by.
    """
    if expected.HasField("string_stats"):
        categories = sorted(b.label for b in expected.string_stats.rank_histogram.buckets)
        if not categories:
            return None
        return psi(categorical_counts(expected.string_stats, categories),
                   categorical_counts(actual.string_stats, categories))
    reference = _quantiles(expected.num_stats)
    if reference is None or not reference.buckets:
        return None
    # The reference's deciles: the boundary after every tenth of its buckets but the last.
    step = max(1, len(reference.buckets) // DECILES)
    edges = np.unique([bucket.high_value for bucket in reference.buckets[step - 1::step][:-1]])
    return psi(numeric_counts(expected.num_stats, edges), numeric_counts(actual.num_stats, edges))


def _features(statistics) -> Dict[str, object]:
    """Feature name -> FeatureNameStatistics of a DatasetFeatureStatisticsList's dataset."""
    return {(f.path.step[-1] if f.path.step else f.name): f
            for f in statistics.datasets[0].features}


def _distances(current, reference, schema, against: str) -> Dict[str, object]:
    """Feature name -> TFDV's measurement (value, threshold) from the schema's comparator."""
    import tensorflow_data_validation as tfdv  # pylint: disable=import-outside-toplevel

    anomalies = (tfdv.validate_statistics(current, schema, previous_statistics=reference)
                 if against == PREVIOUS_RUN else
                 tfdv.validate_statistics(current, schema, serving_statistics=reference))
    out = {}
    for info in anomalies.drift_skew_info:
        measurements = info.drift_measurements if against == PREVIOUS_RUN else \
            info.skew_measurements
        if measurements:
            out[info.path.step[-1]] = measurements[0]
    return out


def compare(current, reference, schema, against: str, split: str,
            psi_threshold: float) -> List[dict]:
    """One row per model feature in both statistics: its distance, PSI, band and verdict."""
    measurement_type = anomalies_pb2.DriftSkewInfo.Measurement.Type
    distances = _distances(current, reference, schema, against)
    now, before = _features(current), _features(reference)
    rows = []
    for name in sorted(set(MODEL_FEATURES) & set(now) & set(before)):
        value = feature_psi(before[name], now[name])
        distance = distances.get(name)
        row = {"against": against, "split": split, "feature": name, "psi": value,
               "band": None if value is None else psi_band(value),
               "distance": None, "distance_value": None, "distance_threshold": None}
        if distance is not None:
            row.update(distance=measurement_type.Name(distance.type),
                       distance_value=distance.value, distance_threshold=distance.threshold)
        row["drifted"] = bool((value is not None and value > psi_threshold) or (
            distance is not None and distance.value > distance.threshold))
        rows.append(row)
    return rows


def drift_rows(statistics: Dict[str, object], previous: Dict[str, object], serving,
               schema, psi_threshold: float) -> List[dict]:
    """Every split against the previous run's same split, and the train split against serving.

    `statistics` and `previous` map split names to DatasetFeatureStatisticsList
    (`previous` is empty on a first run); `serving` is one, or None.
    """
    rows = []
    for split in sorted(set(statistics) & set(previous)):
        rows += compare(statistics[split], previous[split], schema, PREVIOUS_RUN, split,
                        psi_threshold)
    if serving is not None and SKEW_SPLIT in statistics:
        rows += compare(statistics[SKEW_SPLIT], serving, schema, SERVING, SKEW_SPLIT,
                        psi_threshold)
    return rows


def describe(row: dict, psi_threshold: float) -> str:
    """E.g. "split 'train' against the previous run: feature 'amount': PSI 0.4312 (act, ...)"."""
    text = f"split '{row['split']}' against the {row['against']}: feature '{row['feature']}': "
    text += ("no PSI" if row["psi"] is None else
             f"PSI {row['psi']:.4f} ({row['band']}, threshold {psi_threshold:g})")
    if row["distance"] is not None:
        name = _DISTANCE_NAMES.get(row["distance"], row["distance"])
        text += f", {name} {row['distance_value']:.4f} (threshold {row['distance_threshold']:g})"
    return text

"""Bootstraps or refreshes schema/schema.pbtxt from data, for a person to review.

TFDV infers types and presence from FeatureGen's examples; the curated parts
come from the previous schema when it has them (a reviewer's edits survive a
refresh) and otherwise from the raw-data contract and the feature definitions:

- value domains: the contract's categories, flags in {0, 1}, the hour in
  [0, 23], counts, amounts and distances >= 0, fraud rates and shares in
  [0, 1], hours from the card's usual time in [0, 12];
- presence: a model feature absent when undefined (OPTIONAL_FEATURES) is
  variable-length with no minimum presence, every other feature is required;
- skew and drift comparators on the key features;
- the label is not part of the SERVING environment.

TFDV's own string domains are not kept: inferred from a sample, they would
turn every new card or terminal id into an anomaly.
"""
import os
from typing import Dict, List, Optional, Tuple

from common.files import atomic_write_text
from components.features import FEATURE_TYPES, LABEL_KEY, OPTIONAL_FEATURES
from components.transactions import CHANNELS, FRAUD_SCENARIOS, MERCHANT_CATEGORIES

# The curated schema the pipeline imports, reviewed like code.
DEFAULT_SCHEMA_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schema", "schema.pbtxt")
TRAINING, SERVING = "TRAINING", "SERVING"
# Features known only once a transaction is labelled.
LABEL_FEATURES = (LABEL_KEY, "fraud_scenario")

CATEGORY_DOMAINS: Dict[str, Tuple[str, ...]] = {
    "merchant_category": MERCHANT_CATEGORIES,
    "channel": CHANNELS,
    # Legitimate transactions carry an empty scenario.
    "fraud_scenario": ("",) + FRAUD_SCENARIOS,
}
_NON_NEGATIVE = (0, None)
# Feature -> (min, max) of its values; None: unbounded.
NUMERIC_RANGES: Dict[str, Tuple[Optional[float], Optional[float]]] = {
    "timestamp": _NON_NEGATIVE,
    LABEL_KEY: (0, 1),
    "amount": _NON_NEGATIVE,
    "hour_of_day": (0, 23),
    "is_weekend": (0, 1),
    "is_night": (0, 1),
    "seconds_since_prev_txn": _NON_NEGATIVE,
    "distance_from_prev_km": _NON_NEGATIVE,
    "speed_from_prev_kmh": _NON_NEGATIVE,
    "amount_to_mean_30d": _NON_NEGATIVE,
    "distance_from_usual_location_km": _NON_NEGATIVE,
    "hours_from_usual_time": (0.0, 12.0),
    "merchant_category_share_30d": (0.0, 1.0),
    "channel_share_30d": (0.0, 1.0),
    "amount_to_category_mean_30d": _NON_NEGATIVE,
    **{name: _NON_NEGATIVE for name in FEATURE_TYPES
       if name.startswith(("card_txn_count_", "card_amount_sum_"))},
    **{name: (0.0, 1.0) for name in FEATURE_TYPES if name.startswith("terminal_fraud_rate_")},
}
# Feature -> (comparator, threshold), used for both train/serving skew and
# span-to-span drift. L-infinity for categories, Jensen-Shannon for amounts.
COMPARATORS: Dict[str, Tuple[str, float]] = {
    "merchant_category": ("infinity_norm", 0.1),
    "channel": ("infinity_norm", 0.1),
    "amount": ("jensen_shannon_divergence", 0.1),
}
HEADER = (
    "# riskpipe schema of FeatureGen's examples: types, presence, value domains,\n"
    "# skew/drift comparators. Reviewed like code. Refresh from data with\n"
    "#   riskpipe schema --data DIR\n"
    "# which keeps the curated domains and comparators below; review the diff.\n"
)
CREDIT_HEADER = (
    "# riskpipe schema of a credit application table (CsvExampleGen's examples): types,\n"
    "# presence, value domains; every column variable-length, since any may be missing.\n"
    "# Bootstrapped with `riskpipe schema --task credit`; reviewed like code.\n"
)


def _copy_curated(feature, previous, previous_schema) -> bool:
    """Copies domain, comparators and environments of `previous`; True if it had a domain."""
    for field in ("skew_comparator", "drift_comparator"):
        if previous.HasField(field):
            getattr(feature, field).CopyFrom(getattr(previous, field))
    if previous.not_in_environment or previous.in_environment:
        del feature.not_in_environment[:]
        feature.not_in_environment.extend(previous.not_in_environment)
        feature.in_environment.extend(previous.in_environment)
    kind = previous.WhichOneof("domain_info")
    if kind is None:
        return False
    if kind == "domain":
        named = [d for d in previous_schema.string_domain if d.name == previous.domain]
        if not named:
            return False
        feature.domain = previous.domain
        return True
    getattr(feature, kind).CopyFrom(getattr(previous, kind))
    return True


def _default_domain(feature, schema) -> None:
    name = feature.name
    if name in CATEGORY_DOMAINS:
        domain = schema.string_domain.add(name=name)
        domain.value.extend(CATEGORY_DOMAINS[name])
        feature.domain = name
    elif name in NUMERIC_RANGES:
        low, high = NUMERIC_RANGES[name]
        domain = feature.int_domain if FEATURE_TYPES.get(name) == "int" else feature.float_domain
        if low is not None:
            domain.min = low
        if high is not None:
            domain.max = high


def _default_comparators(feature) -> None:
    if feature.name not in COMPARATORS:
        return
    kind, threshold = COMPARATORS[feature.name]
    for field in ("skew_comparator", "drift_comparator"):
        if not feature.HasField(field):
            getattr(getattr(feature, field), kind).threshold = threshold


def _set_presence(feature) -> None:
    """Optional features are variable-length with no minimum; the rest are required."""
    feature.ClearField("presence")
    if feature.name in OPTIONAL_FEATURES:
        feature.ClearField("shape")
        feature.value_count.min = 1
        feature.value_count.max = 1
        feature.presence.min_count = 0
    else:
        feature.ClearField("value_count")
        feature.shape.Clear()
        feature.shape.dim.add(size=1)
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1


def curate(inferred, previous=None):
    """The reviewed schema: `inferred` with curated domains, presence, comparators."""
    from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=import-outside-toplevel

    schema = schema_pb2.Schema()
    schema.CopyFrom(inferred)
    # Sorted, so that a refresh diffs cleanly against the reviewed file.
    features = sorted(schema.feature, key=lambda f: f.name)
    del schema.feature[:]
    schema.feature.extend(features)
    schema.ClearField("string_domain")
    del schema.default_environment[:]
    schema.default_environment.extend([TRAINING, SERVING])
    previous_features = {f.name: f for f in previous.feature} if previous is not None else {}
    for feature in schema.feature:
        feature.ClearField("domain_info")
        old = previous_features.get(feature.name)
        if old is None or not _copy_curated(feature, old, previous):
            _default_domain(feature, schema)
        if feature.WhichOneof("domain_info") == "domain" and old is not None:
            schema.string_domain.extend(
                d for d in previous.string_domain if d.name == feature.domain)
        _default_comparators(feature)
        if feature.name in LABEL_FEATURES and SERVING not in feature.not_in_environment:
            feature.not_in_environment.append(SERVING)
        _set_presence(feature)
    domains = sorted(schema.string_domain, key=lambda d: d.name)
    del schema.string_domain[:]
    schema.string_domain.extend(domains)
    return schema


def feature_changes(new, previous) -> Tuple[List[str], List[str]]:
    """(added, removed) feature names of `new` relative to `previous`."""
    new_names = {f.name for f in new.feature}
    old_names = {f.name for f in previous.feature} if previous is not None else set()
    return sorted(new_names - old_names), sorted(old_names - new_names)


def load_schema(path: str):
    """The schema at `path`, or None when there is no file yet."""
    import tensorflow_data_validation as tfdv  # pylint: disable=import-outside-toplevel

    return tfdv.load_schema_text(path) if os.path.exists(path) else None


def write_schema(schema, path: str, header: str = HEADER) -> None:
    """Writes the text schema with its header, replacing `path` only once complete."""
    from google.protobuf import text_format  # pylint: disable=import-outside-toplevel

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, header + text_format.MessageToString(schema))


def infer_from_examples(split_patterns: Dict[str, str], beam_args: List[str]):
    """(inferred schema, statistics by split) of FeatureGen's gzipped TFRecord splits.

    The schema is inferred from the train split; every split's statistics are
    returned so the caller can validate them against the curated schema.
    """
    # pylint: disable=import-outside-toplevel
    import tensorflow_data_validation as tfdv
    from apache_beam.options.pipeline_options import PipelineOptions

    stats = {
        split: tfdv.generate_statistics_from_tfrecord(
            data_location=pattern, pipeline_options=PipelineOptions(beam_args))
        for split, pattern in split_patterns.items()
    }
    inferred = tfdv.infer_schema(stats["train"], infer_feature_shape=True)
    return inferred, stats

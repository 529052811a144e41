"""Features chosen by value: the `features: {exclude: [...]}` section from the ledger's feature table.

The rule: exclude every model feature whose permutation value share (its share
of the summed PR-AUC drops, ledger/report.py) is below `min_value_share`. The
output is a plain exclude list, so the config a run uses says exactly which
features it dropped, whatever rule chose them.
"""
from typing import Any, Dict, List, Mapping, Sequence


def features_to_exclude(feature_rows: Sequence[Mapping[str, Any]],
                        min_value_share: float) -> List[str]:
    """The names of the report's features worth less than `min_value_share`, sorted."""
    if not 0 <= min_value_share < 1:
        raise ValueError(f"min value share {min_value_share}: must be in [0, 1)")
    if not feature_rows:
        raise ValueError("the report has no feature table (run `riskpipe report` on a "
                         "pipeline root with a pushed fraud model)")
    excluded = sorted(row["name"] for row in feature_rows if row["value_share"] < min_value_share)
    if len(excluded) == len(feature_rows):
        raise ValueError(f"every feature is worth less than {min_value_share}: nothing would "
                         "be left")
    return excluded


def with_exclusions(config: Dict[str, Any], excluded: Sequence[str]) -> Dict[str, Any]:
    """A copy of a YAML config mapping whose `features.exclude` is `excluded`."""
    features = dict(config.get("features") or {}, exclude=list(excluded))
    return {**config, "features": features}

"""What each pushed version was approved at, and what its training data looked like.

For each version the pipeline pushed, the monitor compares live figures with:

- the version's eval baseline: ROC-AUC, PR-AUC and KS of its own scores on the
  eval split it was evaluated on, computed as the monitor computes live ones;
- the training split's distributions: the score's (the version's scores on a
  sample of its training split, over SCORE_BINS) and each model feature's
  (numeric features over the training sample's deciles, categories by value),
  which live data is compared with by PSI.

Computed once per version and kept in <pipeline_root>/monitor/baseline-<version>.json.
"""
import os
from typing import Any, Dict, List

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from common.distribution_stats import ks_statistic
from common.files import kept_json
from components import features
from ledger import feature_values
from pipeline import mlmd_queries
from pipeline.pipeline import EVALUATOR, FEATURE_GEN, PUSHER

SCORE_BINS = np.linspace(0.0, 1.0, 21)
FEATURE_QUANTILES = np.linspace(0.1, 0.9, 9)
SAMPLE_ROWS = 20000
OTHER = "__other__"


def score_counts(scores) -> List[int]:
    """Counts of scores over SCORE_BINS (the last bin holds 1.0)."""
    return np.histogram(np.clip(scores, 0.0, 1.0), bins=SCORE_BINS)[0].tolist()


def feature_reference(values: np.ndarray, kind: str) -> Dict[str, Any]:
    """The bins a feature's live values are counted over, and the training counts in them."""
    if kind == "string":
        categories = sorted(set(values.tolist()))
        return {"categories": categories, "counts": categorical_counts(values, categories)}
    present = values[~np.isnan(values.astype(float))]
    edges = np.unique(np.quantile(present, FEATURE_QUANTILES)).tolist() if len(present) else []
    return {"edges": edges, "counts": numeric_counts(values, edges)}


def numeric_counts(values: np.ndarray, edges: List[float]) -> List[int]:
    """Counts over (-inf, e1], (e1, e2], ..., (ek, inf), then the missing (NaN) values."""
    values = values.astype(float)
    missing = np.isnan(values)
    bins = np.searchsorted(np.asarray(edges), values[~missing], side="left")
    return np.bincount(bins, minlength=len(edges) + 1).tolist() + [int(missing.sum())]


def categorical_counts(values: np.ndarray, categories: List[str]) -> List[int]:
    """Counts of each known category, then of every other value."""
    index = {category: i for i, category in enumerate(categories)}
    counts = [0] * (len(categories) + 1)
    for value in values.tolist():
        counts[index.get(value, len(categories))] += 1
    return counts


def _metrics(scores: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    return {"roc_auc": float(roc_auc_score(labels, scores)),
            "pr_auc": float(average_precision_score(labels, scores)),
            "ks": ks_statistic(scores, labels)}


def compute_baseline(pushed: mlmd_queries.PushedVersion) -> Dict[str, Any]:
    score = feature_values.model_scorer(pushed.directory)
    eval_columns, eval_labels = feature_values.read_split(pushed.examples_uri, "eval", 10 ** 9)
    train_columns, _ = feature_values.read_split(pushed.examples_uri, "train", SAMPLE_ROWS)
    return {"version": pushed.version,
            "eval": _metrics(score(eval_columns), eval_labels),
            "eval_frauds": int(eval_labels.sum()),
            "score_counts": score_counts(score(train_columns)),
            "features": {name: feature_reference(train_columns[name], kind)
                         for name, kind in features.MODEL_FEATURES.items()}}


def baselines(pipeline_root: str, pipeline_name: str) -> Dict[int, Dict[str, Any]]:
    """{version: baseline} of every version the pipeline pushed that is still on disk."""
    store = mlmd_queries.open_store(os.path.join(pipeline_root, "metadata.sqlite"))
    if store is None:
        raise FileNotFoundError(f"{pipeline_root}: no metadata.sqlite; run `riskpipe run` first")
    found = {}
    for pushed in mlmd_queries.pushed_versions(store, pipeline_name, PUSHER, EVALUATOR,
                                               (FEATURE_GEN,)):
        path = os.path.join(pipeline_root, "monitor", f"baseline-{pushed.version}.json")
        on_disk = os.path.isdir(pushed.directory)
        baseline = kept_json(path, (lambda p=pushed: compute_baseline(p)) if on_disk else None)
        if baseline is not None:
            found[pushed.version] = baseline
    return found

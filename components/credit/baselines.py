"""The two reference models a credit team compares the DNN with, on the same transformed features.

Features come as the Transform outputs them: a dict name -> 1-D array, floats
for the standardised numeric features and their `*_missing` indicators, int64
ids for the categorical features (named in `categorical`). Both models are
fitted on the training split and scored on the eval split:

- logistic_regression: sklearn's LogisticRegression (L2, C=1, no class
  weights) on the numeric features plus a one-hot encoding of every
  categorical id (ids unseen in training encode as all zeros), the
  scorecard-style baseline;
- gradient_boosting: LightGBM's LGBMClassifier, the categorical ids as
  LightGBM categorical features, a modest fixed number of trees (no early
  stopping), deterministic for a seed (deterministic=True, row-wise histograms,
  one thread).
"""
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
from scipy import sparse

from components.credit.metrics import quality

LOGISTIC_REGRESSION = "logistic_regression"
GRADIENT_BOOSTING = "gradient_boosting"
BASELINE_MODELS = (LOGISTIC_REGRESSION, GRADIENT_BOOSTING)

LOGISTIC_MAX_ITER = 1000
BOOSTING_PARAMS = dict(
    n_estimators=300,
    learning_rate=0.05,
    num_leaves=15,
    min_child_samples=20,
    subsample=0.8,
    subsample_freq=1,
    colsample_bytree=0.8,
    reg_lambda=1.0,
    # Categorical splits: LightGBM's defaults need 100 rows per category.
    min_data_per_group=20,
    cat_smooth=10.0,
)


def _column_names(train: Mapping[str, np.ndarray], eval: Mapping[str, np.ndarray],
                  categorical: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(numeric names, categorical names), each sorted, after checking both splits agree."""
    if not train:
        raise ValueError("no features: the training split is an empty dict")
    if set(train) != set(eval):
        raise ValueError(f"train and eval features differ: only in train {sorted(set(train) - set(eval))}, "
                         f"only in eval {sorted(set(eval) - set(train))}")
    unknown = sorted(set(categorical) - set(train))
    if unknown:
        raise ValueError(f"categorical features not among the features: {unknown}")
    categorical_names = sorted(set(categorical))
    numeric_names = sorted(set(train) - set(categorical_names))
    return numeric_names, categorical_names


def _rows(split: str, features: Mapping[str, np.ndarray], labels) -> Tuple[int, np.ndarray]:
    """(number of rows, labels as int 0/1) of a split, checking every feature is 1-D of that length."""
    y = np.asarray(labels).reshape(-1)
    for name, values in features.items():
        values = np.asarray(values)
        if values.ndim != 1 or values.shape[0] != y.shape[0]:
            raise ValueError(f"{split} feature {name!r} has shape {values.shape}, expected "
                             f"({y.shape[0]},) like the {split} labels")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError(f"{split} labels must be 0 (good) or 1 (bad)")
    if np.unique(y).shape[0] < 2:
        raise ValueError(f"{split} labels hold a single class: the baselines need bads and goods")
    return y.shape[0], y.astype(np.int64)


def _numeric(features: Mapping[str, np.ndarray], names: Sequence[str], rows: int) -> np.ndarray:
    if not names:
        return np.zeros((rows, 0), dtype=np.float64)
    return np.column_stack([np.asarray(features[name], dtype=np.float64) for name in names])


def _ids(features: Mapping[str, np.ndarray], names: Sequence[str], rows: int) -> np.ndarray:
    if not names:
        return np.zeros((rows, 0), dtype=np.int64)
    return np.column_stack([np.asarray(features[name]).astype(np.int64) for name in names])


def _logistic_regression(x_train: np.ndarray, ids_train: np.ndarray, y_train: np.ndarray,
                         x_eval: np.ndarray, ids_eval: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    train_parts, eval_parts = [sparse.csr_matrix(x_train)], [sparse.csr_matrix(x_eval)]
    if ids_train.shape[1]:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=True, dtype=np.float64)
        train_parts.append(encoder.fit_transform(ids_train))
        eval_parts.append(encoder.transform(ids_eval))
    model = LogisticRegression(penalty="l2", C=1.0, class_weight=None, solver="lbfgs",
                               max_iter=LOGISTIC_MAX_ITER, random_state=seed)
    model.fit(sparse.hstack(train_parts, format="csr"), y_train)
    return model.predict_proba(sparse.hstack(eval_parts, format="csr"))[:, 1]


def _gradient_boosting(x_train: np.ndarray, ids_train: np.ndarray, y_train: np.ndarray,
                       x_eval: np.ndarray, ids_eval: np.ndarray, seed: int) -> np.ndarray:
    import lightgbm

    # LightGBM reads categorical columns as non-negative integer codes; ids
    # are small integers, exact in float64.
    train = np.hstack([x_train, ids_train.astype(np.float64)])
    evaluation = np.hstack([x_eval, ids_eval.astype(np.float64)])
    categorical = list(range(x_train.shape[1], train.shape[1]))
    model = lightgbm.LGBMClassifier(
        **BOOSTING_PARAMS, random_state=seed, deterministic=True, force_row_wise=True,
        n_jobs=1, verbose=-1)
    model.fit(train, y_train, categorical_feature=categorical if categorical else "auto")
    return model.predict_proba(evaluation)[:, 1]


def fit_baselines(train: Dict[str, np.ndarray], train_labels, eval: Dict[str, np.ndarray], eval_labels,
                  categorical: Sequence[str], seed: int) -> Dict[str, dict]:
    """{model: {"metrics": quality(eval_labels, eval_scores), "eval_scores": probabilities}}.

    One entry per name of BASELINE_MODELS, in that order; eval_scores are the
    models' probabilities of default on the eval rows, in their order.
    """
    numeric_names, categorical_names = _column_names(train, eval, categorical)
    train_rows, y_train = _rows("train", train, train_labels)
    eval_rows, y_eval = _rows("eval", eval, eval_labels)
    x_train, x_eval = _numeric(train, numeric_names, train_rows), _numeric(eval, numeric_names, eval_rows)
    ids_train, ids_eval = _ids(train, categorical_names, train_rows), _ids(eval, categorical_names, eval_rows)
    if not np.all(np.isfinite(x_train)) or not np.all(np.isfinite(x_eval)):
        raise ValueError("numeric features hold NaN or infinite values (the Transform imputes them)")

    fits = {LOGISTIC_REGRESSION: _logistic_regression, GRADIENT_BOOSTING: _gradient_boosting}
    results = {}
    for name in BASELINE_MODELS:
        scores = fits[name](x_train, ids_train, y_train, x_eval, ids_eval, seed)
        results[name] = {"metrics": quality(y_eval, scores), "eval_scores": scores}
    return results

"""Synthetic frauds for the training split: SMOTE-style interpolation in the transformed space.

Each synthetic fraud starts at a real fraud of the training split, picks one
of its `neighbours` nearest frauds (Euclidean, over the numeric transformed
inputs, which are already on comparable scales: z-scores, rates, 0/1 flags,
sine and cosine) and lies at a uniform random point of the segment between
the two. Vocabulary ids are not numbers, so they are copied whole from the
parent the point is nearer to. Flags and missing-value indicators are
interpolated with the rest: an optional value and its indicator then move
together between the parents' encodings instead of mixing one parent's
indicator with a value between both. Every real fraud starts floor(ratio) or
ceil(ratio) synthetic ones, so none is over-represented.

Why interpolation rather than a conditional generator: a training split has a
few hundred to a few thousand frauds, too few to fit a generative model that
would need its own tuning and checks, while interpolation needs no training,
stays among real frauds, is reproducible from a seed and costs one
nearest-neighbour search over the frauds.

Only the training split is ever given to `synthetic_frauds`: the eval split
measures the model on real transactions alone.
"""
from typing import Optional, Sequence

import numpy as np
from sklearn.neighbors import NearestNeighbors

from common.errors import DataError
from components.transformed_arrays import Split


def _nearest_frauds(frauds: Split, categorical: Sequence[str], neighbours: int) -> np.ndarray:
    """[frauds, k] indices of each fraud's k nearest other frauds over the numeric inputs."""
    numeric = np.stack([value for name, value in frauds.features.items()
                        if name not in categorical], axis=1).astype(np.float64)
    k = min(neighbours, len(numeric) - 1)
    # Without query points, kneighbors leaves each fraud out of its own neighbours.
    return NearestNeighbors(n_neighbors=k).fit(numeric).kneighbors(return_distance=False)


def _base_parents(frauds: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices of frauds, each fraud floor or ceil of count / frauds times."""
    whole = np.tile(np.arange(frauds), count // frauds)
    return np.concatenate([whole, rng.choice(frauds, count % frauds, replace=False)])


def synthetic_frauds(train: Split, ratio: float, neighbours: int, categorical: Sequence[str],
                     seed: Optional[int]) -> Split:
    """round(ratio x the training split's frauds) synthetic frauds (the module docstring).

    `categorical`: the inputs that are vocabulary ids. The same split, ratio,
    neighbours and seed give the same rows.
    """
    frauds = train.take(np.flatnonzero(train.labels == 1))
    count = round(ratio * len(frauds.labels))
    if count == 0:
        return frauds.take(np.zeros(0, np.int64))
    if len(frauds.labels) < 2:
        raise DataError(f"synthetic frauds interpolate between two frauds; the training "
                        f"split has {len(frauds.labels)}")
    rng = np.random.default_rng(seed)
    base = _base_parents(len(frauds.labels), count, rng)
    table = _nearest_frauds(frauds, categorical, neighbours)
    other = table[base, rng.integers(table.shape[1], size=count)]
    step = rng.random(count)
    nearer = np.where(step < 0.5, base, other)

    def interpolated(value: np.ndarray) -> np.ndarray:
        start = value[base].astype(np.float64)
        return (start + step * (value[other] - start)).astype(value.dtype)

    return Split({name: value[nearer] if name in categorical else interpolated(value)
                  for name, value in frauds.features.items()}, frauds.labels[base])

"""Reason codes: which of an application's features push its score most toward default.

Occlusion against the training population's baseline: a column's contribution
is the model's log-odds of default for the application less its log-odds with
that column set to the baseline applicant's value, everything else kept. The
baseline is what the Transform maps the typical applicant to: a numeric
column's training mean (z-score 0, not missing) and a categorical column's most
frequent value (vocabulary id 0). A positive contribution pushes toward
default; a declined applicant's reasons are the columns with the largest ones.

Occlusion needs one model call per column (all in one batch), works on
categorical ids where gradients do not exist, and is exact for what the model
does, not a local linear approximation. The exported `explain` signature
(components/credit/export.py) and batch scoring call the same `contributions`.
"""
from typing import Callable, Dict, List, Mapping, Sequence, Tuple

import tensorflow as tf

from components.preprocessing import missing_indicator_name, transformed_name


def column_inputs(numeric: Sequence[str], categorical: Sequence[str]) -> Dict[str, List[str]]:
    """Column -> the model inputs it becomes, in the order reasons are named."""
    groups = {name: [transformed_name(name), missing_indicator_name(name)] for name in numeric}
    groups.update({name: [transformed_name(name)] for name in categorical})
    return groups


def _baseline(x: tf.Tensor) -> tf.Tensor:
    return tf.zeros_like(x)


def contributions(logit_fn: Callable[[Mapping[str, tf.Tensor]], tf.Tensor],
                  inputs: Mapping[str, tf.Tensor],
                  groups: Mapping[str, Sequence[str]]) -> Tuple[tf.Tensor, tf.Tensor]:
    """(the applications' log-odds [batch], their [batch, columns] contributions to it).

    Columns are in `groups` order. `logit_fn` maps the model's [batch, 1]
    inputs to [batch] log-odds; it is called once, on the application batch
    followed by one occluded copy per column.
    """
    columns = list(groups)
    copies = {}
    for name, x in inputs.items():
        occluded = [_baseline(x) if name in groups[column] else x for column in columns]
        copies[name] = tf.concat([x] + occluded, axis=0)
    logits = tf.reshape(logit_fn(copies), [len(columns) + 1, -1])
    return logits[0], tf.transpose(logits[:1] - logits[1:])


def top_reasons(contribution: tf.Tensor, columns: Sequence[str], k: int):
    """(names string [batch, k], contributions float [batch, k]), strongest toward default first."""
    top = tf.math.top_k(contribution, k=min(k, len(columns)))
    return tf.gather(tf.constant(list(columns)), top.indices), top.values

"""Which of a model's complete versions the version policy wants, and when a failed one changed.

The complete versions on disk come from the serving contract
(common/serving_contract.complete_versions): a half-copied version is
invisible until its saved_model.pb is in place.

Paths go through TensorFlow's file systems, so a base path may be local or a
URI TensorFlow reads (gs://, as tensorflow_model_server reads it).
"""
import os
from typing import Iterable, Set, Tuple

import tensorflow as tf

Fingerprint = Tuple[Tuple[str, int, int], ...]


def aspired_versions(policy, candidates: Iterable[int]) -> Set[int]:
    """The versions a ServableVersionPolicy wants loaded, from the candidates.

    latest (default 1 version), all, or specific - as TF Serving's
    FileSystemStoragePathSource applies them.
    """
    candidates = sorted(set(candidates))
    choice = policy.WhichOneof("policy_choice") if policy is not None else None
    if choice == "all":
        return set(candidates)
    if choice == "specific":
        return set(candidates) & set(policy.specific.versions)
    count = policy.latest.num_versions if choice == "latest" and policy.latest.num_versions else 1
    return set(candidates[-count:])


def fingerprint(version_dir: str) -> Fingerprint:
    """Names, sizes and modification times of every file in a version directory.

    A version that failed to load is retried only once this changes (a copy
    finished, a file was replaced), never in a tight loop.
    """
    entries = []
    for root, _dirs, files in tf.io.gfile.walk(version_dir):
        for name in files:
            path = os.path.join(root, name)
            try:
                stat = tf.io.gfile.stat(path)
            except tf.errors.NotFoundError:  # removed while walking: the next poll sees it
                continue
            entries.append((path[len(version_dir):], stat.length, stat.mtime_nsec))
    return tuple(sorted(entries))

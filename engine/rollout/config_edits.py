"""Pure changes to a model config for the rollout steps: each returns a modified copy."""
from typing import Sequence

from engine.rollout import RolloutError
from engine.rollout.model_config import find_model, specific_versions
from engine.routing import CANARY, PREVIOUS, STABLE


def _copy(config):
    new = type(config)()
    new.CopyFrom(config)
    return new


def with_version_staged(config, model_name: str, version: int,
                        serving_versions: Sequence[int], where: str):
    """`config` with `version` pinned beside what is served now.

    A model still on the latest/all policy is first pinned to `serving_versions`
    (what the fleet has AVAILABLE), with `stable` on the newest of them, so
    staging never unloads anything.
    """
    new = _copy(config)
    model = find_model(new, model_name, where)
    versions = specific_versions(model)
    if versions is None:
        if not serving_versions:
            raise RolloutError(f"{where}: model '{model_name}' has no AVAILABLE version to "
                               "keep as stable while staging")
        versions = sorted(set(serving_versions))
        model.model_version_policy.specific.versions[:] = versions
        if STABLE not in model.version_labels:
            model.version_labels[STABLE] = versions[-1]
    if version not in versions:
        model.model_version_policy.specific.versions.append(version)
    return new


def with_label(config, model_name: str, label: str, version: int, where: str):
    new = _copy(config)
    find_model(new, model_name, where).version_labels[label] = version
    return new


def promoted(config, model_name: str, where: str):
    """`config` with `stable` on the canary version and `previous` on the version it replaces."""
    new = _copy(config)
    labels = find_model(new, model_name, where).version_labels
    if CANARY not in labels:
        raise RolloutError(f"{where}: model '{model_name}' has no '{CANARY}' label to promote")
    if labels.get(STABLE) != labels[CANARY]:  # a re-run promote keeps the first previous
        if STABLE in labels:
            labels[PREVIOUS] = labels[STABLE]
        labels[STABLE] = labels[CANARY]
    return new


def reverted(config, model_name: str, where: str):
    """`config` with `stable` moved back to `previous` (which is then removed)."""
    new = _copy(config)
    labels = find_model(new, model_name, where).version_labels
    if PREVIOUS not in labels:
        raise RolloutError(f"{where}: model '{model_name}' has no '{PREVIOUS}' version to go "
                           "back to")
    labels[STABLE] = labels.pop(PREVIOUS)
    return new


def without_unlabelled_versions(config, model_name: str, where: str):
    """`config` with `canary` removed and only the versions some label points at."""
    new = _copy(config)
    model = find_model(new, model_name, where)
    if CANARY in model.version_labels:
        del model.version_labels[CANARY]
    labelled = set(model.version_labels.values())
    versions = specific_versions(model)
    if versions is not None:
        model.model_version_policy.specific.versions[:] = [v for v in versions if v in labelled]
    return new

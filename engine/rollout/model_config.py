"""The model config file of the fleet: read it, check it as a server would, write it atomically."""
import os
from typing import List, Optional

from common.files import atomic_write_text
from common.serving_contract import is_complete_version
from engine.rollout import RolloutError
from engine.routing import CANARY, PREVIOUS, STABLE

URL_SCHEMES = ("gs://", "s3://", "hdfs://", "http://", "https://")


def read_config(path: str):
    """The ModelServerConfig in the text proto file at `path`."""
    from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.config import (  # pylint: disable=import-outside-toplevel
        model_server_config_pb2)

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise RolloutError(f"cannot read model config file {path}: {err.strerror}") from err
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as err:
        raise RolloutError(f"model config file {path}: {err}") from err
    return config


def format_config(config) -> str:
    from google.protobuf import text_format  # pylint: disable=import-outside-toplevel

    return text_format.MessageToString(config)


def is_local(base_path: str) -> bool:
    """Whether riskpipe reads the base path itself (a URI is checked by the servers)."""
    return not base_path.startswith(URL_SCHEMES)


def version_dir_complete(base_path: str, version: int) -> bool:
    """Whether <base_path>/<version> holds a complete SavedModel."""
    return is_complete_version(os.path.join(base_path, str(version)))


def specific_versions(model) -> Optional[List[int]]:
    """The pinned versions of a ModelConfig, or None when its policy is not `specific`."""
    policy = model.model_version_policy
    if policy.WhichOneof("policy_choice") != "specific":
        return None
    return list(policy.specific.versions)


def validate_config(config, where: str) -> None:
    """Raises RolloutError naming the field when a server would reject `config`.

    Checked: a model_config_list with unique, named models that have a base
    path; specific versions unique and (for local base paths) complete on
    disk; every label on a pinned version; `canary` only beside `stable`.
    """
    if config.WhichOneof("config") != "model_config_list":
        raise RolloutError(f"{where}: model_config_list: missing (a custom_model_config "
                           "cannot be rolled out)")
    names = set()
    for i, model in enumerate(config.model_config_list.config):
        at = f"{where}: model_config_list.config[{i}]"
        if not model.name:
            raise RolloutError(f"{at}.name: missing")
        if model.name in names:
            raise RolloutError(f"{at}.name: duplicate model '{model.name}'")
        names.add(model.name)
        if not model.base_path:
            raise RolloutError(f"{at}.base_path: missing for model '{model.name}'")
        _validate_versions(model, at)


def _validate_versions(model, at: str) -> None:
    versions = specific_versions(model)
    local = is_local(model.base_path)
    if versions is not None:
        if not versions:
            raise RolloutError(f"{at}.model_version_policy.specific.versions: empty")
        if len(set(versions)) != len(versions):
            raise RolloutError(f"{at}.model_version_policy.specific.versions: duplicates")
        for version in versions:
            if local and not version_dir_complete(model.base_path, version):
                raise RolloutError(
                    f"{at}.model_version_policy.specific.versions: version {version} has no "
                    f"complete SavedModel under {model.base_path}")
    for label, version in model.version_labels.items():
        if versions is not None and version not in versions:
            raise RolloutError(f"{at}.version_labels[{label}]: version {version} is not among "
                               f"the specific versions {versions}")
        if versions is None and local and not version_dir_complete(model.base_path, version):
            raise RolloutError(f"{at}.version_labels[{label}]: version {version} has no "
                               f"complete SavedModel under {model.base_path}")
    for label in (CANARY, PREVIOUS):
        if label in model.version_labels and STABLE not in model.version_labels:
            raise RolloutError(f"{at}.version_labels: '{label}' without '{STABLE}'")


def write_config(path: str, config) -> None:
    """Validates `config`, then replaces the file at `path` atomically."""
    validate_config(config, path)
    atomic_write_text(path, format_config(config))


def find_model(config, model_name: str, where: str):
    for model in config.model_config_list.config:
        if model.name == model_name:
            return model
    raise RolloutError(f"{where}: no model named '{model_name}' in model_config_list")

"""Executor of riskpipe's Pusher: skips the push when the model is already a served version."""
import hashlib
import os
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.components.pusher import executor as tfx_pusher
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from common.serving_contract import complete_versions

# Set on the PushedModel artifact when the blessed model was already being served.
ALREADY_SERVED_KEY = "already_served"


def directory_digest(path: str) -> str:
    """SHA-256 over the relative paths and contents of every file under `path`."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode("utf-8") + b"\0")
            with open(full, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def served_copy(model_path: str, base_directory: str) -> Optional[str]:
    """The complete version directory under `base_directory` identical to `model_path`, if any."""
    complete = complete_versions(base_directory)
    if not complete:
        return None
    wanted = directory_digest(model_path)
    return next((complete[v] for v in sorted(complete) if directory_digest(complete[v]) == wanted),
                None)


class Executor(tfx_pusher.Executor):
    """TFX's Pusher executor, filesystem destinations only, idempotent per model."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        if self.CheckBlessing(input_dict):
            destination = pusher_pb2.PushDestination()
            proto_utils.json_to_proto(
                exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
            existing = served_copy(self.GetModelPath(input_dict),
                                   destination.filesystem.base_directory)
            if existing is not None:
                pushed = artifact_utils.get_single_instance(
                    output_dict[standard_component_specs.PUSHED_MODEL_KEY])
                self._MarkPushed(pushed, pushed_destination=existing,
                                 pushed_version=os.path.basename(existing))
                pushed.set_int_custom_property(ALREADY_SERVED_KEY, 1)
                return
        super().Do(input_dict, output_dict, exec_properties)

"""Which model versions are loaded: polling, version policy, labels and status.

Availability first, as in TF Serving: a new version is loaded (and warmed up)
before an old one is unloaded, so a request always finds a version. A version
that fails to load is reported in GetModelStatus with its error, is never
served, and the versions before it keep serving; it is retried only when its
files change.

Requests never take the manager's lock: they read immutable snapshots that
loads and unloads replace whole.
"""
import dataclasses
import logging
import os
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from tensorflow_serving.apis import get_model_status_pb2, model_pb2
from tensorflow_serving.config import model_server_config_pb2

from common import serving_contract
from serving import errors, version_policy
from serving.servable import Servable

LOG = logging.getLogger(__name__)
State = get_model_status_pb2.ModelVersionStatus.State

# loader(model_name, version, version_dir) -> Servable; raises on a bad version.
Loader = Callable[[str, int, str], Servable]


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    state: int  # ModelVersionStatus.State
    error_code: int = 0
    error_message: str = ""


@dataclasses.dataclass
class _Model:
    config: model_server_config_pb2.ModelConfig
    # Snapshots, replaced whole (never mutated) so requests can read them lock-free.
    available: Mapping[int, Servable] = dataclasses.field(default_factory=dict)
    latest: Optional[Servable] = None
    statuses: Mapping[int, VersionStatus] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, int] = dataclasses.field(default_factory=dict)
    # Versions that failed to load, with the fingerprint of the files that failed.
    failed: Dict[int, version_policy.Fingerprint] = dataclasses.field(default_factory=dict)
    warned_empty: bool = False


def single_model_config(model_name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """The config tensorflow_model_server builds from --model_name/--model_base_path."""
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add(
        name=model_name, base_path=base_path, model_platform="tensorflow")
    entry.model_version_policy.latest.num_versions = 1
    return config


def validate_config(config: model_server_config_pb2.ModelServerConfig) -> None:
    """Rejects what TF Serving rejects in a ModelServerConfig (INVALID_ARGUMENT)."""
    if config.WhichOneof("config") != "model_config_list":
        raise errors.invalid_argument(
            "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
            "ModelConfigList is currently supported")
    names = set()
    for entry in config.model_config_list.config:
        if not entry.name:
            raise errors.invalid_argument("Model config entry has an empty name")
        if entry.name in names:
            raise errors.invalid_argument(
                f"Illegal to list model {entry.name} 2 times in config list")
        names.add(entry.name)
        if not (os.path.isabs(entry.base_path) or "://" in entry.base_path):
            raise errors.invalid_argument(
                f"Expected model {entry.name} to have an absolute path or URI; got "
                f"base_path()={entry.base_path}")
        if entry.model_platform not in ("", "tensorflow"):
            raise errors.invalid_argument(
                f"Model {entry.name} requested unsupported platform {entry.model_platform}")


class ModelManager:
    """Owns the loaded versions of every configured model."""

    def __init__(self, loader: Loader, allow_labels_for_unavailable: bool = False,
                 on_change: Callable[[], None] = lambda: None,
                 on_load: Callable[[str, bool], None] = lambda path, ok: None):
        self._loader = loader
        self._allow_unavailable_labels = allow_labels_for_unavailable
        self._on_change = on_change
        self._on_load = on_load
        self._lock = threading.RLock()
        self._models: Mapping[str, _Model] = {}
        self._configured = False
        self._stop = threading.Event()
        self._poller: Optional[threading.Thread] = None

    # ------------------------------------------------------------ requests

    def resolve(self, model_spec: model_pb2.ModelSpec) -> Servable:
        """The servable a request's model_spec names, with TF Serving's errors."""
        name = model_spec.name
        model = self._models.get(name)
        choice = model_spec.WhichOneof("version_choice")
        if choice == "version_label":
            version = self._label_version(model, model_spec.version_label)
        elif choice == "version":
            version = model_spec.version.value
        else:
            latest = model.latest if model is not None else None
            if latest is None:
                raise errors.not_found(f"Servable not found for request: Latest({name})")
            return latest
        servable = model.available.get(version) if model is not None else None
        if servable is None:
            raise errors.not_found(f"Servable not found for request: Specific({name}, {version})")
        return servable

    @staticmethod
    def _label_version(model: Optional[_Model], label: str) -> int:
        labels = model.labels if model is not None else {}
        if label not in labels:
            raise errors.invalid_argument(f"Unrecognized servable version label: {label}")
        return labels[label]

    def version_statuses(self, model_spec: model_pb2.ModelSpec) -> List[Tuple[int, VersionStatus]]:
        """GetModelStatus: one version's status, or every version the model has had."""
        name = model_spec.name
        model = self._models.get(name)
        statuses = model.statuses if model is not None else {}
        choice = model_spec.WhichOneof("version_choice")
        if choice is None:
            if not statuses:
                raise errors.not_found(f"Could not find any versions of model {name}")
            return sorted(statuses.items())
        if choice == "version_label":
            version = self._label_version(model, model_spec.version_label)
        else:
            version = model_spec.version.value
        if version not in statuses:
            raise errors.not_found(f"Could not find version {version} of model {name}")
        return [(version, statuses[version])]

    def model_names(self) -> List[str]:
        return sorted(self._models)

    def labels(self, name: str) -> Dict[str, int]:
        model = self._models.get(name)
        return dict(model.labels) if model is not None else {}

    def all_models_available(self) -> bool:
        """True once a config is applied and every model has an AVAILABLE version."""
        models = self._models
        return self._configured and all(model.latest is not None for model in models.values())

    # ------------------------------------------------------------ config

    def set_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Applies a ModelServerConfig: loads and unloads, then moves labels.

        Returns once every model's aspired versions have been loaded or have
        failed, like TF Serving's ReloadConfig. Labels change only if every
        label points at an AVAILABLE version (FAILED_PRECONDITION otherwise),
        and then all at once.
        """
        validate_config(config)
        with self._lock:
            entries = {entry.name: entry for entry in config.model_config_list.config}
            models, retired = {}, []
            for name, entry in entries.items():
                model = self._models.get(name)
                if model is not None and model.config.base_path != entry.base_path:
                    retired.append(model)  # unloaded once the new path's versions are up
                    model = None
                models[name] = model or _Model(config=entry)
                models[name].config = entry
            retired += [self._models[name] for name in set(self._models) - set(entries)]
            self._models = models
            for model in models.values():
                self._reconcile(model)
            for model in retired:
                self._unload_all(model)
            try:
                self._apply_labels(entries)
            finally:
                self._configured = True
                self._on_change()

    def _apply_labels(self, entries: Mapping[str, model_server_config_pb2.ModelConfig]) -> None:
        for name, entry in entries.items():
            available = self._models[name].available
            for label, version in entry.version_labels.items():
                if version not in available and not self._allow_unavailable_labels:
                    raise errors.failed_precondition(
                        f"Request to assign label to version {version} of model {name}, which "
                        f"is not currently available for inference")
        for name, entry in entries.items():
            self._models[name].labels = dict(entry.version_labels)

    # ------------------------------------------------------------ polling

    def poll(self) -> None:
        """One pass over every model's base path."""
        with self._lock:
            for model in list(self._models.values()):
                self._reconcile(model)
            self._on_change()

    def start_polling(self, interval_seconds: float) -> None:
        """Polls every interval_seconds in a daemon thread (no-op when <= 0)."""
        if interval_seconds <= 0 or self._poller is not None:
            return
        def loop():
            while not self._stop.wait(interval_seconds):
                self._poll_logged()
        self._poller = threading.Thread(target=loop, name="model-poller", daemon=True)
        self._poller.start()

    def _poll_logged(self) -> None:
        try:
            self.poll()
        except Exception:  # a poll failure must not end polling; it is logged and retried
            LOG.exception("polling the model base paths failed")

    def stop(self) -> None:
        """Stops polling and unloads every version."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=60)
        with self._lock:
            for model in self._models.values():
                self._unload_all(model)

    # ------------------------------------------------------------ loading

    def _reconcile(self, model: _Model) -> None:
        on_disk = serving_contract.complete_versions(model.config.base_path)
        if not on_disk and not model.warned_empty:
            LOG.warning("No versions of servable %s found under base path %s. Did you forget to "
                        "name your leaf directory as a number (eg. '/1/')?", model.config.name,
                        model.config.base_path)
        model.warned_empty = not on_disk
        for version in set(model.failed) - set(on_disk):
            del model.failed[version]
        policy = (model.config.model_version_policy
                  if model.config.HasField("model_version_policy") else None)
        attempted = set()
        while True:
            candidates = [version for version, path in on_disk.items()
                          if not self._still_failed(model, version, path)]
            aspired = version_policy.aspired_versions(policy, candidates)
            to_load = sorted(aspired - set(model.available) - attempted, reverse=True)
            if not to_load:
                break
            for version in to_load:
                attempted.add(version)
                self._load(model, version, on_disk[version])
        for version in set(model.available) - aspired:
            self._unload(model, version)

    def _still_failed(self, model: _Model, version: int, path: str) -> bool:
        if version not in model.failed:
            return False
        if model.failed[version] == version_policy.fingerprint(path):
            return True
        del model.failed[version]
        return False

    def _set_status(self, model: _Model, version: int, status: VersionStatus) -> None:
        model.statuses = {**model.statuses, version: status}

    def _publish(self, model: _Model, available: Dict[int, Servable]) -> None:
        model.available = available
        model.latest = available[max(available)] if available else None

    def _load(self, model: _Model, version: int, path: str) -> None:
        name = model.config.name
        self._set_status(model, version, VersionStatus(State.LOADING))
        fingerprint = version_policy.fingerprint(path)
        started = time.monotonic()
        try:
            servable = self._loader(name, version, path)
        except Exception as err:  # any load failure: reported in status, never served
            failure = errors.from_exception(err)
            model.failed[version] = fingerprint
            self._set_status(model, version, VersionStatus(
                State.END, failure.code_number, failure.message))
            self._on_load(path, False)
            LOG.error("Loading servable: {name: %s version: %d} failed: %s", name, version,
                      failure.message)
            return
        self._publish(model, {**model.available, version: servable})
        self._set_status(model, version, VersionStatus(State.AVAILABLE))
        self._on_load(path, True)
        LOG.info("Successfully loaded servable version {name: %s version: %d} in %.2fs",
                 name, version, time.monotonic() - started)

    def _unload(self, model: _Model, version: int) -> None:
        self._set_status(model, version, VersionStatus(State.UNLOADING))
        self._publish(model, {key: value for key, value in model.available.items()
                              if key != version})
        # In-flight requests hold their own reference; the version's memory is
        # freed once the last of them finishes.
        self._set_status(model, version, VersionStatus(State.END))
        LOG.info("Unloaded servable version {name: %s version: %d}", model.config.name, version)

    def _unload_all(self, model: _Model) -> None:
        for version in list(model.available):
            self._unload(model, version)


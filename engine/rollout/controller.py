"""The rollout steps for one model of one model config file (see engine/rollout/__init__.py)."""
import dataclasses
import time
from typing import Callable, Dict, Optional, Sequence

from common.files import atomic_write_text
from engine.rollout import RolloutError
from engine.rollout.config_edits import (promoted, reverted, with_label, with_version_staged,
                                         without_unlabelled_versions)
from engine.rollout.fleet import AVAILABLE, END, Fleet
from engine.rollout.model_config import (find_model, is_local, read_config, specific_versions,
                                         version_dir_complete, write_config)
from engine.routing import (CANARY, NO_CANARY, PREVIOUS, STABLE, ModelRouting, read_routing,
                            routing_path_for, write_model_routing)


@dataclasses.dataclass(frozen=True)
class RolloutOptions:
    # How long to wait for every server to take a config change.
    timeout_seconds: float = 120.0
    poll_seconds: float = 0.2
    # How long clients may still route by the previous routing file (their refresh
    # interval plus a call's deadline) before a label they may use is removed.
    client_grace_seconds: float = 3.0


class Rollout:
    """The rollout steps for one model of one model config file."""

    def __init__(self, config_path: str, model_name: str, fleet: Optional[Fleet],
                 routing_path: Optional[str] = None,
                 options: RolloutOptions = RolloutOptions(),
                 log: Callable[[str], None] = lambda line: None,
                 sleep: Callable[[float], None] = time.sleep):
        self.config_path = config_path
        self.model_name = model_name
        self.fleet = fleet
        self.routing_path = routing_path or routing_path_for(config_path)
        self.options = options
        self.log = log
        self._sleep = sleep

    # --- helpers ------------------------------------------------------------------------

    def _model(self, config):
        return find_model(config, self.model_name, self.config_path)

    def _wait(self, what: str, done: Callable[[], Optional[str]]) -> None:
        """Polls `done` (None when done, else what is missing) until the timeout."""
        deadline = time.monotonic() + self.options.timeout_seconds
        while True:
            missing = done()
            if missing is None:
                return
            if time.monotonic() >= deadline:
                raise RolloutError(f"timed out after {self.options.timeout_seconds:g}s waiting "
                                   f"for {what}: {missing}")
            self._sleep(self.options.poll_seconds)

    def _apply(self, new, what: str, done: Callable[[], Optional[str]]) -> None:
        """Writes `new`, waits for the fleet; on failure puts the previous file back, byte
        for byte, and raises."""
        with open(self.config_path, encoding="utf-8") as f:
            previous = f.read()
        write_config(self.config_path, new)
        self.log(f"wrote {self.config_path}: {what}")
        try:
            self._wait(what, done)
        except RolloutError as err:
            atomic_write_text(self.config_path, previous)
            raise RolloutError(f"{err}; restored the previous {self.config_path}") from err

    def _servers(self) -> Fleet:
        if self.fleet is None:
            raise RolloutError("this step needs the fleet's server addresses (--server)")
        return self.fleet

    def _load_failures(self, version: int) -> Dict[str, str]:
        """address -> error message of the servers that report `version` failed to load."""
        failures = {}
        for address in self._servers().addresses:
            state, message = self.fleet.version_states(address).get(version, ("absent", ""))
            if state == END and message:
                failures[address] = message
        return failures

    def _all_available(self, version: int, old_failures: Dict[str, str]) -> Optional[str]:
        """None once every server has `version` AVAILABLE; raises on a new load failure.

        `old_failures` are failures reported before the config change, which a server
        keeps showing until it retries the load, so they are not taken as an answer.
        """
        for address in self._servers().addresses:
            state, message = self.fleet.version_states(address).get(version, ("absent", ""))
            if state == END and message and old_failures.get(address) != message:
                raise RolloutError(f"{address}: version {version} failed to load: {message}")
            if state != AVAILABLE:
                return f"{address} reports version {version} {state}"
        return None

    def _labels_everywhere(self, labels) -> Optional[str]:
        for label, version in sorted(labels.items()):
            missing = self._label_everywhere(label, version)
            if missing:
                return missing
        return None

    def _label_everywhere(self, label: str, version: int) -> Optional[str]:
        for address in self._servers().addresses:
            found = self.fleet.label_version(address, label)
            if found != version:
                return f"{address} resolves '{label}' to {found}"
        return None

    def _routing(self) -> ModelRouting:
        return read_routing(self.routing_path).get(self.model_name, NO_CANARY)

    def _set_routing(self, state: ModelRouting) -> None:
        write_model_routing(self.routing_path, self.model_name, state)
        self.log(f"wrote {self.routing_path}: canary share {state.canary_share:g}"
                 f"{', shadow' if state.shadow else ''}")

    # --- steps --------------------------------------------------------------------------

    def stage(self, version: int) -> None:
        """Pins `version` beside the served ones and waits until every server has it AVAILABLE."""
        config = read_config(self.config_path)
        model = self._model(config)
        if is_local(model.base_path) and not version_dir_complete(model.base_path, version):
            raise RolloutError(f"version {version} has no complete SavedModel under "
                               f"{model.base_path}")
        serving = ([] if specific_versions(model) is not None
                   else self._servers().available_everywhere())
        new = with_version_staged(config, self.model_name, version, serving, self.config_path)
        old_failures = self._load_failures(version)
        if new == config:
            self.log(f"version {version} is already staged")
            self._wait(f"version {version} AVAILABLE",
                       lambda: self._all_available(version, old_failures))
        else:
            self._apply(new, f"stage version {version}",
                        lambda: self._all_available(version, old_failures))

    def canary(self, version: int, share: float, shadow: bool = False) -> None:
        """Points `canary` at a staged, AVAILABLE `version`, then publishes the share."""
        if not 0.0 <= share <= 1.0:
            raise RolloutError(f"--share {share} is not in [0, 1]")
        config = read_config(self.config_path)
        model = self._model(config)
        versions = specific_versions(model)
        if versions is None or version not in versions:
            raise RolloutError(f"version {version} is not staged in {self.config_path}; "
                               f"run 'riskpipe rollout stage {version}' first")
        missing = self._all_available(version, old_failures={})
        if missing:
            raise RolloutError(f"{missing}; a label may only move onto an AVAILABLE version")
        if model.version_labels.get(CANARY) != version:
            new = with_label(config, self.model_name, CANARY, version, self.config_path)
            self._apply(new, f"label {CANARY} -> {version}",
                        lambda: self._label_everywhere(CANARY, version))
        self._set_routing(ModelRouting(canary_version=version, canary_share=share,
                                       shadow=shadow))

    def promote(self) -> int:
        """Makes the canary version stable and keeps the one it replaces as `previous`,
        loaded; then drops the canary label and the versions no label points at.
        Returns the new stable version."""
        config = read_config(self.config_path)
        new = promoted(config, self.model_name, self.config_path)
        labels = self._model(new).version_labels
        version = labels[STABLE]
        if new != config:
            self._apply(new, f"label {STABLE} -> {version}, {PREVIOUS} -> "
                             f"{labels.get(PREVIOUS)}",
                        lambda: self._labels_everywhere(labels))
        self._retire_canary()
        return version

    def revert_to_previous(self) -> tuple:
        """Moves `stable` back to `previous` (loaded, so nothing reloads); returns (from, to)."""
        config = read_config(self.config_path)
        before = self._model(config).version_labels.get(STABLE)
        new = reverted(config, self.model_name, self.config_path)
        version = self._model(new).version_labels[STABLE]
        missing = self._all_available(version, old_failures={})
        if missing:
            raise RolloutError(f"{missing}; cannot move '{STABLE}' back to it")
        self._apply(new, f"label {STABLE} -> {version} (back from {before})",
                    lambda: self._label_everywhere(STABLE, version))
        return before, version

    def rollback(self) -> None:
        """Stops canary traffic and drops the canary version; `stable` stays as it is."""
        self._retire_canary()

    def _retire_canary(self) -> None:
        """Share to 0, grace period, then drop `canary` and the unlabelled versions."""
        if self._routing() != NO_CANARY:
            self._set_routing(NO_CANARY)
            self.log(f"waiting {self.options.client_grace_seconds:g}s for the clients")
            self._sleep(self.options.client_grace_seconds)
        config = read_config(self.config_path)
        new = without_unlabelled_versions(config, self.model_name, self.config_path)
        if new == config:
            return
        stable = self._model(new).version_labels.get(STABLE)
        dropped = sorted(set(specific_versions(self._model(config)) or ()) -
                         set(specific_versions(self._model(new)) or ()))
        self._apply(new, f"drop '{CANARY}' and versions {dropped}",
                    lambda: self._dropped_everywhere(dropped, stable))

    def _dropped_everywhere(self, dropped: Sequence[int], stable: Optional[int]) -> Optional[str]:
        for address in self._servers().addresses:
            states = self.fleet.version_states(address)
            for version in dropped:
                if states.get(version, (END, ""))[0] == AVAILABLE:
                    return f"{address} still has version {version} AVAILABLE"
        if stable is not None:
            return self._label_everywhere(STABLE, stable)
        return None

    # --- status -------------------------------------------------------------------------

    def describe(self) -> Dict[str, object]:
        """The config, routing and per-server version states of the model."""
        config = read_config(self.config_path)
        model = self._model(config)
        routing = self._routing()
        servers = {}
        for address in (self.fleet.addresses if self.fleet else ()):
            try:
                servers[address] = {str(v): state for v, (state, _) in
                                    sorted(self.fleet.version_states(address).items())}
            except RolloutError as err:
                servers[address] = {"error": str(err)}
        return {
            "model": self.model_name,
            "versions": specific_versions(model),
            "labels": dict(sorted(model.version_labels.items())),
            "canary_share": routing.canary_share,
            "shadow": routing.shadow,
            "servers": servers,
        }

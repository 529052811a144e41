"""Canary routing: which version label scores a card's transactions.

A card goes to the `canary` label when the stable hash of its id falls below
the canary share, else to `stable`; the same card always goes the same way,
in every process, so a customer never flips between models mid-session.

The share comes from the routing file that `riskpipe rollout` writes next to
the model config (`<model_config_file>.routing.json`, JSON):

    {"format": 1,
     "models": {"fraud": {"canary_version": 1700000100,
                          "canary_share": 0.1,
                          "shadow": true}}}

A model absent from the file means no canary: everything goes to `stable`.
A client given no routing file sends no label at all (the server's latest
version): that suits a single-model server, never a fleet under rollout, where
the latest version may be a staged canary. In shadow mode every transaction is scored on both labels;
the routed one decides and the other is compared with it.
"""
import dataclasses
import hashlib
import json
import os
import threading
import time
from typing import Dict, Optional

from common.files import atomic_write_text

STABLE, CANARY = "stable", "canary"
# The version `rollout promote` replaced, kept loaded so that a rollback is one label move.
PREVIOUS = "previous"
ROUTING_FORMAT = 1
ROUTING_SUFFIX = ".routing.json"


class RoutingError(ValueError):
    """An unreadable or invalid routing file; the message names the file and field."""


def canary_bucket(card_id: str) -> float:
    """A stable, uniform position of a card in [0, 1): the first 8 bytes of its SHA-256."""
    digest = hashlib.sha256(card_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def route(card_id: str, canary_share: float) -> str:
    """CANARY for the cards whose bucket falls below `canary_share`, else STABLE."""
    return CANARY if canary_bucket(card_id) < canary_share else STABLE


def other_label(label: str) -> str:
    return STABLE if label == CANARY else CANARY


@dataclasses.dataclass(frozen=True)
class ModelRouting:
    """The canary state of one model as the clients see it."""

    canary_version: Optional[int] = None
    canary_share: float = 0.0
    shadow: bool = False

    @property
    def has_canary(self) -> bool:
        return self.canary_version is not None

    def label_for(self, card_id: str) -> str:
        if not self.has_canary or self.canary_share <= 0.0:
            return STABLE
        return route(card_id, self.canary_share)


NO_CANARY = ModelRouting()


def routing_path_for(model_config_file: str) -> str:
    """Where `riskpipe rollout` keeps the routing file of a model config file."""
    return model_config_file + ROUTING_SUFFIX


def _parse_model(name: str, data, where: str) -> ModelRouting:
    if not isinstance(data, dict):
        raise RoutingError(f"{where}: models.{name}: expected an object")
    unknown = sorted(set(data) - {"canary_version", "canary_share", "shadow"})
    if unknown:
        raise RoutingError(f"{where}: models.{name}.{unknown[0]}: unknown field")
    version = data.get("canary_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or version < 0):
        raise RoutingError(f"{where}: models.{name}.canary_version: expected a version "
                           f"number or null, got {version!r}")
    share = data.get("canary_share", 0.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
        raise RoutingError(f"{where}: models.{name}.canary_share: expected a number in "
                           f"[0, 1], got {share!r}")
    shadow = data.get("shadow", False)
    if not isinstance(shadow, bool):
        raise RoutingError(f"{where}: models.{name}.shadow: expected true or false")
    if version is None and (share > 0.0 or shadow):
        raise RoutingError(f"{where}: models.{name}: a canary share or shadow mode "
                           "needs a canary_version")
    return ModelRouting(canary_version=version, canary_share=float(share), shadow=shadow)


def parse_routing(text: str, where: str) -> Dict[str, ModelRouting]:
    """Model name -> ModelRouting from the text of a routing file."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise RoutingError(f"{where}: not valid JSON: {err}") from err
    if not isinstance(data, dict) or data.get("format") != ROUTING_FORMAT:
        raise RoutingError(f"{where}: format: expected {ROUTING_FORMAT}")
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise RoutingError(f"{where}: models: expected an object")
    return {name: _parse_model(name, value, where) for name, value in models.items()}


def read_routing(path: str) -> Dict[str, ModelRouting]:
    """The routing file at `path`; an absent file means no canary for any model."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise RoutingError(f"cannot read routing file {path}: {err.strerror}") from err
    return parse_routing(text, path)


def format_routing(models: Dict[str, ModelRouting]) -> str:
    body = {name: dataclasses.asdict(state) for name, state in sorted(models.items())}
    return json.dumps({"format": ROUTING_FORMAT, "models": body}, indent=2, sort_keys=True) + "\n"


def write_model_routing(path: str, model_name: str, state: ModelRouting) -> None:
    """Sets one model's entry of the routing file (atomically), keeping the others."""
    models = read_routing(path)
    if state == NO_CANARY:
        models.pop(model_name, None)
    else:
        models[model_name] = state
    atomic_write_text(path, format_routing(models))


class Router:
    """Routes cards of one model by the routing file, re-read when it changes.

    The file is checked at most every `refresh_seconds`, so a rollout step that
    changes the share reaches every client within that time. A file that turns
    invalid keeps the last good state (and `last_error` says why): a bad write
    must not stop scoring.
    """

    def __init__(self, model_name: str, path: Optional[str] = None,
                 refresh_seconds: float = 0.5, clock=time.monotonic):
        self.model_name = model_name
        self.path = path
        self.refresh_seconds = refresh_seconds
        self.last_error = ""
        self._clock = clock
        self._lock = threading.Lock()
        self._state = NO_CANARY
        self._stamp = None
        self._next_check = 0.0
        if path is not None:
            self._state = read_routing(path).get(model_name, NO_CANARY)
            self._stamp = self._file_stamp()

    def _file_stamp(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def current(self) -> ModelRouting:
        """The routing state now, re-reading the file when it changed."""
        if self.path is None:
            return self._state
        now = self._clock()
        with self._lock:
            if now >= self._next_check:
                self._next_check = now + self.refresh_seconds
                stamp = self._file_stamp()
                if stamp != self._stamp:
                    self._reload(stamp)
            return self._state

    def _reload(self, stamp) -> None:
        try:
            self._state = read_routing(self.path).get(self.model_name, NO_CANARY)
            self._stamp = stamp
            self.last_error = ""
        except RoutingError as err:
            self.last_error = str(err)

    def label_for(self, card_id: str) -> Optional[str]:
        """The label for the card; None (the server's latest version) without a routing file."""
        if self.path is None:
            return None
        return self.current().label_for(card_id)

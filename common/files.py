"""Writing a file so that a reader sees the old or the new content, never a part."""
import json
import os
from typing import Any, Callable, Optional


def atomic_write_text(path: str, text: str) -> None:
    """Replaces `path` with `text`; a failure leaves the previous file untouched."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def kept_json(path: str, compute: Optional[Callable[[], Any]]) -> Optional[Any]:
    """The JSON kept at `path`; computed by `compute` and kept there first when missing.

    None when nothing is kept and `compute` is None (it may not run now).
    """
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    if compute is None:
        return None
    value = compute()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")
    return value

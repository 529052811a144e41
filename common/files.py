"""Writing a file so that a reader sees the old or the new content, never a part."""
import os


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

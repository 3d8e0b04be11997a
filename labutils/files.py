"""Writing files so that an interruption never leaves a half-written one in place."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

__all__ = ["atomic_write", "atomic_save", "atomic_write_text", "load_json_dict", "merge_json_dict",
           "is_corrupt_file_error", "error_summary"]


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)``, then rename the temporary file to ``path``; remove it if anything fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to a temporary file in ``path``'s folder, then rename it to ``path``.

    The rename is atomic on POSIX and Windows: a reader sees the old file or the new one, never
    a partial one.  The temporary file is removed when saving fails (disk full, interruption).
    Creates the folder when missing.  Returns ``path``.
    """
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, as :func:`atomic_save` does."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def load_json_dict(path: str | os.PathLike, *, unreadable: str = "") -> dict:
    """The JSON object in ``path``, or an empty dict when the file is missing.

    A file that is not a JSON object (truncated, garbage, a list) is ignored with a printed note, ``unreadable``
    appended to it (what follows from ignoring it); other errors, such as no permission, are raised.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        print(f"note: ignoring unreadable {path} ({exc}){'; ' + unreadable if unreadable else ''}")
        return {}
    if not isinstance(data, dict):
        print(f"note: ignoring {path}: not a JSON object{'; ' + unreadable if unreadable else ''}")
        return {}
    return data


def merge_json_dict(path: str | os.PathLike, updates: dict) -> Path:
    """Merge ``updates`` into the JSON object in ``path`` (:func:`load_json_dict`; its keys win) and write it back
    atomically, keys sorted.  Returns ``path``."""
    merged = {**load_json_dict(path), **updates}
    return atomic_write_text(json.dumps(merged, indent=2, sort_keys=True), path)


def is_corrupt_file_error(exc: BaseException) -> bool:
    """True when ``torch.load`` raised ``exc`` because the file's bytes are not a valid torch file.

    Truncated, empty or garbage files raise ``EOFError``, ``KeyError``, ``RuntimeError`` (the zip
    reader), ``OSError`` with ``errno.EINVAL`` or an ``UnpicklingError``.  Not corruption, so
    not a reason to delete or rebuild anything: a missing file or no permission (other
    ``OSError``), running out of memory, and a ``weights_only=True`` refusal of an intact file
    that holds other objects than tensors and plain containers.
    """
    import errno
    import pickle
    import zipfile

    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError):  # a refused class is named as an "Unsupported global"
        return not ("Unsupported global" in text or "safe_globals" in text)
    if isinstance(exc, OSError):
        return exc.errno == errno.EINVAL
    if isinstance(exc, RuntimeError):
        return "out of memory" not in text.lower()
    return isinstance(exc, (EOFError, KeyError, ValueError, zipfile.BadZipFile, UnicodeDecodeError))


def error_summary(exc: BaseException, limit: int = 160) -> str:
    """``"Type: first line of the message"``, cut to ``limit`` characters (torch's load errors run to pages)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if "Weights only load failed" in text:  # the cause is further down: name it instead of torch's preamble
        text = next((line for line in lines if "Unsupported" in line), text)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""Path checks of the configuration: can the library create or use a configured file or folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any


def usable_path(path: Path, *, directory: bool) -> Path:
    """``path`` if the library can create or use it as a directory (or a file); else ``ValueError``
    saying why. Checked before ``attach`` touches anything, so a bad path fails as a config error:
    a NUL byte, an existing ancestor that is not a directory, a file where a directory is wanted (or
    the reverse), an unwritable parent."""
    if "\x00" in str(path):
        raise ValueError(f"{str(path)!r} contains a NUL byte")
    existing: Path | None = None
    for candidate in (*reversed(path.absolute().parents), path.absolute()):
        try:
            mode = candidate.stat().st_mode
        except FileNotFoundError:
            break
        except OSError as error:
            raise ValueError(f"cannot use {path}: {candidate}: {error.strerror}") from None
        if candidate != path.absolute() and not stat.S_ISDIR(mode):
            raise ValueError(f"cannot use {path}: {candidate} is not a directory")
        existing = candidate
    if existing == path.absolute():
        is_dir = stat.S_ISDIR(path.absolute().stat().st_mode)
        if directory and not is_dir:
            raise ValueError(f"{path} exists and is not a directory")
        if not directory and is_dir:
            raise ValueError(f"{path} is a directory, not a file")
        parent = path.absolute() if directory else path.absolute().parent
    else:
        parent = existing if existing is not None else Path(path.absolute().anchor)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot use {path}: {parent} is not writable")
    return path


def beside_the_config(path: Path | None, info: Any) -> Path | None:
    """A relative ``path`` from a config file means "next to this file", not "next to wherever the
    process was started": joined to the ``base_dir`` of the validation context (the file's folder,
    given by ``parse_config(..., base_dir=)``); unchanged without one or when absolute."""
    base = (getattr(info, "context", None) or {}).get("base_dir")
    if path is None or base is None or path.is_absolute() or "\x00" in str(path):
        return path
    return Path(base) / path

"""Checking a flagd flag file before ``attach`` uses it (:func:`validate_flagd_file`): every problem
becomes a :class:`ConfigError` naming the path and what is wrong."""

from __future__ import annotations

import json
import os
from pathlib import Path

from litellm_canary.core.config import ConfigError


def validate_flagd_file(path: str | Path) -> None:
    """Raise :class:`ConfigError` naming ``path`` and the problem when it is not a usable flagd flag
    file (unreadable, not JSON — with line and column —, not a flagd document, a flag flagd rejects).
    A missing file is fine: the store creates it."""
    file = Path(path)
    where = f"flag_store.path {file}"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if file.is_symlink():
            raise ConfigError(f"{where}: a symbolic link to a missing file ({os.readlink(file)})") from None
        return
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a directory, not a flagd flag file") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{where}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"{where}: cannot be read: {error.strerror or error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{where}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("flags", {}), dict):
        raise ConfigError(f"{where}: not a flagd flag-definition document (no 'flags' object)")
    from openfeature.contrib.tools.flagd.core.model.flag_store import FlagStore as FlagdDocument

    try:
        FlagdDocument().update(document)
    except Exception as error:  # flagd's ParseError, or whatever its parser trips on
        message = getattr(error, "error_message", None) or str(error) or type(error).__name__
        raise ConfigError(f"{where}: flagd rejects it: {message}") from None

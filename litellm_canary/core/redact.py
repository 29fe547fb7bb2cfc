"""Redaction of secrets in free text, and the sanitising of every text the library keeps.

This module owns :func:`scrub` and its patterns (``sk-…`` keys, ``Bearer …``/``Basic …`` credentials,
``key=…``/``token: …`` pairs, JWTs, long hex and base64 runs), and :func:`clean_text` /
:func:`clean_value`: the one helper every stored text from outside (a rollback reason, an alert's
summary and labels, an incident annotation) goes through: lone surrogates become U+FFFD (they cannot
be encoded, so a file holding one cannot be written), control characters other than tab, newline and
carriage return are dropped, and the length is capped (:data:`MAX_TEXT`, the admin API's limit on a
reason). It depends on nothing, so the controller (logs, spans, ``status()``) and the incident records
can all use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "MAX_ITEMS",
    "MAX_STRING",
    "MAX_TEXT",
    "REDACTED",
    "SECRET_PATTERNS",
    "clean_text",
    "clean_value",
    "scrub",
    "scrub_value",
]

MAX_STRING = 500  # a scrubbed string (logs, spans, incident fields)
MAX_TEXT = 1000  # any kept text (the admin API's limit on a rollback reason)
MAX_ITEMS = 50  # entries kept of a list or mapping from outside
REDACTED = "[REDACTED]"
ELLIPSIS = "…"

# Lone surrogates (any surrogate code point in a str is unpaired) and control characters except
# tab, newline and carriage return (C0, DEL and C1).
_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_text(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` safe to keep: lone surrogates replaced by U+FFFD, control characters (other than
    tab, newline, carriage return) dropped, at most ``limit`` characters (a cut one ends with "…")."""
    if len(text) > limit * 2:  # don't clean what is cut anyway (a control char removed may shorten it)
        text = text[: limit * 2]
    text = _CONTROLS.sub("", _SURROGATES.sub("\ufffd", text))
    if len(text) > limit:
        text = text[: limit - 1] + ELLIPSIS
    return text


def clean_value(value: object, limit: int = MAX_TEXT, depth: int = 4) -> object:
    """``value`` with :func:`clean_text` applied to every string in it (keys too), at most
    :data:`MAX_ITEMS` entries per mapping or list and ``depth`` levels (deeper becomes ``None``)."""
    if isinstance(value, str):
        return clean_text(value, limit)
    if isinstance(value, Mapping):
        if depth <= 0:
            return None
        items = list(value.items())[:MAX_ITEMS]
        return {
            (clean_text(key, 200) if isinstance(key, str) else key): clean_value(item, limit, depth - 1)
            for key, item in items
        }
    if isinstance(value, list | tuple):
        if depth <= 0:
            return None
        return [clean_value(item, limit, depth - 1) for item in list(value)[:MAX_ITEMS]]
    return value


SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\bbearer\s+[^\s,;\"']+"), "Bearer " + REDACTED),
    (re.compile(r"(?i)\bbasic\s+[A-Za-z0-9+/=]{8,}"), "Basic " + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), REDACTED),
    (
        re.compile(
            r"(?i)\b(api[_-]?key|access[_-]?token|token|secret|password|passwd|authorization|x-api-key)"
            r"(\s*[=:]\s*)[^\s&,;\"']+"
        ),
        r"\1\2" + REDACTED,
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]*)?"), REDACTED),  # JWT
    (re.compile(r"\b[0-9a-fA-F]{32,}\b"), REDACTED),  # long hex
    # long base64 / base64url runs with both letters and digits (a word or a path has no 32-char run
    # like that; a key or token does)
    (
        re.compile(
            r"(?<![A-Za-z0-9+/_\-])(?=[A-Za-z0-9+/_\-]*\d)(?=[A-Za-z0-9+/_\-]*[A-Za-z])"
            r"[A-Za-z0-9+/_\-]{32,}={0,2}"
        ),
        REDACTED,
    ),
)


def scrub(text: str) -> str:
    """``text`` cleaned (:func:`clean_text`), anything that looks like a secret replaced by
    ``[REDACTED]``, and capped at :data:`MAX_STRING` characters."""
    # Scrubbed before the final cut (a secret cut in half would no longer match), cleaned and
    # pre-cut well beyond it (what lies past the pre-cut is past the final cut too).
    text = clean_text(text, MAX_STRING * 4)
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    if len(text) > MAX_STRING:
        text = text[:MAX_STRING] + ELLIPSIS
    return text


def scrub_value(value: object) -> object:
    """``value`` with :func:`scrub` applied to every string in it (through dicts, lists and tuples)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: scrub_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(item) for item in value]
    return value

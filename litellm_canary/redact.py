"""Redaction of secrets in free text: what a rollback reason or cause may carry into logs and records.

This module owns :func:`scrub` and its patterns (``sk-…`` keys, ``Bearer …``/``Basic …`` credentials,
``key=…``/``token: …`` pairs, JWTs, long hex and base64 runs). It depends on nothing, so the controller
(logs, spans) and the incident records can both use it.
"""

from __future__ import annotations

import re

__all__ = ["MAX_STRING", "REDACTED", "SECRET_PATTERNS", "scrub", "scrub_value"]

MAX_STRING = 500
REDACTED = "[REDACTED]"

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
    """``text`` with anything that looks like a secret replaced by ``[REDACTED]`` (and capped in length)."""
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    if len(text) > MAX_STRING:
        text = text[:MAX_STRING] + "…"
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

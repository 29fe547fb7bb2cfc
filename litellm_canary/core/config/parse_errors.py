"""One readable line for a YAML or JSON syntax error: where it is (line, column) and what is wrong.

PyYAML's message starts with the context ("while parsing a flow mapping") and puts the position
in a later line; JSON's names it inline. Config loaders use :func:`describe_parse_error` so that
every "not valid YAML" error says ``line L, column C: <problem>``.
"""

from __future__ import annotations

import json

__all__ = ["describe_parse_error"]


def describe_parse_error(error: Exception) -> str:
    """``line L, column C: problem`` for a yaml/json error (1-based), else its first line."""
    if isinstance(error, json.JSONDecodeError):
        return f"line {error.lineno}, column {error.colno}: {error.msg}"
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None)
    context = getattr(error, "context", None)
    what = " ".join(str(part) for part in (problem, context) if part) if problem or context else None
    if what is None:
        what = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if mark is not None and hasattr(mark, "line") and hasattr(mark, "column"):
        return f"line {mark.line + 1}, column {mark.column + 1}: {what}"
    return what

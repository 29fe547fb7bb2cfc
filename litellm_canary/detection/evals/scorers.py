"""Scorers: the scorer interface, the bundled scorers, and loading the scorer a config names.

This module owns :data:`Scorer`, an ``async (request, response) -> float`` in [0, 1]; the pure-Python
bundled scorer factories (:func:`exact_match`, :func:`regex_match`, :func:`json_schema_valid`,
:func:`reference_similarity`), which read the response text of an OpenAI-style chat completion (a
dict or a litellm ``ModelResponse``) or of a plain string; :func:`load_scorer`, which imports a
user's scorer from a dotted path; and :func:`build_scorer`, the scorer a rollout's config names. No
network, no model calls. Config files name the bundled scorers by their public path
``litellm_canary.evals:<name>`` (that module re-exports this one).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from litellm_canary.core.config import BuiltinScorer
from litellm_canary.detection.evals.answers import response_text

#: ``async (request, response) -> score``; the score is a float in [0, 1], higher is better.
Scorer = Callable[[Mapping[str, Any], Any], Awaitable[float]]

__all__ = [
    "Scorer",
    "build_scorer",
    "check_score",
    "exact_match",
    "json_schema_valid",
    "load_scorer",
    "reference_similarity",
    "regex_match",
    "token_f1",
]


def check_score(score: object, source: str = "score") -> float:
    """``score`` as a float in [0, 1], or :class:`ValueError` naming ``source`` and the value."""
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise ValueError(f"{source} must be a number in [0, 1], got {score!r}")
    value = float(score)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{source} must be in [0, 1], got {score!r}")
    return value


def exact_match(reference: str, *, strip: bool = True, case_sensitive: bool = True) -> Scorer:
    """1.0 when the response text equals ``reference`` (after stripping whitespace, by default), else 0.0."""
    if not isinstance(reference, str):
        raise ValueError(f"exact_match reference must be a str, got {type(reference).__name__}")

    def normalise(text: str) -> str:
        text = text.strip() if strip else text
        return text if case_sensitive else text.casefold()

    expected = normalise(reference)

    async def score(request: Mapping[str, Any], response: Any) -> float:
        return 1.0 if normalise(response_text(response)) == expected else 0.0

    return score


def regex_match(pattern: str | re.Pattern[str], *, flags: int = 0) -> Scorer:
    """1.0 when ``pattern`` matches anywhere in the response text (``re.search``), else 0.0.

    The pattern is compiled once, here; an invalid pattern raises :class:`ValueError` naming it.
    """
    if isinstance(pattern, re.Pattern):
        compiled = pattern
    elif isinstance(pattern, str):
        try:
            compiled = re.compile(pattern, flags)
        except re.error as exc:
            raise ValueError(f"invalid regex_match pattern {pattern!r}: {exc}") from exc
    else:
        raise ValueError(f"regex_match pattern must be a str or re.Pattern, got {type(pattern).__name__}")

    async def score(request: Mapping[str, Any], response: Any) -> float:
        return 1.0 if compiled.search(response_text(response)) else 0.0

    return score


_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)


def json_schema_valid(schema: Mapping[str, Any]) -> Scorer:
    """1.0 when the response text is JSON valid against ``schema`` (JSON Schema, via ``jsonschema``).

    The text may be wrapped in one markdown code fence (```` ```json ... ``` ````). Text that is not
    JSON scores 0.0. The schema is checked once, here, against its own draft's meta-schema (the draft
    named by ``$schema``, else the latest); an invalid schema raises :class:`ValueError`.
    """
    import jsonschema
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, Mapping):
        raise ValueError(f"json_schema_valid schema must be a mapping, got {type(schema).__name__}")
    schema_dict = dict(schema)
    validator_class = jsonschema.validators.validator_for(schema_dict)
    try:
        validator_class.check_schema(schema_dict)
    except SchemaError as exc:
        raise ValueError(f"invalid JSON schema for json_schema_valid: {exc.message}") from exc
    validator = validator_class(schema_dict)

    async def score(request: Mapping[str, Any], response: Any) -> float:
        text = response_text(response)
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1)
        try:
            instance = json.loads(text)
        except ValueError:  # json.JSONDecodeError, and RecursionError-free bad input
            return 0.0
        return 1.0 if validator.is_valid(instance) else 0.0

    return score


_TOKEN = re.compile(r"\w+", re.UNICODE)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


def token_f1(candidate: str, reference: str) -> float:
    """Token-level F1 of ``candidate`` against ``reference`` (case-folded ``\\w+`` tokens, as multisets).

    Both empty: 1.0; exactly one empty: 0.0.
    """
    cand, ref = _tokens(candidate), _tokens(reference)
    if not cand or not ref:
        return 1.0 if not cand and not ref else 0.0
    overlap = sum((Counter(cand) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(cand), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def reference_similarity(reference: str) -> Scorer:
    """Token-level F1 (SQuAD-style) between the response text and ``reference``, in [0, 1].

    Why token F1 rather than ``difflib.SequenceMatcher.ratio``: it is the standard answer-overlap
    metric for QA evals, symmetric, linear in the text length (``ratio`` is quadratic in the worst
    case), insensitive to word order and to whitespace/punctuation/case differences that do not
    change an answer, and free of ``SequenceMatcher``'s "autojunk" heuristic, which silently changes
    the score of texts of 200+ items. It does not see paraphrase (neither does ``difflib``).
    """
    if not isinstance(reference, str):
        raise ValueError(f"reference_similarity reference must be a str, got {type(reference).__name__}")

    async def score(request: Mapping[str, Any], response: Any) -> float:
        return token_f1(response_text(response), reference)

    return score


# --------------------------------------------------------------------------------------------------
# Loading a user's scorer
# --------------------------------------------------------------------------------------------------


def _import_attr(dotted_path: str) -> Any:
    if ":" in dotted_path:
        module_name, _, attr_path = dotted_path.partition(":")
        if not module_name or not attr_path:
            raise ValueError(f"scorer path {dotted_path!r} must look like 'package.module:attr'")
        module = importlib.import_module(module_name)
    else:
        module_name, _, attr_path = dotted_path.rpartition(".")
        if not module_name or not attr_path:
            raise ValueError(
                f"scorer path {dotted_path!r} must look like 'package.module:attr' or 'package.module.attr'"
            )
        module = importlib.import_module(module_name)
    obj: Any = module
    for name in attr_path.split("."):
        obj = getattr(obj, name)
    return obj


def load_scorer(dotted_path: str) -> Scorer:
    """Import the scorer at ``package.module:attr`` (or ``package.module.attr``; ``attr`` may be dotted).

    The object must be callable as ``(request, response)``; an ``async def`` function is returned as
    is, anything else callable (a plain function, an object with ``__call__``) is wrapped so that it
    runs in a worker thread (``asyncio.to_thread``: a slow or stuck sync scorer never blocks the
    caller's event loop, and a timeout around the returned coroutine does end the wait for it — the
    thread itself cannot be killed and finishes in the background), the result is awaited when it
    is awaitable, and always returned as a float. Every failure — bad path,
    module or attribute not found, an exception while importing, not callable — raises
    :class:`ValueError` naming the path.
    """
    if not isinstance(dotted_path, str) or not dotted_path.strip():
        raise ValueError(f"scorer path must be a non-empty string, got {dotted_path!r}")
    path = dotted_path.strip()
    try:
        obj = _import_attr(path)
    except ValueError:
        raise
    except Exception as exc:  # ImportError, AttributeError, or anything the module raised on import
        raise ValueError(f"cannot import scorer {path!r}: {type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise ValueError(f"scorer {path!r} is a {type(obj).__name__}, not a callable")
    if inspect.iscoroutinefunction(obj):
        scorer: Scorer = obj
        return scorer
    function: Callable[[Mapping[str, Any], Any], Any] = obj

    async def call(request: Mapping[str, Any], response: Any) -> float:
        result = await asyncio.to_thread(function, request, response)
        if inspect.isawaitable(result):
            result = await result
        return float(result)

    return call


def build_scorer(spec: str | BuiltinScorer) -> Scorer:
    """The scorer a config names: a dotted path, or a built-in with its arguments."""
    if isinstance(spec, str):
        return load_scorer(spec)
    if spec.builtin == "regex":
        assert spec.pattern is not None
        return regex_match(spec.pattern)
    if spec.builtin == "exact":
        assert spec.reference is not None
        return exact_match(spec.reference, case_sensitive=spec.case_sensitive)
    if spec.builtin == "json_schema":
        assert spec.json_schema is not None
        return json_schema_valid(spec.json_schema)
    assert spec.reference is not None
    return reference_similarity(spec.reference)

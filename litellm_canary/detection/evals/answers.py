"""The answer text of a model response, as scorers read it.

This module owns reading a response: :func:`answer_kind` says whether a response has a text answer
(a chat completion or a Responses API answer) and :func:`response_text` extracts it from a dict, a
litellm ``ModelResponse`` / ``ResponsesAPIResponse`` or a plain string. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["answer_kind", "response_text"]


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj[key]
    try:
        return getattr(obj, key)
    except AttributeError:
        raise KeyError(key) from None


def _maybe(obj: Any, key: str) -> Any:
    try:
        return _get(obj, key)
    except KeyError:
        return None


def answer_kind(response: Any) -> Literal["chat", "responses"] | None:
    """``"chat"`` for a chat completion (``choices``), ``"responses"`` for a Responses API answer
    (an ``output`` list), ``None`` for anything without a text answer (an embedding, an image...)."""
    if isinstance(_maybe(response, "choices"), list):
        return "chat"
    if isinstance(_maybe(response, "output"), list):
        return "responses"
    return None


def _responses_text(output: list[Any]) -> str:
    # The Responses API's output_text: the output_text parts of the message items, in order
    # (reasoning, tool calls and refusals carry no answer text).
    parts = []
    for item in output:
        if _maybe(item, "type") != "message":
            continue
        for part in _maybe(item, "content") or ():
            text = _maybe(part, "text")
            if _maybe(part, "type") == "output_text" and isinstance(text, str):
                parts.append(text)
    return "".join(parts)


def response_text(response: Any) -> str:
    """The text of ``response``: ``choices[0].message.content`` of a chat completion, the
    ``output_text`` of a Responses API answer, or the string.

    ``response`` may be a plain ``str``, an OpenAI-style dict, or an object with the same attributes
    (a litellm ``ModelResponse`` or ``ResponsesAPIResponse``). A ``None`` content (e.g. a
    tool-call-only answer) is ``""``; a list of content parts is joined from its ``text`` parts.
    Anything else raises :class:`ValueError`.
    """
    if isinstance(response, str):
        return response
    if answer_kind(response) == "responses":
        return _responses_text(_get(response, "output"))
    try:
        content = _get(_get(_get(response, "choices")[0], "message"), "content")
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(
            f"cannot read choices[0].message.content from a {type(response).__name__} response"
        ) from exc
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            text = part.get("text") if isinstance(part, Mapping) else getattr(part, "text", None)
            if isinstance(text, str):
                parts.append(text)
        return "".join(parts)
    raise ValueError(f"choices[0].message.content is a {type(content).__name__}, not text")

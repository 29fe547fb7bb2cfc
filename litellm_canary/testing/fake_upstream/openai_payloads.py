"""The OpenAI-compatible payloads of a fake upstream: what each ``/v1`` endpoint answers.

This module owns the JSON bodies of chat completions, the Responses API and embeddings, their SSE
frames when streamed (rendered up front as :class:`Frame` s that the stream then sends), the model
list, and OpenAI-style error bodies. Pure functions of the request body and the answer: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "Frame",
    "chat_body",
    "chat_frames",
    "embeddings_body",
    "error_body",
    "models_body",
    "response_body",
    "response_frames",
    "sse",
]

_DEFAULT_EMBEDDING_DIMS: Final = 8
_PIECE_RE: Final = re.compile(r"\S+\s*|\s+")

_JSON = dict[str, Any]


def _pieces(text: str) -> list[str]:
    """Split ``text`` word by word, keeping whitespace, so that ``"".join(pieces) == text``."""
    return _PIECE_RE.findall(text)


def _count_words(value: Any) -> int:
    """A rough token count of a prompt: words in every string found in ``value``."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, Mapping):
        return sum(_count_words(v) for k, v in value.items() if k in ("content", "text", "input"))
    if isinstance(value, list):
        return sum(_count_words(v) for v in value)
    return 0


def _error_kind(status: int) -> tuple[str, str]:
    """OpenAI-style ``(type, code)`` for an HTTP error status."""
    known = {
        400: ("invalid_request_error", "bad_request"),
        401: ("invalid_request_error", "invalid_api_key"),
        403: ("invalid_request_error", "permission_denied"),
        404: ("invalid_request_error", "not_found"),
        408: ("timeout_error", "request_timeout"),
        429: ("rate_limit_error", "rate_limit_exceeded"),
        500: ("server_error", "internal_error"),
        502: ("server_error", "bad_gateway"),
        503: ("server_error", "service_unavailable"),
        504: ("server_error", "gateway_timeout"),
    }
    if status in known:
        return known[status]
    return ("server_error" if status >= 500 else "invalid_request_error", f"http_{status}")


def error_body(status: int, message: str) -> _JSON:
    err_type, code = _error_kind(status)
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


def _embedding(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend((b / 127.5) - 1.0 for b in digest)
        counter += 1
    vector = raw[:dims]
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [round(x / norm, 6) for x in vector]


@dataclass(frozen=True, slots=True)
class Frame:
    data: bytes
    kind: Literal["pre", "content", "final"]


def sse(payload: _JSON | str, event: str | None = None) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {data}\n\n".encode()


# --------------------------------------------------------------------------------------- the upstream


def _chat_usage(body: _JSON, answer: str) -> _JSON:
    prompt = _count_words(body.get("messages", []))
    completion = len(_pieces(answer))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def chat_body(body: _JSON, model: str, answer: str) -> _JSON:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake_upstream",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _chat_usage(body, answer),
    }


def chat_frames(body: _JSON, model: str, answer: str) -> list[Frame]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake_upstream",
    }

    def chunk(delta: _JSON, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse({**base, "choices": [choice]})

    frames = [Frame(chunk({"role": "assistant", "content": ""}), "pre")]
    frames += [Frame(chunk({"content": piece}), "content") for piece in _pieces(answer)]
    frames.append(Frame(chunk({}, "stop"), "final"))
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        usage = _chat_usage(body, answer)
        frames.append(Frame(sse({**base, "choices": [], "usage": usage}), "final"))
    frames.append(Frame(sse("[DONE]"), "final"))
    return frames


def _response_usage(body: _JSON, answer: str) -> _JSON:
    prompt = _count_words(body.get("input", "")) + _count_words(body.get("instructions", ""))
    completion = len(_pieces(answer))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _response_object(
    body: _JSON, model: str, resp_id: str, status: str, output: list[_JSON], usage: _JSON | None
) -> _JSON:
    return {
        "id": resp_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": bool(body.get("store", True)),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _message_item(item_id: str, answer: str, status: str = "completed") -> _JSON:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": answer, "annotations": []}],
    }


def response_body(body: _JSON, model: str, answer: str) -> _JSON:
    item = _message_item(f"msg_{uuid.uuid4().hex}", answer)
    usage = _response_usage(body, answer)
    return _response_object(body, model, f"resp_{uuid.uuid4().hex}", "completed", [item], usage)


def response_frames(body: _JSON, model: str, answer: str) -> list[Frame]:
    resp_id, item_id = f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"
    sequence = iter(range(1_000_000))

    def event(kind: Literal["pre", "content", "final"], event_type: str, **fields: Any) -> Frame:
        payload = {"type": event_type, "sequence_number": next(sequence), **fields}
        return Frame(sse(payload, event_type), kind)

    in_progress = _response_object(body, model, resp_id, "in_progress", [], None)
    part = {"type": "output_text", "text": "", "annotations": []}
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    frames = [
        event("pre", "response.created", response=in_progress),
        event("pre", "response.in_progress", response=in_progress),
        event(
            "pre",
            "response.output_item.added",
            output_index=0,
            item={
                "type": "message",
                "id": item_id,
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            },
        ),
        event("pre", "response.content_part.added", part=part, **where),
    ]
    frames += [
        event("content", "response.output_text.delta", delta=piece, logprobs=[], **where)
        for piece in _pieces(answer)
    ]
    done_item = _message_item(item_id, answer)
    completed = _response_object(
        body, model, resp_id, "completed", [done_item], _response_usage(body, answer)
    )
    frames += [
        event("final", "response.output_text.done", text=answer, logprobs=[], **where),
        event("final", "response.content_part.done", part={**part, "text": answer}, **where),
        event("final", "response.output_item.done", output_index=0, item=done_item),
        event("final", "response.completed", response=completed),
    ]
    return frames


def embeddings_body(body: _JSON, model: str) -> _JSON:
    """Deterministic unit vectors per input (``float`` or ``base64`` encoding)."""
    raw_input = body.get("input", "")
    inputs: list[Any] = raw_input if isinstance(raw_input, list) else [raw_input]
    if inputs and all(isinstance(x, int) for x in inputs):  # a single pre-tokenised input
        inputs = [inputs]
    dims = body.get("dimensions")
    if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
        dims = _DEFAULT_EMBEDDING_DIMS
    base64_format = body.get("encoding_format") == "base64"
    data: list[_JSON] = []
    for index, item in enumerate(inputs):
        vector = _embedding(item if isinstance(item, str) else repr(item), dims)
        encoded: list[float] | str = vector
        if base64_format:
            encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(_count_words(x) if isinstance(x, str) else len(x) for x in inputs)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def models_body(name: str) -> _JSON:
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": 0, "owned_by": "fake-upstream"}],
    }

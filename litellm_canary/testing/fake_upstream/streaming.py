"""How a fake upstream sends a stream, and the waits every injected delay is made of.

This module owns :class:`StreamResponse` (sends the pre-rendered SSE frames of one request, applying
its stream faults: first-token and chunk delays, holds, mid-stream cuts), the cut-short waits
(:func:`first_of`, :func:`disconnect_watch`) that ``stop()`` and client disconnects interrupt, and
the log filter that drops uvicorn's traceback for a stream cut on purpose. The stream reaches its
upstream only through :class:`StreamHost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Literal, Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from litellm_canary.testing.fake_upstream.counters import Endpoint
from litellm_canary.testing.fake_upstream.faults import Faults
from litellm_canary.testing.fake_upstream.openai_payloads import Frame, error_body, sse

__all__ = [
    "InjectedStreamCut",
    "StreamHost",
    "StreamResponse",
    "disconnect_watch",
    "first_of",
    "install_log_filter",
]


class StreamHost(Protocol):
    """What a stream needs of its upstream: its name, the counters, and the stop/release events."""

    @property
    def name(self) -> str: ...

    @property
    def stopping(self) -> asyncio.Event | None: ...

    @property
    def release(self) -> asyncio.Event | None: ...

    def bump(self, **deltas: int) -> None: ...


class InjectedStreamCut(Exception):
    """Raised inside the ASGI app to drop a streaming connection mid-body on purpose."""


class _DropInjectedCuts(logging.Filter):
    """Keeps uvicorn from logging a traceback for every stream this module cuts on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InjectedStreamCut)


_log_filter_lock = threading.Lock()
_log_filter_installed = False


def install_log_filter() -> None:
    global _log_filter_installed
    with _log_filter_lock:
        if not _log_filter_installed:
            logging.getLogger("uvicorn.error").addFilter(_DropInjectedCuts())
            _log_filter_installed = True


async def first_of(limit_s: float | None, *events: asyncio.Event) -> asyncio.Event | None:
    """Wait until one of ``events`` is set (returned) or ``limit_s`` elapses (``None``)."""
    for event in events:
        if event.is_set():
            return event
    if limit_s is not None and limit_s <= 0:
        return None
    waiters = {asyncio.ensure_future(event.wait()): event for event in events}
    try:
        done, _ = await asyncio.wait(waiters, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiters:
            task.cancel()
    del done
    for event in events:
        if event.is_set():
            return event
    return None


async def _watch_disconnect(receive: Receive, disconnected: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            disconnected.set()
            return


@contextlib.asynccontextmanager
async def disconnect_watch(receive: Receive) -> AsyncIterator[asyncio.Event]:
    """An event set when the client disconnects (only valid once the request body has been read)."""
    disconnected = asyncio.Event()
    task = asyncio.ensure_future(_watch_disconnect(receive, disconnected))
    try:
        yield disconnected
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class StreamResponse(Response):
    """Sends pre-rendered SSE frames, applying the stream faults of one request.

    Owns the request's ``in_flight`` slot from the moment the handler returns it.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        host: StreamHost,
        headers: dict[str, str],
        frames: list[Frame],
        faults: Faults,
        endpoint: Endpoint,
        number: int,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({**headers, "cache-control": "no-cache"})
        self._host = host
        self._frames = frames
        self._faults = faults
        self._endpoint = endpoint
        self._number = number
        self._ended = False

    def _end(self, outcome: Literal["completed", "failed", "cancelled"]) -> None:
        if self._ended:
            return
        self._ended = True
        if outcome == "completed":
            self._host.bump(in_flight=-1, streams_completed=1)
        elif outcome == "failed":
            self._host.bump(in_flight=-1, streams_failed=1, errors=1)
        else:
            self._host.bump(in_flight=-1, streams_cancelled=1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            stopping = self._host.stopping
            assert stopping is not None
            async with disconnect_watch(receive) as disconnected:
                await send(
                    {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
                )
                await self._send_frames(send, stopping, disconnected)
        finally:
            self._end("cancelled")

    async def _send_frames(self, send: Send, stopping: asyncio.Event, disconnected: asyncio.Event) -> None:
        faults = self._faults
        sent_content = 0
        held = False
        final_reached = False
        last = len(self._frames) - 1
        for index, frame in enumerate(self._frames):
            boundary = frame.kind == "content" or (frame.kind == "final" and not final_reached)
            final_reached = final_reached or frame.kind == "final"
            if (
                boundary
                and faults.fail_mid_stream_after is not None
                and sent_content >= faults.fail_mid_stream_after
            ):
                await self._fail(send, sent_content)
                return
            if boundary and faults.hold_stream and not held and sent_content >= faults.hold_after_chunks:
                held = True
                release = self._host.release
                assert release is not None
                self._host.bump(streams_held=1)
                try:
                    woke = await first_of(None, release, stopping, disconnected)
                finally:
                    self._host.bump(streams_held=-1)
                if woke is not release:
                    self._interrupted(stopping)
                    return
            delay = faults.first_token_delay_s if index == 0 else faults.chunk_delay_s
            if delay > 0 and await first_of(delay, stopping, disconnected) is not None:
                self._interrupted(stopping)
                return
            if disconnected.is_set():
                self._end("cancelled")
                return
            if index == last:
                self._end("completed")
            await send({"type": "http.response.body", "body": frame.data, "more_body": True})
            if frame.kind == "content":
                sent_content += 1
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _interrupted(self, stopping: asyncio.Event) -> None:
        self._end("cancelled")
        if stopping.is_set():
            raise InjectedStreamCut("upstream stopping")

    async def _fail(self, send: Send, sent_content: int) -> None:
        faults = self._faults
        message = (
            f"fake upstream {self._host.name!r}: injected mid-stream failure after {sent_content} chunk(s) "
            f"(request #{self._number})"
        )
        self._end("failed")
        if faults.mid_stream_mode == "disconnect":
            raise InjectedStreamCut(message)
        error = error_body(faults.error_status, message)
        if self._endpoint == "chat_completions":
            data = sse(error)
        else:
            inner = error["error"]
            data = sse(
                {
                    "type": "error",
                    "code": inner["code"],
                    "message": message,
                    "param": None,
                    "sequence_number": 0,
                },
                "error",
            )
        await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

"""A fault-injecting, OpenAI-compatible HTTP server on 127.0.0.1 for tests, benchmarks and drills.

This module owns :class:`FakeUpstream` (one Starlette app served by uvicorn in a background thread,
bound to ``127.0.0.1`` only), the :class:`Faults` it can inject, and the counters it keeps. Starlette
and uvicorn are the ``server`` extra: they are imported here, so only code that imports this module
needs them. It never configures logging; uvicorn's records go to the ``uvicorn.*`` loggers as usual,
except the tracebacks of streams this module cuts on purpose, which a filter on ``uvicorn.error`` drops.

Endpoints (all under ``/v1``)::

    POST /v1/chat/completions   JSON, or SSE when ``"stream": true`` (ends with ``data: [DONE]``)
    POST /v1/responses          Responses API JSON, or its SSE event stream when ``"stream": true``
    POST /v1/embeddings         deterministic small unit vectors (``float`` or ``base64`` encoding)
    GET  /v1/models             a one-entry model list

Control plane (not counted as requests, never faulted)::

    GET  /_control/stats        counters plus the current faults
    GET  /_control/faults       the current faults
    POST /_control/faults       replace the faults (JSON object of Faults fields; ``?merge=true`` merges)
    POST /_control/release      release held streams (see ``Faults.hold_stream``)
    POST /_control/reset        clear faults and counters

Faults apply to every ``/v1`` request. Each request takes a snapshot of the faults when it arrives, so
changing them affects the next requests, never ones already in flight. Requests are numbered from 1 in
arrival order (``Faults.fail_nth`` refers to those numbers). For a request the order is: ``hang`` ->
``latency_s`` -> injected error (``fail_nth`` / ``error_rate``) -> answer. For a stream, after the
headers: ``first_token_delay_s`` -> chunks separated by ``chunk_delay_s``, where the stream may be held
(``hold_stream``) or cut (``fail_mid_stream_after``) at a content-chunk boundary.

Waiting is event-driven: ``start()`` returns once uvicorn has started, ``wait_until`` /
``async_wait_until`` / ``wait_for_in_flight`` are woken by counter changes, and every injected delay is
cut short by ``stop()``, so ``stop()`` returns promptly even with hanging or held requests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, Self, TypedDict, cast

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = [
    "ENDPOINTS",
    "Endpoint",
    "FakeUpstream",
    "Faults",
    "MidStreamMode",
    "RecordedRequest",
    "UpstreamStats",
]

HOST: Final = "127.0.0.1"
"""The only address a FakeUpstream ever binds."""

Endpoint = Literal["chat_completions", "responses", "embeddings", "models"]
ENDPOINTS: Final[tuple[Endpoint, ...]] = ("chat_completions", "responses", "embeddings", "models")

MidStreamMode = Literal["disconnect", "error_event"]

_START_TIMEOUT_S: Final = 10.0
_STOP_TIMEOUT_S: Final = 5.0
_RECORDED_MAX: Final = 1000
_DEFAULT_EMBEDDING_DIMS: Final = 8
_PIECE_RE: Final = re.compile(r"\S+\s*|\s+")

_JSON = dict[str, Any]


# --------------------------------------------------------------------------------------------- faults


@dataclass(frozen=True, slots=True)
class Faults:
    """What a :class:`FakeUpstream` does wrong. Immutable; swap it with ``FakeUpstream.set_faults``.

    All delays are in seconds and are interrupted by ``FakeUpstream.stop()``.
    """

    latency_s: float = 0.0
    """Delay before the response status/headers (applies to errors too)."""
    first_token_delay_s: float = 0.0
    """Streams only: delay between the headers and the first chunk."""
    chunk_delay_s: float = 0.0
    """Streams only: delay before every chunk after the first."""
    error_rate: float = 0.0
    """Fraction (0..1) of requests answered with ``error_status``; reproducible for a given ``seed``."""
    error_status: int = 500
    """HTTP status of injected errors (400..599; typically 500, 429 or 503)."""
    fail_nth: AbstractSet[int] = frozenset()
    """1-based request numbers that fail with ``error_status`` (numbering spans all ``/v1`` requests)."""
    fail_mid_stream_after: int | None = None
    """Streams only: cut the stream after this many content chunks (0 = before any text)."""
    mid_stream_mode: MidStreamMode = "disconnect"
    """How a stream is cut: drop the connection mid-body, or send an SSE error event and end."""
    bad_answer: str | None = None
    """If set, this text replaces the configured answer (simulates a wrong answer)."""
    hang: bool = False
    """Never answer: the request waits until the client disconnects or the upstream stops."""
    hold_stream: bool = False
    """Streams only: pause after ``hold_after_chunks`` content chunks until ``release_streams()``."""
    hold_after_chunks: int = 1
    """Where a held stream pauses, counted in content chunks already sent."""
    seed: int = 0
    """Seed of the random generator behind ``error_rate``; reseeded whenever faults are set."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fail_nth", frozenset(self.fail_nth))
        for name in ("latency_s", "first_token_delay_s", "chunk_delay_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be within 0..1, got {self.error_rate!r}")
        if not 400 <= self.error_status <= 599:
            raise ValueError(
                f"error_status must be an HTTP error status (400..599), got {self.error_status!r}"
            )
        if any(n < 1 for n in self.fail_nth):
            raise ValueError(f"fail_nth holds 1-based request numbers, got {sorted(self.fail_nth)!r}")
        if self.fail_mid_stream_after is not None and self.fail_mid_stream_after < 0:
            raise ValueError(f"fail_mid_stream_after must be >= 0, got {self.fail_mid_stream_after!r}")
        if self.mid_stream_mode not in ("disconnect", "error_event"):
            raise ValueError(
                f"mid_stream_mode must be 'disconnect' or 'error_event', got {self.mid_stream_mode!r}"
            )
        if self.hold_after_chunks < 0:
            raise ValueError(f"hold_after_chunks must be >= 0, got {self.hold_after_chunks!r}")

    def to_dict(self) -> _JSON:
        """A JSON-serialisable form (the format of ``/_control/faults``)."""
        data = dataclasses.asdict(self)
        data["fail_nth"] = sorted(self.fail_nth)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: Faults | None = None) -> Faults:
        """Build faults from JSON-like data; fields missing from ``data`` come from ``base`` (or defaults).

        Raises ``ValueError`` for unknown fields or values of the wrong type.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        changes: dict[str, Any] = {}
        for key, value in data.items():
            changes[key] = _coerce_fault_field(key, value)
        return dataclasses.replace(base if base is not None else cls(), **changes)


def _coerce_fault_field(key: str, value: Any) -> Any:
    def fail(kind: str) -> ValueError:
        return ValueError(f"fault field {key!r} must be {kind}, got {value!r}")

    if key in ("latency_s", "first_token_delay_s", "chunk_delay_s", "error_rate"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail("a number")
        return float(value)
    if key in ("error_status", "hold_after_chunks", "seed"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if key == "fail_mid_stream_after":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise fail("an integer or null")
        return value
    if key == "fail_nth":
        if not isinstance(value, list | tuple | set | frozenset) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in value
        ):
            raise fail("a list of integers")
        return frozenset(value)
    if key in ("hang", "hold_stream"):
        if not isinstance(value, bool):
            raise fail("a boolean")
        return value
    if key == "bad_answer":
        if value is not None and not isinstance(value, str):
            raise fail("a string or null")
        return value
    if key == "mid_stream_mode":
        if value not in ("disconnect", "error_event"):
            raise fail("'disconnect' or 'error_event'")
        return value
    raise fail("a known field")  # pragma: no cover - from_dict rejects unknown keys first


# ---------------------------------------------------------------------------------------------- stats


class UpstreamStats(TypedDict):
    """Counters of a :class:`FakeUpstream` (a snapshot; control-plane requests are not counted)."""

    requests: int
    """``/v1`` requests received (also the number of the latest request)."""
    errors: int
    """Injected failures: error responses plus streams cut mid-way."""
    in_flight: int
    """Requests whose response (or stream) has not finished yet."""
    hanging: int
    """Requests currently hanging (``Faults.hang``)."""
    streams_started: int
    streams_completed: int
    """Streams that sent their last chunk (counted just before it is sent)."""
    streams_failed: int
    """Streams cut by ``fail_mid_stream_after``."""
    streams_cancelled: int
    """Streams that ended early because the client went away or the upstream stopped."""
    streams_held: int
    """Streams currently paused by ``hold_stream``."""
    endpoints: dict[str, int]
    """Requests per endpoint: ``chat_completions``, ``responses``, ``embeddings``, ``models``."""


def _new_stats() -> UpstreamStats:
    return UpstreamStats(
        requests=0,
        errors=0,
        in_flight=0,
        hanging=0,
        streams_started=0,
        streams_completed=0,
        streams_failed=0,
        streams_cancelled=0,
        streams_held=0,
        endpoints=dict.fromkeys(ENDPOINTS, 0),
    )


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One ``/v1`` request as received (most recent ones are kept, see ``recorded_requests``)."""

    number: int
    endpoint: Endpoint
    body: _JSON
    headers: dict[str, str]


@dataclass(slots=True)
class _AsyncWaiter:
    predicate: Callable[[UpstreamStats], bool]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[bool]


# ------------------------------------------------------------------------------------ server plumbing


class _InjectedStreamCut(Exception):
    """Raised inside the ASGI app to drop a streaming connection mid-body on purpose."""


class _DropInjectedCuts(logging.Filter):
    """Keeps uvicorn from logging a traceback for every stream this module cuts on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _InjectedStreamCut)


_log_filter_lock = threading.Lock()
_log_filter_installed = False


def _install_log_filter() -> None:
    global _log_filter_installed
    with _log_filter_lock:
        if not _log_filter_installed:
            logging.getLogger("uvicorn.error").addFilter(_DropInjectedCuts())
            _log_filter_installed = True


class _Server(uvicorn.Server):
    """uvicorn.Server that reports the moment it accepts connections and wakes up at once on stop."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started
        self.stopping: asyncio.Event | None = None
        """Set (on the server loop) right after ``should_exit``; set before ``serve()`` is awaited."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()

    async def main_loop(self) -> None:
        # uvicorn's own loop polls should_exit every 0.1 s; same ticks, but woken by stop() at once.
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            if self.stopping is None:
                await asyncio.sleep(0.1)
            else:
                await _first_of(0.1, self.stopping)


async def _first_of(limit_s: float | None, *events: asyncio.Event) -> asyncio.Event | None:
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
async def _disconnect_watch(receive: Receive) -> AsyncIterator[asyncio.Event]:
    """An event set when the client disconnects (only valid once the request body has been read)."""
    disconnected = asyncio.Event()
    task = asyncio.ensure_future(_watch_disconnect(receive, disconnected))
    try:
        yield disconnected
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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


def _error_body(status: int, message: str) -> _JSON:
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
class _Frame:
    data: bytes
    kind: Literal["pre", "content", "final"]


def _sse(payload: _JSON | str, event: str | None = None) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {data}\n\n".encode()


# --------------------------------------------------------------------------------------- the upstream


class FakeUpstream:
    """A fault-injecting OpenAI-compatible server on ``127.0.0.1``, served from a background thread.

    The port is reserved (bound, not yet listening) at construction, so ``port`` and ``base_url`` are
    valid immediately; ``port=0`` picks a free ephemeral port. ``start()`` serves, ``stop()`` shuts
    down; both are idempotent and the pair may be repeated (the port is kept). Use as a context manager
    (sync or async). Any number of instances can run in one process.
    """

    def __init__(self, name: str, *, answer: str = "ok", port: int = 0) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be within 0..65535, got {port!r}")
        self.name = name
        self.answer = answer
        """The text of every answer (unless ``Faults.bad_answer`` is set); may be changed at any time."""
        self._cond = threading.Condition()
        self._faults = Faults()
        self._rng = random.Random(self._faults.seed)
        self._stats = _new_stats()
        self._async_waiters: list[_AsyncWaiter] = []
        self._recorded: deque[RecordedRequest] = deque(maxlen=_RECORDED_MAX)
        self._header_name = name.encode("latin-1", "replace").decode("latin-1")

        self._sock: socket.socket | None = self._bind(port)
        self.port: int = self._sock.getsockname()[1]
        self._lifecycle = threading.Lock()
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._release: asyncio.Event | None = None
        self._app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/responses", self._responses, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/_control/stats", self._control_stats, methods=["GET"]),
                Route("/_control/faults", self._control_faults, methods=["GET", "POST"]),
                Route("/_control/release", self._control_release, methods=["POST"]),
                Route("/_control/reset", self._control_reset, methods=["POST"]),
            ]
        )

    # ------------------------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` — what to pass as ``base_url`` / ``api_base``."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the server root; the control plane lives at ``/_control``)."""
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @staticmethod
    def _bind(port: int) -> socket.socket:
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose listening
        # socket says so, and without it every response costs a ~40 ms Nagle/delayed-ACK stall.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, port))
        except BaseException:
            sock.close()
            raise
        return sock

    def start(self) -> Self:
        """Serve; returns once uvicorn accepts connections. A no-op when already running."""
        with self._lifecycle:
            if self.running:
                return self
            _install_log_filter()
            if self._sock is None:
                self._sock = self._bind(self.port)
            sock = self._sock
            config = uvicorn.Config(
                self._app,
                loop="asyncio",
                http="h11",
                lifespan="off",
                # No logging configuration at all: uvicorn's log_config/log_level/access_log=False would
                # reconfigure process-wide loggers. Its records go to "uvicorn.*" and propagate as usual.
                log_config=None,
                log_level=None,
                timeout_graceful_shutdown=int(_STOP_TIMEOUT_S),
            )
            ready = threading.Event()
            server = _Server(config, on_started=ready.set)
            thread = threading.Thread(
                target=self._serve_in_thread,
                args=(server, sock, ready),
                name=f"fake-upstream-{self.name}-{self.port}",
                daemon=True,
            )
            self._server = server
            self._thread = thread
            thread.start()
            if not ready.wait(_START_TIMEOUT_S) or not server.started:
                server.should_exit = True
                thread.join(_STOP_TIMEOUT_S)
                self._thread = None
                self._server = None
                self._sock = None
                sock.close()
                raise RuntimeError(f"fake upstream {self.name!r} failed to start on {self.url}")
            return self

    def _serve_in_thread(self, server: _Server, sock: socket.socket, ready: threading.Event) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            self._release = asyncio.Event()
            server.stopping = self._stopping
            await server.serve(sockets=[sock])

        try:
            asyncio.run(main())
        finally:
            ready.set()  # unblock start() if startup failed

    def stop(self) -> None:
        """Shut down and join the server thread; hanging/held requests are cut. Idempotent."""
        with self._lifecycle:
            thread, server, loop, stopping = self._thread, self._server, self._loop, self._stopping
            if thread is None or server is None:
                if self._sock is not None:  # never started: give the reserved port back
                    self._sock.close()
                    self._sock = None
                return
            server.should_exit = True
            if loop is not None and stopping is not None:
                with contextlib.suppress(RuntimeError):  # loop already closed
                    loop.call_soon_threadsafe(stopping.set)
            thread.join(_STOP_TIMEOUT_S)
            if thread.is_alive():
                server.force_exit = True
                thread.join(_STOP_TIMEOUT_S)
            if thread.is_alive():
                raise RuntimeError(f"fake upstream {self.name!r} did not stop within {2 * _STOP_TIMEOUT_S}s")
            self._thread = None
            self._server = None
            self._loop = None
            self._stopping = None
            self._release = None
            if self._sock is not None:  # uvicorn closes it on shutdown; make sure of it
                self._sock.close()
                self._sock = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def deployment(self, model_name: str, deployment_id: str, **litellm_params: Any) -> dict[str, Any]:
        """A LiteLLM ``model_list`` entry that serves ``model_name`` from this upstream."""
        params = {"model": "openai/fake", "api_key": "sk-fake", "api_base": self.base_url, **litellm_params}
        return {"model_name": model_name, "litellm_params": params, "model_info": {"id": deployment_id}}

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"FakeUpstream({self.name!r}, {self.base_url}, {state})"

    # ------------------------------------------------------------------------------- faults & stats

    @property
    def faults(self) -> Faults:
        """The current faults (assigning replaces them, like ``set_faults``)."""
        with self._cond:
            return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self.set_faults(faults)

    def set_faults(self, faults: Faults | None = None, /, **changes: Any) -> Faults:
        """Replace the faults with ``faults`` (default: no faults) updated by ``changes``.

        ``set_faults(error_rate=1.0)`` therefore clears every other fault; see ``update_faults``.
        Reseeds the ``error_rate`` generator. Returns the new faults.
        """
        new = dataclasses.replace(faults if faults is not None else Faults(), **changes)
        with self._cond:
            self._faults = new
            self._rng = random.Random(new.seed)
        return new

    def update_faults(self, **changes: Any) -> Faults:
        """Change some fault fields, keeping the others. Returns the new faults."""
        with self._cond:
            return self.set_faults(self._faults, **changes)

    def clear_faults(self) -> None:
        self.set_faults()

    def stats(self) -> UpstreamStats:
        """A snapshot of the counters."""
        with self._cond:
            return self._snapshot_locked()

    def reset(self) -> None:
        """Clear faults, counters and recorded requests (in-flight requests keep their own state)."""
        with self._cond:
            in_flight, hanging, held = (
                self._stats["in_flight"],
                self._stats["hanging"],
                self._stats["streams_held"],
            )
            self._stats = _new_stats()
            self._stats["in_flight"], self._stats["hanging"], self._stats["streams_held"] = (
                in_flight,
                hanging,
                held,
            )
            self._recorded.clear()
            self.set_faults()
            self._notify_locked()

    def recorded_requests(self) -> list[RecordedRequest]:
        """The most recent ``/v1`` requests (up to 1000), oldest first."""
        with self._cond:
            return list(self._recorded)

    def release_streams(self) -> None:
        """Let every stream currently held by ``Faults.hold_stream`` send its remaining chunks.

        Streams that reach their hold point later are held again while ``hold_stream`` is set.
        """
        loop = self._loop
        if loop is None:
            return

        def release() -> None:
            event = self._release
            self._release = asyncio.Event()
            if event is not None:
                event.set()

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(release)

    def wait_until(self, predicate: Callable[[UpstreamStats], bool], timeout_s: float = 5.0) -> bool:
        """Block until ``predicate(stats)`` holds; ``False`` on timeout (like ``threading.Event.wait``).

        Blocks the calling thread: from async code use ``async_wait_until``.
        """
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._snapshot_locked()), timeout_s)

    async def async_wait_until(
        self,
        predicate: Callable[[UpstreamStats], bool],
        timeout_s: float = 5.0,
    ) -> bool:
        """Await until ``predicate(stats)`` holds without blocking the event loop; ``False`` on timeout."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        waiter = _AsyncWaiter(predicate, loop, future)
        with self._cond:
            if predicate(self._snapshot_locked()):
                return True
            self._async_waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return False
        finally:
            with self._cond:
                if waiter in self._async_waiters:
                    self._async_waiters.remove(waiter)

    async def wait_for_in_flight(self, n: int, timeout_s: float = 5.0) -> bool:
        """Await until at least ``n`` requests are in flight; ``False`` on timeout."""
        return await self.async_wait_until(lambda s: s["in_flight"] >= n, timeout_s)

    def _snapshot_locked(self) -> UpstreamStats:
        snapshot = self._stats.copy()
        snapshot["endpoints"] = dict(self._stats["endpoints"])
        return snapshot

    def _notify_locked(self) -> None:
        self._cond.notify_all()
        if not self._async_waiters:
            return
        snapshot = self._snapshot_locked()
        for waiter in list(self._async_waiters):
            error: Exception | None = None
            try:
                satisfied = waiter.predicate(snapshot)
            except Exception as exc:  # surfaces in the awaiting task
                satisfied, error = True, exc
            if satisfied:
                self._async_waiters.remove(waiter)
                with contextlib.suppress(RuntimeError):  # waiter's loop is closed
                    waiter.loop.call_soon_threadsafe(_settle, waiter.future, error)

    def _bump(self, **deltas: int) -> None:
        with self._cond:
            stats = cast(dict[str, Any], self._stats)
            for key, delta in deltas.items():
                stats[key] += delta
            self._notify_locked()

    # ------------------------------------------------------------------------------ request handling

    def _admit(self, endpoint: Endpoint, body: _JSON, request: Request) -> tuple[int, Faults, bool]:
        """Count a new request; returns its number, the faults snapshot and whether it must fail."""
        with self._cond:
            self._stats["requests"] += 1
            self._stats["in_flight"] += 1
            self._stats["endpoints"][endpoint] += 1
            number = self._stats["requests"]
            faults = self._faults
            fail = number in faults.fail_nth
            if faults.error_rate > 0:
                fail = (self._rng.random() < faults.error_rate) or fail
            self._recorded.append(RecordedRequest(number, endpoint, body, dict(request.headers)))
            self._notify_locked()
        return number, faults, fail

    def _headers(self, number: int) -> dict[str, str]:
        return {"x-fake-upstream": self._header_name, "x-fake-upstream-request": str(number)}

    def _error(self, status: int, message: str, number: int | None = None) -> JSONResponse:
        headers = self._headers(number) if number is not None else {"x-fake-upstream": self._header_name}
        return JSONResponse(_error_body(status, message), status_code=status, headers=headers)

    async def _read_json(self, request: Request) -> _JSON | JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return self._error(400, "request body must be a JSON object")
        return body

    async def _chat_completions(self, request: Request) -> Response:
        return await self._handle(request, "chat_completions")

    async def _responses(self, request: Request) -> Response:
        return await self._handle(request, "responses")

    async def _embeddings(self, request: Request) -> Response:
        return await self._handle(request, "embeddings")

    async def _models(self, request: Request) -> Response:
        return await self._handle(request, "models")

    async def _handle(self, request: Request, endpoint: Endpoint) -> Response:
        body: _JSON = {}
        if request.method == "POST":
            parsed = await self._read_json(request)
            if isinstance(parsed, JSONResponse):
                return parsed
            body = parsed
        number, faults, fail = self._admit(endpoint, body, request)
        handed_off = False
        try:
            stopping = self._stopping
            assert stopping is not None
            if faults.hang or faults.latency_s > 0:
                async with _disconnect_watch(request.receive) as disconnected:
                    if faults.hang:
                        self._bump(hanging=1)
                        try:
                            await _first_of(None, stopping, disconnected)
                        finally:
                            self._bump(hanging=-1)
                        return self._error(503, f"fake upstream {self.name!r} is stopping", number)
                    if await _first_of(faults.latency_s, stopping, disconnected) is not None:
                        return self._error(503, f"fake upstream {self.name!r} is stopping", number)
            if fail:
                self._bump(errors=1)
                message = (
                    f"fake upstream {self.name!r}: injected {faults.error_status} error (request #{number})"
                )
                return self._error(faults.error_status, message, number)

            answer = faults.bad_answer if faults.bad_answer is not None else self.answer
            model = str(body.get("model") or self.name)
            if endpoint in ("chat_completions", "responses") and body.get("stream") is True:
                frames = (
                    self._chat_frames(body, model, answer)
                    if endpoint == "chat_completions"
                    else self._response_frames(body, model, answer)
                )
                self._bump(streams_started=1)
                handed_off = True
                return _StreamResponse(self, frames, faults, endpoint, number)
            if endpoint == "chat_completions":
                return JSONResponse(self._chat_body(body, model, answer), headers=self._headers(number))
            if endpoint == "responses":
                return JSONResponse(self._response_body(body, model, answer), headers=self._headers(number))
            if endpoint == "embeddings":
                return self._embeddings_response(body, model, number)
            return JSONResponse(self._models_body(), headers=self._headers(number))
        finally:
            if not handed_off:
                self._bump(in_flight=-1)

    # ------------------------------------------------------------------------------------ payloads

    def _chat_usage(self, body: _JSON, answer: str) -> _JSON:
        prompt = _count_words(body.get("messages", []))
        completion = len(_pieces(answer))
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def _chat_body(self, body: _JSON, model: str, answer: str) -> _JSON:
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
            "usage": self._chat_usage(body, answer),
        }

    def _chat_frames(self, body: _JSON, model: str, answer: str) -> list[_Frame]:
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake_upstream",
        }

        def chunk(delta: _JSON, finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _sse({**base, "choices": [choice]})

        frames = [_Frame(chunk({"role": "assistant", "content": ""}), "pre")]
        frames += [_Frame(chunk({"content": piece}), "content") for piece in _pieces(answer)]
        frames.append(_Frame(chunk({}, "stop"), "final"))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            usage = self._chat_usage(body, answer)
            frames.append(_Frame(_sse({**base, "choices": [], "usage": usage}), "final"))
        frames.append(_Frame(_sse("[DONE]"), "final"))
        return frames

    def _response_usage(self, body: _JSON, answer: str) -> _JSON:
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
        self, body: _JSON, model: str, resp_id: str, status: str, output: list[_JSON], usage: _JSON | None
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

    @staticmethod
    def _message_item(item_id: str, answer: str, status: str = "completed") -> _JSON:
        return {
            "type": "message",
            "id": item_id,
            "status": status,
            "role": "assistant",
            "content": [{"type": "output_text", "text": answer, "annotations": []}],
        }

    def _response_body(self, body: _JSON, model: str, answer: str) -> _JSON:
        item = self._message_item(f"msg_{uuid.uuid4().hex}", answer)
        usage = self._response_usage(body, answer)
        return self._response_object(body, model, f"resp_{uuid.uuid4().hex}", "completed", [item], usage)

    def _response_frames(self, body: _JSON, model: str, answer: str) -> list[_Frame]:
        resp_id, item_id = f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"
        sequence = iter(range(1_000_000))

        def event(kind: Literal["pre", "content", "final"], event_type: str, **fields: Any) -> _Frame:
            payload = {"type": event_type, "sequence_number": next(sequence), **fields}
            return _Frame(_sse(payload, event_type), kind)

        in_progress = self._response_object(body, model, resp_id, "in_progress", [], None)
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
        done_item = self._message_item(item_id, answer)
        completed = self._response_object(
            body, model, resp_id, "completed", [done_item], self._response_usage(body, answer)
        )
        frames += [
            event("final", "response.output_text.done", text=answer, logprobs=[], **where),
            event("final", "response.content_part.done", part={**part, "text": answer}, **where),
            event("final", "response.output_item.done", output_index=0, item=done_item),
            event("final", "response.completed", response=completed),
        ]
        return frames

    def _embeddings_response(self, body: _JSON, model: str, number: int) -> Response:
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
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return JSONResponse(payload, headers=self._headers(number))

    def _models_body(self) -> _JSON:
        return {
            "object": "list",
            "data": [{"id": self.name, "object": "model", "created": 0, "owned_by": "fake-upstream"}],
        }

    # ---------------------------------------------------------------------------------- control plane

    def _control_payload(self) -> _JSON:
        return {"name": self.name, "port": self.port, **self.stats(), "faults": self.faults.to_dict()}

    async def _control_stats(self, request: Request) -> Response:
        return JSONResponse(self._control_payload())

    async def _control_faults(self, request: Request) -> Response:
        if request.method == "POST":
            parsed = await self._read_json(request)
            if isinstance(parsed, JSONResponse):
                return parsed
            merge = request.query_params.get("merge", "").lower() in ("1", "true", "yes")
            try:
                with self._cond:
                    new = Faults.from_dict(parsed, base=self._faults if merge else None)
                    self.set_faults(new)
            except (ValueError, TypeError) as exc:
                return self._error(400, str(exc))
        return JSONResponse(self.faults.to_dict())

    async def _control_release(self, request: Request) -> Response:
        self.release_streams()
        return JSONResponse({"released": True})

    async def _control_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse(self._control_payload())


def _settle(future: asyncio.Future[bool], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(True)
    else:
        future.set_exception(error)


class _StreamResponse(Response):
    """Sends pre-rendered SSE frames, applying the stream faults of one request.

    Owns the request's ``in_flight`` slot from the moment the handler returns it.
    """

    media_type = "text/event-stream"

    def __init__(
        self, upstream: FakeUpstream, frames: list[_Frame], faults: Faults, endpoint: Endpoint, number: int
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({**upstream._headers(number), "cache-control": "no-cache"})
        self._upstream = upstream
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
            self._upstream._bump(in_flight=-1, streams_completed=1)
        elif outcome == "failed":
            self._upstream._bump(in_flight=-1, streams_failed=1, errors=1)
        else:
            self._upstream._bump(in_flight=-1, streams_cancelled=1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            stopping = self._upstream._stopping
            assert stopping is not None
            async with _disconnect_watch(receive) as disconnected:
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
                release = self._upstream._release
                assert release is not None
                self._upstream._bump(streams_held=1)
                try:
                    woke = await _first_of(None, release, stopping, disconnected)
                finally:
                    self._upstream._bump(streams_held=-1)
                if woke is not release:
                    self._interrupted(stopping)
                    return
            delay = faults.first_token_delay_s if index == 0 else faults.chunk_delay_s
            if delay > 0 and await _first_of(delay, stopping, disconnected) is not None:
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
            raise _InjectedStreamCut("upstream stopping")

    async def _fail(self, send: Send, sent_content: int) -> None:
        upstream, faults = self._upstream, self._faults
        message = (
            f"fake upstream {upstream.name!r}: injected mid-stream failure after {sent_content} chunk(s) "
            f"(request #{self._number})"
        )
        self._end("failed")
        if faults.mid_stream_mode == "disconnect":
            raise _InjectedStreamCut(message)
        error = _error_body(faults.error_status, message)
        if self._endpoint == "chat_completions":
            data = _sse(error)
        else:
            inner = error["error"]
            data = _sse(
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


def main(argv: list[str] | None = None) -> int:
    """``python -m litellm_canary.fake_upstream --name stable --port 8101``: serve until interrupted."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m litellm_canary.fake_upstream", description=main.__doc__)
    parser.add_argument("--name", default="fake", help="upstream name (x-fake-upstream header, logs)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--answer", default="ok", help="the text of every answer")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be within 0..65535, got {args.port}")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        upstream = FakeUpstream(args.name, answer=args.answer, port=args.port)
    except OSError as error:
        parser.error(f"--port {args.port}: {error.strerror}")
    with upstream:
        print(f"fake upstream {args.name!r} serving {upstream.base_url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The fake upstream itself: :class:`FakeUpstream`, its routes, its faults and its counters.

This module owns the object tests and benchmarks hold: the Starlette app (``/v1`` endpoints and the
``/_control`` plane), admitting a request (numbering, the faults snapshot, the injected error), the
non-streamed answers, and the public API (faults, stats, waits, ``deployment``). Serving is
:mod:`~litellm_canary.testing.fake_upstream.server`'s job, streams
:mod:`~litellm_canary.testing.fake_upstream.streaming`'s, payloads
:mod:`~litellm_canary.testing.fake_upstream.openai_payloads`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from litellm_canary.testing.fake_upstream.counters import (
    Counters,
    Endpoint,
    RecordedRequest,
    UpstreamStats,
    new_stats,
)
from litellm_canary.testing.fake_upstream.faults import Faults
from litellm_canary.testing.fake_upstream.openai_payloads import (
    chat_body,
    chat_frames,
    embeddings_body,
    error_body,
    models_body,
    response_body,
    response_frames,
)
from litellm_canary.testing.fake_upstream.server import HOST, BackgroundServer
from litellm_canary.testing.fake_upstream.streaming import StreamResponse, disconnect_watch, first_of

__all__ = ["FakeUpstream"]

_JSON = dict[str, Any]


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
        self._counters = Counters()
        self._cond = self._counters.cond  # guards the faults and the counters together
        self._faults = Faults()
        self._rng = random.Random(self._faults.seed)
        self._header_name = name.encode("latin-1", "replace").decode("latin-1")
        self._release: asyncio.Event | None = None
        app = Starlette(
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
        self._server = BackgroundServer(app, port, label=name, on_loop=self._on_loop)
        self.port: int = self._server.port

    def _on_loop(self) -> None:
        self._release = asyncio.Event()

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
        return self._server.running

    def start(self) -> Self:
        """Serve; returns once uvicorn accepts connections. A no-op when already running."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Shut down and join the server thread; hanging/held requests are cut. Idempotent."""
        self._server.stop()

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
            return self._counters.snapshot_locked()

    def reset(self) -> None:
        """Clear faults, counters and recorded requests (in-flight requests keep their own state)."""
        with self._cond:
            in_flight, hanging, held = (
                self._counters.stats["in_flight"],
                self._counters.stats["hanging"],
                self._counters.stats["streams_held"],
            )
            self._counters.stats = new_stats()
            (
                self._counters.stats["in_flight"],
                self._counters.stats["hanging"],
                self._counters.stats["streams_held"],
            ) = (
                in_flight,
                hanging,
                held,
            )
            self._counters.recorded.clear()
            self.set_faults()
            self._counters.notify_locked()

    def recorded_requests(self) -> list[RecordedRequest]:
        """The most recent ``/v1`` requests (up to 1000), oldest first."""
        with self._cond:
            return list(self._counters.recorded)

    def release_streams(self) -> None:
        """Let every stream currently held by ``Faults.hold_stream`` send its remaining chunks.

        Streams that reach their hold point later are held again while ``hold_stream`` is set.
        """
        loop = self._server.loop
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
        return self._counters.wait_until(predicate, timeout_s)

    async def async_wait_until(
        self,
        predicate: Callable[[UpstreamStats], bool],
        timeout_s: float = 5.0,
    ) -> bool:
        """Await until ``predicate(stats)`` holds without blocking the event loop; ``False`` on timeout."""
        return await self._counters.async_wait_until(predicate, timeout_s)

    async def wait_for_in_flight(self, n: int, timeout_s: float = 5.0) -> bool:
        """Await until at least ``n`` requests are in flight; ``False`` on timeout."""
        return await self.async_wait_until(lambda s: s["in_flight"] >= n, timeout_s)

    # ------------------------------------------------------------------------------ request handling

    def _admit(self, endpoint: Endpoint, body: _JSON, request: Request) -> tuple[int, Faults, bool]:
        """Count a new request; returns its number, the faults snapshot and whether it must fail."""
        with self._cond:
            self._counters.stats["requests"] += 1
            self._counters.stats["in_flight"] += 1
            self._counters.stats["endpoints"][endpoint] += 1
            number = self._counters.stats["requests"]
            faults = self._faults
            fail = number in faults.fail_nth
            if faults.error_rate > 0:
                fail = (self._rng.random() < faults.error_rate) or fail
            self._counters.recorded.append(RecordedRequest(number, endpoint, body, dict(request.headers)))
            self._counters.notify_locked()
        return number, faults, fail

    def _headers(self, number: int) -> dict[str, str]:
        return {"x-fake-upstream": self._header_name, "x-fake-upstream-request": str(number)}

    def _error(self, status: int, message: str, number: int | None = None) -> JSONResponse:
        headers = self._headers(number) if number is not None else {"x-fake-upstream": self._header_name}
        return JSONResponse(error_body(status, message), status_code=status, headers=headers)

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
            stopping = self._server.stopping
            assert stopping is not None
            if faults.hang or faults.latency_s > 0:
                async with disconnect_watch(request.receive) as disconnected:
                    if faults.hang:
                        self._counters.bump(hanging=1)
                        try:
                            await first_of(None, stopping, disconnected)
                        finally:
                            self._counters.bump(hanging=-1)
                        return self._error(503, f"fake upstream {self.name!r} is stopping", number)
                    if await first_of(faults.latency_s, stopping, disconnected) is not None:
                        return self._error(503, f"fake upstream {self.name!r} is stopping", number)
            if fail:
                self._counters.bump(errors=1)
                message = (
                    f"fake upstream {self.name!r}: injected {faults.error_status} error (request #{number})"
                )
                return self._error(faults.error_status, message, number)

            answer = faults.bad_answer if faults.bad_answer is not None else self.answer
            model = str(body.get("model") or self.name)
            if endpoint in ("chat_completions", "responses") and body.get("stream") is True:
                frames = (
                    chat_frames(body, model, answer)
                    if endpoint == "chat_completions"
                    else response_frames(body, model, answer)
                )
                self._counters.bump(streams_started=1)
                handed_off = True
                return StreamResponse(
                    _StreamSide(self), self._headers(number), frames, faults, endpoint, number
                )
            if endpoint == "chat_completions":
                return JSONResponse(chat_body(body, model, answer), headers=self._headers(number))
            if endpoint == "responses":
                return JSONResponse(response_body(body, model, answer), headers=self._headers(number))
            if endpoint == "embeddings":
                return JSONResponse(embeddings_body(body, model), headers=self._headers(number))
            return JSONResponse(models_body(self.name), headers=self._headers(number))
        finally:
            if not handed_off:
                self._counters.bump(in_flight=-1)

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


@dataclass(frozen=True)
class _StreamSide:
    """The :class:`~litellm_canary.testing.fake_upstream.streaming.StreamHost` of one upstream."""

    upstream: FakeUpstream

    @property
    def name(self) -> str:
        return self.upstream.name

    @property
    def stopping(self) -> asyncio.Event | None:
        return self.upstream._server.stopping

    @property
    def release(self) -> asyncio.Event | None:
        return self.upstream._release

    def bump(self, **deltas: int) -> None:
        self.upstream._counters.bump(**deltas)

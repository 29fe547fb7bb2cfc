"""Serving one ASGI app from a background thread: the uvicorn plumbing of a fake upstream.

This module owns :class:`BackgroundServer`: a port on ``127.0.0.1`` reserved (bound, not yet
listening) at construction, uvicorn run on its own event loop in a daemon thread, a ``start()`` that
returns once connections are accepted and a ``stop()`` that wakes the loop at once (``stopping``,
set on that loop, cuts every injected wait short) and joins the thread. Never configures logging.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Final

import uvicorn
from starlette.types import ASGIApp

from litellm_canary.testing.fake_upstream.streaming import first_of, install_log_filter

__all__ = ["HOST", "BackgroundServer"]

HOST: Final = "127.0.0.1"
"""The only address a FakeUpstream ever binds."""

_START_TIMEOUT_S: Final = 10.0
_STOP_TIMEOUT_S: Final = 5.0


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
                await first_of(0.1, self.stopping)


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


class BackgroundServer:
    """``app`` served on ``127.0.0.1:port`` (0: a free port) from a daemon thread; start/stop repeatable.

    ``on_loop`` runs on the server's event loop before it serves (to create loop-bound state);
    ``label`` names the thread and the errors.
    """

    def __init__(self, app: ASGIApp, port: int, *, label: str, on_loop: Callable[[], None]) -> None:
        self._app = app
        self._label = label
        self._on_loop = on_loop
        self._sock: socket.socket | None = _bind(port)
        self.port: int = self._sock.getsockname()[1]
        self._lifecycle = threading.Lock()
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        """Set on the server loop when ``stop()`` begins; None while not serving."""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Serve; returns once uvicorn accepts connections. A no-op when already running."""
        with self._lifecycle:
            if self.running:
                return
            install_log_filter()
            if self._sock is None:
                self._sock = _bind(self.port)
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
                name=f"fake-upstream-{self._label}-{self.port}",
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
                raise RuntimeError(f"fake upstream {self._label!r} failed to start on {self.url}")

    def _serve_in_thread(self, server: _Server, sock: socket.socket, ready: threading.Event) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.stopping = asyncio.Event()
            self._on_loop()
            server.stopping = self.stopping
            await server.serve(sockets=[sock])

        try:
            asyncio.run(main())
        finally:
            ready.set()  # unblock start() if startup failed

    def stop(self) -> None:
        """Shut down and join the server thread; hanging/held requests are cut. Idempotent."""
        with self._lifecycle:
            thread, server, loop, stopping = self._thread, self._server, self.loop, self.stopping
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
                raise RuntimeError(
                    f"fake upstream {self._label!r} did not stop within {2 * _STOP_TIMEOUT_S}s"
                )
            self._thread = None
            self._server = None
            self.loop = None
            self.stopping = None
            if self._sock is not None:  # uvicorn closes it on shutdown; make sure of it
                self._sock.close()
                self._sock = None

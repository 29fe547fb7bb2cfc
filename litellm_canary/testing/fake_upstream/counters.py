"""The counters of a fake upstream and the event-driven waits on them.

This module owns :class:`UpstreamStats` (the counters' snapshot), :class:`RecordedRequest`, and
:class:`Counters`: the counters behind one condition, the most recent requests, and the waiters
(``wait_until`` from a thread, ``async_wait_until`` from any event loop) woken by every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypedDict, cast

__all__ = ["ENDPOINTS", "Counters", "Endpoint", "RecordedRequest", "UpstreamStats", "new_stats"]

Endpoint = Literal["chat_completions", "responses", "embeddings", "models"]
ENDPOINTS: Final[tuple[Endpoint, ...]] = ("chat_completions", "responses", "embeddings", "models")

_RECORDED_MAX: Final = 1000


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


def new_stats() -> UpstreamStats:
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
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(slots=True)
class AsyncWaiter:
    predicate: Callable[[UpstreamStats], bool]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[bool]


def settle(future: asyncio.Future[bool], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(True)
    else:
        future.set_exception(error)


class Counters:
    """The counters and recorded requests of one upstream; ``cond`` guards both (and may guard more)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.stats = new_stats()
        self.recorded: deque[RecordedRequest] = deque(maxlen=_RECORDED_MAX)
        self._async_waiters: list[AsyncWaiter] = []

    def snapshot_locked(self) -> UpstreamStats:
        snapshot = self.stats.copy()
        snapshot["endpoints"] = dict(self.stats["endpoints"])
        return snapshot

    def notify_locked(self) -> None:
        self.cond.notify_all()
        if not self._async_waiters:
            return
        snapshot = self.snapshot_locked()
        for waiter in list(self._async_waiters):
            error: Exception | None = None
            try:
                satisfied = waiter.predicate(snapshot)
            except Exception as exc:  # surfaces in the awaiting task
                satisfied, error = True, exc
            if satisfied:
                self._async_waiters.remove(waiter)
                with contextlib.suppress(RuntimeError):  # waiter's loop is closed
                    waiter.loop.call_soon_threadsafe(settle, waiter.future, error)

    def bump(self, **deltas: int) -> None:
        with self.cond:
            stats = cast(dict[str, Any], self.stats)
            for key, delta in deltas.items():
                stats[key] += delta
            self.notify_locked()

    def wait_until(self, predicate: Callable[[UpstreamStats], bool], timeout_s: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.snapshot_locked()), timeout_s)

    async def async_wait_until(self, predicate: Callable[[UpstreamStats], bool], timeout_s: float) -> bool:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        waiter = AsyncWaiter(predicate, loop, future)
        with self.cond:
            if predicate(self.snapshot_locked()):
                return True
            self._async_waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return False
        finally:
            with self.cond:
                if waiter in self._async_waiters:
                    self._async_waiters.remove(waiter)

"""Waiting until a group's canary has drained: no canary attempt in flight and no canary pin.

:class:`DrainWaiters` is woken by the pins' ``on_canary_idle`` callback (the last closing canary
attempt) from any thread, and :meth:`DrainWaiters.drained` waits on an event of the caller's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from litellm_canary.core.pins import RolloutPins

__all__ = ["DrainWaiters"]


class DrainWaiters:
    """The coroutines waiting in :meth:`drained`, and the wake-up that the pins call."""

    def __init__(self) -> None:
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._lock = threading.Lock()

    def wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    async def drained(self, pins: RolloutPins, timeout: float | None = None) -> bool:
        """Wait until ``pins`` have no canary attempt in flight and no canary pin.

        Returns False on timeout. Waits on the event the last closing canary attempt sets; also wakes
        at the conversation-drain deadline and once a second to expire abandoned attempts.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        event = asyncio.Event()
        with self._lock:
            self._waiters.append((loop, event))
        try:
            while True:
                pins.expire_stale()
                if pins.canary_drained():
                    return True
                wait = 1.0
                if pins.drain_remaining_s() > 0:
                    wait = min(wait, pins.drain_remaining_s())
                if deadline is not None:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return False
                    wait = min(wait, remaining)
                event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), wait)
        finally:
            with self._lock:
                self._waiters.remove((loop, event))

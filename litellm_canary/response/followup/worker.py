"""The follow-up worker: one daemon thread with one event loop, where every follow-up of a canary runs.

Shared by every rollback of the canary, so it works for sync SDK users, asyncio apps and the gateway
alike, and a flip storm costs no threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from litellm_canary.core.loop_cleanup import cancel_all_tasks, keep_litellm_logging_task

_T = TypeVar("_T")

logger = logging.getLogger("litellm_canary.followup")

__all__ = ["FollowupWorker", "log_failure"]


class FollowupWorker:
    """One daemon thread running one event loop: where every follow-up of a canary runs.

    Started on the first :meth:`submit`; a flip storm of any length adds one thread, not one per
    rollback. :meth:`stop` cancels what still runs and joins the thread.
    """

    def __init__(self, name: str = "litellm-canary-followup") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._kept_tasks: set[asyncio.Task[object]] = set()

    @property
    def thread(self) -> threading.Thread | None:
        """The worker thread (``None`` before the first :meth:`submit` or after :meth:`stop`)."""
        return self._thread

    def submit(self, coroutine: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T] | None:
        """Run ``coroutine`` on the worker's loop; ``None`` (and the coroutine closed) once stopped."""
        with self._lock:
            if self._stopped:
                coroutine.close()
                return None
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._serve, args=(loop, ready), name=self._name, daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            future = asyncio.run_coroutine_threadsafe(self._keeping_tasks(coroutine), self._loop)
        future.add_done_callback(lambda _: _close_if_never_started(coroutine))
        return future

    async def _keeping_tasks(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        try:
            return await coroutine
        finally:  # LiteLLM's logging-worker task on this loop lives until the loop ends
            keep_litellm_logging_task(self._kept_tasks)

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            cancel_all_tasks(loop)  # also the tasks started while others were being cancelled
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every task still running, stop the loop and join the thread."""
        with self._lock:
            self._stopped = True
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # already closed
            loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            thread.join(timeout)


def _close_if_never_started(coroutine: Coroutine[Any, Any, Any]) -> None:
    # A stop right after a submit cancels the task before its first step: the coroutine never ran
    # and would be reported "never awaited" when collected. Nothing else cancels these futures.
    if inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED:
        coroutine.close()


def log_failure(group: str) -> Callable[[concurrent.futures.Future[None]], None]:
    """A done-callback logging the failure of ``group``'s follow-up (it must never fail silently)."""

    def done(future: concurrent.futures.Future[None]) -> None:
        error = None if future.cancelled() else future.exception()
        if error is not None:  # the worker must never fail silently; the status shows what is known
            logger.error("post-rollback follow-up of %r failed", group, exc_info=error)

    return done

"""The eval pipeline's scoring thread: one daemon thread running its own event loop.

This module owns :class:`EvalWorker`, which runs the pipeline's work off the request path: it awaits
``score_pending`` whenever samples are queued (woken by :meth:`EvalWorker.notify`), and a golden round
per rollout with a golden set every ``golden_interval_s`` (and once at start). It gets narrow
callables, never the pipeline or the canary; a failing step is logged and the worker carries on.
Its own loop makes it work the same for sync SDK users, asyncio applications and the LiteLLM proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from litellm_canary.core.loop_cleanup import cancel_other_tasks, keep_litellm_logging_task

logger = logging.getLogger("litellm_canary.evals")

__all__ = ["EvalWorker"]


class EvalWorker:
    """Runs ``score_pending`` when woken and ``run_golden_round(group)`` every group's interval.

    ``has_pending`` says whether any sample is still queued (checked before sleeping, so a wake-up
    between a scoring pass and the sleep is not lost); ``golden_intervals`` maps each model group
    with a golden set to its round interval in seconds.
    """

    def __init__(
        self,
        *,
        score_pending: Callable[[], Awaitable[int]],
        has_pending: Callable[[], bool],
        run_golden_round: Callable[[str], Awaitable[Any]],
        golden_intervals: Mapping[str, float],
    ) -> None:
        self._score_pending = score_pending
        self._has_pending = has_pending
        self._run_golden_round = run_golden_round
        self._golden_intervals = dict(golden_intervals)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        # LiteLLM's logging-worker tasks on this loop, kept alive until it ends (see loop_cleanup)
        self._kept_tasks: set[asyncio.Task[object]] = set()

    def notify(self) -> None:
        """Wake the worker (from any thread): samples are waiting."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                loop.call_soon_threadsafe(wake.set)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (no-op when running)."""
        if self._thread is not None:
            return
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="litellm-canary-evals", daemon=True
        )
        self._thread.start()
        ready.wait(timeout=10)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and its loop; pending samples are discarded."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def _run(self, ready: threading.Event) -> None:
        # asyncio.run cancels whatever is left on the loop at the end, including tasks LiteLLM's
        # logging worker started here for the golden replays' callbacks.
        try:
            asyncio.run(self._main(ready))
        finally:
            self._loop = None

    async def _main(self, ready: threading.Event) -> None:
        self._wake, self._stopping = asyncio.Event(), asyncio.Event()
        self._loop = asyncio.get_running_loop()
        ready.set()
        tasks = [asyncio.create_task(self._consume())]
        tasks += [
            asyncio.create_task(self._golden_schedule(group, interval))
            for group, interval in self._golden_intervals.items()
        ]
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await cancel_other_tasks()  # e.g. LiteLLM's logging worker, restarted while we cancelled
        self._kept_tasks.clear()

    async def _consume(self) -> None:
        assert self._wake is not None
        while True:
            if not await self._guarded(self._score_pending()):
                self._wake.clear()
                if not self._has_pending():
                    await self._wake.wait()

    async def _golden_schedule(self, group: str, interval: float) -> None:
        assert self._stopping is not None
        while True:
            await self._guarded(self._run_golden_round(group))
            try:
                await asyncio.wait_for(self._stopping.wait(), interval)
                return
            except TimeoutError:
                pass

    async def _guarded(self, work: Awaitable[Any]) -> Any:
        try:
            return await work
        except asyncio.CancelledError:
            raise
        except Exception:  # the worker must survive; the next round tries again
            logger.exception("eval pipeline step failed")
            return None
        finally:
            keep_litellm_logging_task(self._kept_tasks)

"""Ending a background event loop without "Task was destroyed but it is pending!".

Cancelling the tasks of a loop once is not enough: a task being cancelled can start another (LiteLLM's
logging worker restarts its loop task when a callback is enqueued during shutdown). Such a late task
is left pending when the loop closes, and the interpreter prints the warning. :func:`cancel_all_tasks`
repeats the cancellation until no task is left (bounded).
"""

from __future__ import annotations

import asyncio

__all__ = ["cancel_all_tasks", "cancel_other_tasks", "keep_litellm_logging_task"]

_ROUNDS = 10


def cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel every task of ``loop`` (not running) and run it until they are all done."""
    for _ in range(_ROUNDS):
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


async def cancel_other_tasks() -> None:
    """From inside a loop's main coroutine: cancel every other task until none is left."""
    current = asyncio.current_task()
    for _ in range(_ROUNDS):
        pending = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def keep_litellm_logging_task(kept: set[asyncio.Task[object]]) -> None:
    """Keep a strong reference to LiteLLM's logging-worker task if it runs on this loop.

    LiteLLM has one global logging worker; when a callback runs on another thread's loop, the worker
    starts a new task there and drops its reference to the old one, which (still pending) is then
    garbage-collected: "Task was destroyed but it is pending!". Kept here, the old task stays alive
    until this loop ends and is cancelled with the loop's other tasks.
    """
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
    except ImportError:  # another LiteLLM release
        return
    task = getattr(GLOBAL_LOGGING_WORKER, "_worker_task", None)
    if isinstance(task, asyncio.Task) and not task.done() and task.get_loop() is asyncio.get_running_loop():
        kept.add(task)

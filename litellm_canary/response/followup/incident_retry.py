"""Incidents the directory did not take, retried on the follow-up worker with backoff until none waits."""

from __future__ import annotations

import asyncio
import threading

from litellm_canary.response.followup.worker import FollowupWorker
from litellm_canary.response.incidents import IncidentRecorder

__all__ = ["IncidentRetry"]


class IncidentRetry:
    """Runs :meth:`IncidentRecorder.retry_unwritten` on ``worker`` whenever an incident starts waiting
    (it becomes ``recorder.pending.on_unwritten``), at most one retry loop at a time."""

    def __init__(self, recorder: IncidentRecorder, worker: FollowupWorker, closed: threading.Event) -> None:
        self._recorder = recorder
        self._worker = worker
        self._closed = closed
        self._retrying = False  # a retry of unwritten incidents is scheduled on the worker
        self._lock = threading.Lock()
        recorder.pending.on_unwritten = self.schedule

    def schedule(self) -> None:
        """Retry the incidents the directory did not take, on the worker, until none waits."""
        with self._lock:
            if self._retrying or self._closed.is_set():
                return
            self._retrying = True
        if self._worker.submit(self._retry()) is None:
            with self._lock:
                self._retrying = False

    async def _retry(self) -> None:
        try:
            while not self._closed.is_set():
                delay = self._recorder.retry_unwritten()
                if delay is None:
                    return
                await asyncio.sleep(delay)  # the backoff itself: nothing to await but time
        finally:
            with self._lock:
                self._retrying = False
            if self._recorder.retry_unwritten() is not None and not self._closed.is_set():
                self.schedule()  # one became due while this loop was ending

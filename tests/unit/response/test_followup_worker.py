"""The follow-up worker: a stop right after a submit leaves no coroutine "never awaited"."""

from __future__ import annotations

import concurrent.futures
import gc
import threading
import warnings

import pytest

from litellm_canary.response.followup.worker import FollowupWorker


def test_a_follow_up_cancelled_before_it_started_is_closed_not_leaked() -> None:
    worker = FollowupWorker()
    blocking, release = threading.Event(), threading.Event()
    started = []

    async def block_the_loop() -> None:
        blocking.set()
        release.wait(10)  # holds the worker's loop, so the next submit cannot take its first step

    async def follow_up() -> None:
        started.append(True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker.submit(block_the_loop())
        assert blocking.wait(10)
        future = worker.submit(follow_up())
        assert future is not None
        stopping = threading.Thread(target=worker.stop)
        stopping.start()
        release.set()
        with pytest.raises(concurrent.futures.CancelledError):
            future.result(30)
        stopping.join(30)
        assert started == []
        del future
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []

"""Wiring of the canary-window features onto the canary's events.

Three concepts live in their own modules — the window and promotion
(:mod:`~litellm_canary.release.canary_window`), the keep-warm prober
(:mod:`~litellm_canary.release.keepwarm`) and user feedback
(:mod:`~litellm_canary.detection.feedback`). This module only connects them to the events it is
given: outcomes (stable's share of traffic), successful attempts (response id -> side), rollbacks
and re-arms (window marks, fresh tallies). :attr:`Lifecycle.keep_warm` answers the controller's
question "which stable deployments are unhealthy?" (wired by the composition root). ``Canary``
keeps a :class:`Lifecycle` and delegates to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from litellm_canary.core.config import CanaryConfig
from litellm_canary.core.controller import RolloutRuntime
from litellm_canary.core.events import Signal
from litellm_canary.core.flags import FlagdFileStore, FlagStore
from litellm_canary.core.outcomes import Outcome
from litellm_canary.core.rollback_record import RollbackRecord
from litellm_canary.detection.feedback import FeedbackBook
from litellm_canary.release.canary_window import (
    CanaryWindows,
    FlagMetadataWindowStore,
    MemoryWindowStore,
    WindowStore,
)
from litellm_canary.release.keepwarm import KeepWarm

logger = logging.getLogger("litellm_canary.lifecycle")

__all__ = ["Lifecycle"]


class Lifecycle:
    """The canary window, keep-warm prober and feedback book of one canary."""

    def __init__(
        self,
        config: CanaryConfig,
        runtimes: Mapping[str, RolloutRuntime],
        store: FlagStore | None,
        router: Any,
        *,
        outcomes: Signal[[Outcome]],
        successes: Signal[[Outcome, Mapping[str, Any], Any]],
        rollbacks: Signal[[RollbackRecord]],
        rearms: Signal[[str, str | None]],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._runtimes = runtimes
        window_store: WindowStore = (
            FlagMetadataWindowStore(store) if isinstance(store, FlagdFileStore) else MemoryWindowStore()
        )
        self.windows = CanaryWindows(config.rollouts, window_store, wall_clock=wall_clock)
        # A shared (flag file) window is marked by the replica where a rollback/re-arm was decided.
        self._shared_windows = isinstance(window_store, FlagMetadataWindowStore)
        self.keep_warm = KeepWarm(
            router, runtimes, clock=clock, wall_clock=wall_clock, paused=self.windows.promoted
        )
        feedback = config.feedback
        self.feedback = FeedbackBook(
            runtimes, max_responses=feedback.max_responses, ttl_s=feedback.ttl_s, clock=clock
        )
        outcomes.connect(self.keep_warm.record)
        successes.connect(self.feedback.served)
        rollbacks.connect(self._on_rollback)
        rearms.connect(self._on_rearm)

    def start(self) -> None:
        self.keep_warm.start()

    def stop(self) -> None:
        self.keep_warm.stop()

    def status(self, model_group: str) -> dict[str, Any]:
        runtime = self._runtimes[model_group]
        window = self.windows.view(model_group, rolled_back=runtime.rolled_back)
        if window is not None and self._shared_windows and runtime.rolled_back:
            window["rolled_back_mark_pending"] = runtime.flag_write_pending
        return {
            "window": window,
            "keep_warm": self.keep_warm.status(model_group),
            "feedback": self.feedback.status(model_group),
        }

    def _on_rollback(self, record: RollbackRecord) -> None:
        if record.repeated:
            return
        if record.stable_unhealthy_at_rollback:
            logger.warning(
                "rollback of %r lands on stable deployment(s) %s whose last keep-warm probe failed",
                record.model_group,
                record.stable_unhealthy_at_rollback,
            )
        if self._shared_windows:
            # The controller writes the rolled-back mark into the flag's metadata in the same file write
            # as the flag, retried with it (status: flag_store.write_pending); a broadcast rollback is
            # written by the replica where it was decided.
            return
        try:
            self.windows.rolled_back(record.model_group)
        except Exception:  # the rollback itself is done; only the window mark is missing
            logger.exception("could not mark the canary window of %r as rolled back", record.model_group)

    def _on_rearm(self, model_group: str, origin: str | None) -> None:
        self.keep_warm.rearmed(model_group)
        self.feedback.rearmed(model_group)
        if origin is not None and self._shared_windows:
            return
        try:
            self.windows.rearmed(model_group)
        except Exception:
            logger.exception("could not open a new canary window for %r", model_group)

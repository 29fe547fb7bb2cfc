"""Wiring of the canary-window features onto a :class:`~litellm_canary.canary.Canary`.

Three concepts live in their own modules — the window and promotion (:mod:`~litellm_canary.window`),
the keep-warm prober (:mod:`~litellm_canary.keepwarm`) and user feedback
(:mod:`~litellm_canary.feedback`). This module only connects them to the canary's events: outcomes
(stable's share of traffic), successful attempts (response id -> side), rollbacks and re-arms
(window marks, fresh tallies), and the controller's question "which stable deployments are
unhealthy?" for the rollback record. ``Canary`` keeps a :class:`Lifecycle` and delegates to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from litellm_canary.core.controller import RollbackRecord
from litellm_canary.core.flags import FlagdFileStore
from litellm_canary.core.outcomes import Outcome
from litellm_canary.detection.feedback import FeedbackBook
from litellm_canary.release.canary_window import (
    CanaryWindows,
    FlagMetadataWindowStore,
    MemoryWindowStore,
    WindowStore,
)
from litellm_canary.release.keepwarm import KeepWarm

if TYPE_CHECKING:
    from litellm_canary.canary import Canary

logger = logging.getLogger("litellm_canary.lifecycle")

__all__ = ["Lifecycle"]


class Lifecycle:
    """The canary window, keep-warm prober and feedback book of one canary."""

    def __init__(
        self,
        canary: Canary,
        router: Any,
        success_listeners: list[Callable[[Outcome, Mapping[str, Any], Any], None]],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._canary = canary
        window_store: WindowStore = (
            FlagMetadataWindowStore(canary.store)
            if isinstance(canary.store, FlagdFileStore)
            else MemoryWindowStore()
        )
        self.windows = CanaryWindows(canary.config.rollouts, window_store, wall_clock=wall_clock)
        # A shared (flag file) window is marked by the replica where a rollback/re-arm was decided.
        self._shared_windows = isinstance(window_store, FlagMetadataWindowStore)
        self.keep_warm = KeepWarm(
            router, canary.runtimes, clock=clock, wall_clock=wall_clock, paused=self.windows.promoted
        )
        feedback = canary.config.feedback
        self.feedback = FeedbackBook(
            canary.runtimes, max_responses=feedback.max_responses, ttl_s=feedback.ttl_s, clock=clock
        )
        canary.outcomes.add_listener(self.keep_warm.record)
        success_listeners.append(self.feedback.served)
        canary.controller.unhealthy_stable = self.keep_warm.unhealthy
        canary.controller.on_rollback(self._on_rollback)
        canary.controller.on_rearm(self._on_rearm)

    def start(self) -> None:
        self.keep_warm.start()

    def stop(self) -> None:
        self.keep_warm.stop()

    def status(self, model_group: str) -> dict[str, Any]:
        runtime = self._canary.runtimes[model_group]
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

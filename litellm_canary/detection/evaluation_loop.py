"""Automatic rollback: the loop that evaluates each rollout's trigger rules and acts on a firing one.

Outcomes flow into each rollout's :class:`~litellm_canary.detection.rollout_monitor.RolloutMonitor`;
every step the loop evaluates the monitors of armed rollouts and hands a firing rule to the
controller — the same rollback path as a manual one, with ``kind="automatic"`` and the rule's
observed values, threshold, window and sample sizes as the cause. A rolled-back rollout is not
evaluated again until it is re-armed (no flapping), and re-arming starts fresh windows.

The loop runs on a daemon thread so that it works the same under a sync caller, an asyncio
application and the LiteLLM proxy; tests drive :meth:`AutoRollback.evaluate` with a fake clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from litellm_canary.core.controller import RolloutRuntime
from litellm_canary.core.outcomes import Outcome
from litellm_canary.core.rollback_record import RollbackKind
from litellm_canary.detection.rollout_monitor import MonitorResult, RolloutMonitor

logger = logging.getLogger("litellm_canary.autorollback")


class RollbackLatch(Protocol):
    """What the loop needs from the controller: rolling a model group back."""

    def rollback(
        self, model_group: str, reason: str, *, kind: RollbackKind, cause: Mapping[str, Any] | None
    ) -> object: ...


class AutoRollback:
    """The monitors of every rollout, evaluated every step; a firing rule rolls its rollout back."""

    def __init__(
        self,
        runtimes: Mapping[str, RolloutRuntime],
        controller: RollbackLatch,
        *,
        clock: Callable[[], float],
        step_s: float | None = None,
        cooling_down: Callable[[RolloutRuntime], list[str]] = lambda runtime: [],
    ) -> None:
        self._runtimes = runtimes
        self._cooling_down = cooling_down
        self._controller = controller
        self.monitors = {
            group: RolloutMonitor(runtime.config.triggers, clock=clock, step_s=step_s)
            for group, runtime in runtimes.items()
        }
        self.last_results: dict[str, MonitorResult] = {}
        self.step_s = min(monitor.step_s for monitor in self.monitors.values())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, outcome: Outcome) -> None:
        monitor = self.monitors.get(outcome.model_group)
        if monitor is not None:
            monitor.record(outcome.side, outcome.ok, outcome.ttft_s if outcome.ok else None)

    def evaluate(self) -> dict[str, MonitorResult]:
        """One evaluation step over every armed rollout; rolls back the ones with a firing rule."""
        for group, monitor in self.monitors.items():
            runtime = self._runtimes[group]
            if runtime.rolled_back:
                continue
            result = monitor.evaluate()
            self.last_results[group] = result
            cause = result.firing.as_dict() if result.firing is not None else self._cooldown_cause(runtime)
            if cause is not None:
                self._controller.rollback(group, str(cause["summary"]), kind="automatic", cause=cause)
        return self.last_results

    def _cooldown_cause(self, runtime: RolloutRuntime) -> dict[str, Any] | None:
        if not runtime.config.triggers.cooldown.enabled:
            return None
        cooling = self._cooling_down(runtime)
        if not cooling or len(cooling) < len(runtime.config.canary):
            return None
        return {
            "rule": "cooldown",
            "state": "firing",
            "summary": f"every canary deployment is in LiteLLM cooldown: {sorted(cooling)}",
            "cooling_down": sorted(cooling),
        }

    def rearmed(self, model_group: str) -> None:
        self.monitors[model_group].reset()
        self.last_results.pop(model_group, None)

    def status(self, model_group: str) -> dict[str, Any] | None:
        result = self.last_results.get(model_group)
        return None if result is None else result.as_dict()

    # -- the background loop ---------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="litellm-canary-triggers", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.step_s):
            try:
                self.evaluate()
            except Exception:  # the loop must survive a bad evaluation; the next step tries again
                logger.exception("trigger evaluation failed")

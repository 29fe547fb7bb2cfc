"""Keeping stable warm during the canary window, and knowing whether it is healthy.

While the canary takes most of a group's traffic, stable — the rollback target — may go cold or
break unnoticed. For each rollout with ``keep_warm`` configured, :class:`KeepWarm` measures stable's
share of real attempts over ``share_window_s`` (from the outcome stream; an idle group counts as
share 0) and, while it is below ``floor``, sends one tiny request (``prompt``, ``max_tokens=1``) to
**each** stable deployment every ``interval_s`` through :func:`litellm_canary.probe.call_deployment`
— outside the canary's routing, so probes never reach an outcome window, a trigger or the attempt
metrics. A failed probe marks that deployment ``unhealthy`` (logged as a warning once per change);
a successful one marks it healthy again. A rollback onto an unhealthy stable still happens; the
controller asks :meth:`KeepWarm.unhealthy` and puts the answer on the rollback record.

Probing stops while a rollout is rolled back (stable takes all traffic) or promoted. The loop runs
on a daemon thread with its own event loop (as the trigger loop does), so it works for sync and
async applications alike; tests call :meth:`KeepWarm.step` with a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from litellm_canary.core.config import KeepWarmConfig
from litellm_canary.core.controller import RolloutRuntime
from litellm_canary.core.decision import Side
from litellm_canary.core.outcomes import Outcome
from litellm_canary.core.probe import ProbeResult, call_deployment

logger = logging.getLogger("litellm_canary.keepwarm")

__all__ = ["DeploymentHealth", "KeepWarm", "SideShare"]

_BUCKETS = 30


class SideShare:
    """Attempts per side over the last ``window_s`` seconds, in a ring of time buckets (fixed memory)."""

    def __init__(self, window_s: float, *, clock: Callable[[], float], buckets: int = _BUCKETS) -> None:
        self._width = window_s / buckets
        self._buckets = buckets
        self._clock = clock
        self._counts: dict[int, list[int]] = {}  # bucket epoch -> [stable, canary]
        self._lock = threading.Lock()

    def record(self, side: Side) -> None:
        epoch = int(self._clock() // self._width)
        with self._lock:
            counts = self._counts.setdefault(epoch, [0, 0])
            counts[0 if side is Side.STABLE else 1] += 1
            self._expire(epoch)

    def stable_share(self) -> tuple[float, int]:
        """(stable's share, attempts) over the window; an idle window is share 0.0 of 0 attempts."""
        epoch = int(self._clock() // self._width)
        with self._lock:
            self._expire(epoch)
            stable = sum(counts[0] for counts in self._counts.values())
            total = stable + sum(counts[1] for counts in self._counts.values())
        return (stable / total if total else 0.0), total

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()

    def _expire(self, epoch: int) -> None:
        for old in [e for e in self._counts if e <= epoch - self._buckets]:
            del self._counts[old]


@dataclass
class DeploymentHealth:
    """What the keep-warm probes found out about one stable deployment."""

    healthy: bool | None = None  # None: never probed
    since: str | None = None  # wall time of the last change
    last_probe_at: str | None = None
    last_latency_s: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    probes: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0})

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "since": self.since,
            "last_probe_at": self.last_probe_at,
            "last_latency_s": self.last_latency_s,
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "probes": dict(self.probes),
        }


@dataclass
class _Rollout:
    runtime: RolloutRuntime
    config: KeepWarmConfig
    share: SideShare
    health: dict[str, DeploymentHealth]
    next_round: float = float("-inf")
    rounds: int = 0


class KeepWarm:
    """The keep-warm prober of a canary's rollouts (those with ``keep_warm`` configured)."""

    def __init__(
        self,
        router: Any,
        runtimes: Mapping[str, RolloutRuntime],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        paused: Callable[[str], bool] = lambda model_group: False,
    ) -> None:
        self._router = router
        self._clock = clock
        self._wall_clock = wall_clock
        self._paused = paused
        self._lock = threading.Lock()
        self._rollouts: dict[str, _Rollout] = {}
        for group, runtime in runtimes.items():
            config = runtime.config.keep_warm
            if config is None:
                continue
            self._rollouts[group] = _Rollout(
                runtime,
                config,
                SideShare(config.share_window_s, clock=clock),
                {deployment_id: DeploymentHealth() for deployment_id in runtime.config.stable},
            )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listeners: list[Callable[[str, ProbeResult], None]] = []

    @property
    def enabled(self) -> bool:
        return bool(self._rollouts)

    # -- inputs ----------------------------------------------------------------------------------

    def record(self, outcome: Outcome) -> None:
        """An outcome listener: real attempts only (probes never become outcomes)."""
        rollout = self._rollouts.get(outcome.model_group)
        if rollout is not None:
            rollout.share.record(outcome.side)

    def rearmed(self, model_group: str) -> None:
        rollout = self._rollouts.get(model_group)
        if rollout is not None:
            rollout.share.clear()
            rollout.next_round = float("-inf")

    # -- the probes ------------------------------------------------------------------------------

    def due(self, model_group: str) -> bool:
        """Whether a probe round of ``model_group`` should run now."""
        rollout = self._rollouts.get(model_group)
        if rollout is None or rollout.runtime.rolled_back or self._paused(model_group):
            return False
        share, _ = rollout.share.stable_share()
        return share < rollout.config.floor and self._clock() >= rollout.next_round

    async def step(self) -> dict[str, list[ProbeResult]]:
        """Run the probe rounds that are due now; returns each group's probe results."""
        results: dict[str, list[ProbeResult]] = {}
        for group, rollout in self._rollouts.items():
            if not self.due(group):
                continue
            rollout.next_round = self._clock() + rollout.config.interval_s
            rollout.rounds += 1
            results[group] = await self.probe_stable(group)
        return results

    async def probe_stable(self, model_group: str) -> list[ProbeResult]:
        """Probe every stable deployment of ``model_group`` once, now (whatever the share)."""
        rollout = self._rollouts[model_group]
        config = rollout.config
        messages = [{"role": "user", "content": config.prompt}]
        results = await asyncio.gather(
            *(
                call_deployment(
                    self._router,
                    deployment_id,
                    messages,
                    max_tokens=1,
                    timeout_s=config.timeout_s,
                    purpose="keep_warm",
                )
                for deployment_id in rollout.health
            )
        )
        for result in results:
            self._note(model_group, rollout, result)
        return list(results)

    def _note(self, model_group: str, rollout: _Rollout, result: ProbeResult) -> None:
        now = datetime.fromtimestamp(self._wall_clock(), UTC).isoformat(timespec="milliseconds")
        with self._lock:
            health = rollout.health[result.deployment_id]
            was = health.healthy
            health.last_probe_at = now
            health.last_latency_s = round(result.latency_s, 4)
            if result.ok:
                health.probes["ok"] += 1
                health.consecutive_failures = 0
                health.last_error = None
            else:
                health.probes["failed"] += 1
                health.consecutive_failures += 1
                health.last_error = (result.error or "")[:500]
            health.healthy = result.ok
            if was != result.ok:
                health.since = now
        if not result.ok and was is not False:
            logger.warning(
                "stable deployment %r of %r is unhealthy: keep-warm probe failed (%s); a rollback "
                "would land on it",
                result.deployment_id,
                model_group,
                health.last_error,
            )
        elif result.ok and was is False:
            logger.warning("stable deployment %r of %r is healthy again", result.deployment_id, model_group)
        for listener in self.listeners:
            try:
                listener(model_group, result)
            except Exception:
                logger.exception("keep-warm listener %r failed", listener)

    # -- reading ---------------------------------------------------------------------------------

    def unhealthy(self, model_group: str) -> list[str]:
        """The stable deployments of ``model_group`` whose last probe failed."""
        rollout = self._rollouts.get(model_group)
        if rollout is None:
            return []
        with self._lock:
            return sorted(d for d, health in rollout.health.items() if health.healthy is False)

    def status(self, model_group: str) -> dict[str, Any] | None:
        rollout = self._rollouts.get(model_group)
        if rollout is None:
            return None
        share, attempts = rollout.share.stable_share()
        with self._lock:
            health = {d: h.as_dict() for d, h in rollout.health.items()}
        return {
            "floor": rollout.config.floor,
            "stable_share": round(share, 4),
            "attempts_in_window": attempts,
            "probing": share < rollout.config.floor
            and not rollout.runtime.rolled_back
            and not self._paused(model_group),
            "rounds": rollout.rounds,
            "stable_unhealthy": self.unhealthy(model_group),
            "deployments": health,
        }

    # -- the background loop ---------------------------------------------------------------------

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="litellm-canary-keep-warm", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=15)

    def _run(self) -> None:
        tick = min(1.0, min(r.config.interval_s for r in self._rollouts.values()))
        # One event loop for the thread's life (LiteLLM caches clients per loop); closing the Runner
        # cancels what LiteLLM left running on it (its logging worker) before the loop closes.
        with asyncio.Runner() as runner:
            while not self._stop.wait(tick):
                try:
                    runner.run(self.step())
                except Exception:  # the loop must survive a bad round; the next tick tries again
                    logger.exception("keep-warm round failed")

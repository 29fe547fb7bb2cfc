"""The rollout monitor: one rollout's outcome windows, evaluated against every rule at a fixed step.

This module owns :class:`RolloutMonitor`, which keeps the stable/canary
:class:`~litellm_canary.detection.outcome_windows.OutcomeWindow` pairs of one rollout (one pair per
distinct window length the enabled rules need), takes the latest eval-score summary, and at each
:meth:`RolloutMonitor.evaluate` runs every rule of :mod:`litellm_canary.detection.rules` through its
:class:`~litellm_canary.detection.rules.RuleTracker`, returning a :class:`MonitorResult`; and
:func:`default_step_s`, the evaluation step. Acting on a firing rule belongs to the controller. No
I/O, no litellm, no Prometheus; time comes from an injected monotonic clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import litellm_canary.detection.rules as rules
from litellm_canary.core.config import (
    ErrorRateTrigger,
    EvalScoreTrigger,
    FastFailTrigger,
    Triggers,
    TtftP99Trigger,
)
from litellm_canary.core.decision import Side
from litellm_canary.detection.outcome_windows import Clock, OutcomeWindow
from litellm_canary.detection.rules import RULES, EvalScores, RuleName, RuleStatus, RuleTracker

__all__ = ["MAX_STEP_S", "MIN_STEP_S", "MonitorResult", "RolloutMonitor", "default_step_s"]

MIN_STEP_S = 0.01
MAX_STEP_S = 5.0
STEPS_PER_WINDOW = 20


@dataclass(frozen=True, slots=True)
class MonitorResult:
    """Every rule's status at one evaluation; ``firing`` is the first firing rule in :data:`RULES`."""

    at: float
    rules: tuple[RuleStatus, ...]
    firing: RuleStatus | None

    def rule(self, name: RuleName) -> RuleStatus:
        for status in self.rules:
            if status.rule == name:
                return status
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "firing": None if self.firing is None else self.firing.rule,
            "rules": [status.as_dict() for status in self.rules],
        }


def default_step_s(triggers: Triggers) -> float:
    """1/20 of the shortest enabled rule window, clamped to [0.01, 5] s."""
    windows = [r.window_s for r in (triggers.error_rate, triggers.ttft_p99, triggers.fast_fail) if r.enabled]
    if not windows:
        return MAX_STEP_S
    return min(max(min(windows) / STEPS_PER_WINDOW, MIN_STEP_S), MAX_STEP_S)


@dataclass(frozen=True, slots=True)
class _Pair:
    stable: OutcomeWindow
    canary: OutcomeWindow
    ttft: bool  # whether a rule reads TTFT from this pair; others only count


class RolloutMonitor:
    """The outcome windows and rule trackers of one rollout.

    Feed it with :meth:`record` (from any thread) and call :meth:`evaluate` every :attr:`step_s`
    seconds; act on ``result.firing``. It keeps one stable/canary window pair per distinct window
    length that the enabled rules need, and TTFT histograms only in the ttft_p99 rule's pair.
    """

    def __init__(
        self, triggers: Triggers, *, clock: Clock, step_s: float | None = None, buckets: int = 20
    ) -> None:
        if step_s is not None and not step_s > 0:
            raise ValueError(f"step_s must be > 0, got {step_s!r}")
        self.triggers = triggers
        self.step_s = default_step_s(triggers) if step_s is None else float(step_s)
        self._clock = clock
        self._buckets = buckets
        self._lock = threading.Lock()
        t = triggers
        self._trackers: dict[RuleName, RuleTracker] = {
            "fast_fail": RuleTracker(for_s=0.0, step_s=self.step_s),
            "error_rate": RuleTracker(for_s=t.error_rate.window_s, step_s=self.step_s),
            "ttft_p99": RuleTracker(for_s=t.ttft_p99.window_s, step_s=self.step_s),
            "eval_score": RuleTracker(for_s=0.0, step_s=self.step_s),
        }
        self._disabled: dict[RuleName, RuleStatus] = {
            name: _disabled(name, getattr(t, name)) for name in RULES if not getattr(t, name).enabled
        }
        self._pairs = self._new_pairs()
        self._scores: EvalScores | None = None

    def _new_pairs(self) -> dict[float, _Pair]:
        t = self.triggers
        lengths = {r.window_s for r in (t.error_rate, t.fast_fail) if r.enabled}
        ttft_length = t.ttft_p99.window_s if t.ttft_p99.enabled else None
        pairs = {}
        for length in sorted(lengths | ({ttft_length} if ttft_length is not None else set())):
            pairs[length] = _Pair(
                stable=OutcomeWindow(length, clock=self._clock, buckets=self._buckets),
                canary=OutcomeWindow(length, clock=self._clock, buckets=self._buckets),
                ttft=length == ttft_length,
            )
        return pairs

    @property
    def window_lengths(self) -> tuple[float, ...]:
        """The distinct window lengths (s) this monitor keeps a stable/canary pair for."""
        return tuple(self._pairs)

    def record(self, side: Side | Literal["stable", "canary"], ok: bool, ttft_s: float | None = None) -> None:
        """Count one request outcome of ``side``; ``ttft_s`` is its time to first token, if known."""
        canary = _is_canary(side)
        for pair in self._pairs.values():
            (pair.canary if canary else pair.stable).record(ok, ttft_s if pair.ttft else None)

    def record_batch(
        self, side: Side | Literal["stable", "canary"], ok: int, failed: int, ttfts_s: Iterable[float] = ()
    ) -> None:
        """Count ``ok + failed`` outcomes of ``side`` at once, with their TTFT samples."""
        canary = _is_canary(side)
        ttfts = tuple(ttfts_s)
        for pair in self._pairs.values():
            (pair.canary if canary else pair.stable).record_batch(ok, failed, ttfts if pair.ttft else ())

    def record_scores(self, scores: EvalScores | None) -> None:
        """The latest eval-score summary for the eval_score rule (``None``: none yet)."""
        with self._lock:
            self._scores = scores

    def evaluate(self) -> MonitorResult:
        """Check every rule now; call it every :attr:`step_s` seconds."""
        with self._lock:
            now = self._clock()
            statuses = tuple(
                self._disabled[name]
                if name in self._disabled
                else self._trackers[name].evaluate(self._check(name), now)
                for name in RULES
            )
            firing = next((s for s in statuses if s.state == "firing"), None)
            return MonitorResult(at=now, rules=statuses, firing=firing)

    def _check(self, name: RuleName) -> RuleStatus:
        t = self.triggers
        if name == "fast_fail":
            return rules.check_fast_fail(t.fast_fail, self._pairs[t.fast_fail.window_s].canary.stats())
        if name == "error_rate":
            pair = self._pairs[t.error_rate.window_s]
            return rules.check_error_rate(t.error_rate, pair.canary.stats(), pair.stable.stats())
        if name == "ttft_p99":
            pair = self._pairs[t.ttft_p99.window_s]
            return rules.check_ttft_p99(t.ttft_p99, pair.canary.stats(), pair.stable.stats())
        return rules.check_eval_score(t.eval_score, self._scores)

    def reset(self) -> None:
        """Start afresh: empty windows, no eval scores, no breaching streaks (a re-armed rollout)."""
        with self._lock:
            self._pairs = self._new_pairs()
            self._scores = None
            for tracker in self._trackers.values():
                tracker.reset()


def _is_canary(side: Side | str) -> bool:
    if side == "canary":
        return True
    if side == "stable":
        return False
    raise ValueError(f"side must be 'stable' or 'canary', got {side!r}")


def _disabled(
    name: RuleName, rule: ErrorRateTrigger | TtftP99Trigger | FastFailTrigger | EvalScoreTrigger
) -> RuleStatus:
    window_s = getattr(rule, "window_s", None)
    min_samples = getattr(rule, "min_requests", None) or getattr(rule, "min_samples", None)
    return RuleStatus(name, "disabled", "rule disabled", None, window_s, min_samples)

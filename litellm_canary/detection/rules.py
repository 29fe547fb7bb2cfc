"""The automatic-rollback rules: when a canary's outcomes are bad enough to roll it back.

This module owns the *judgement*: pure ``check_*`` functions that read :class:`WindowStats` (or eval
scores) and a rule's config and say ``ok``, ``breaching`` or ``insufficient_data``; a
:class:`RuleTracker` that turns a rule's successive checks into ``firing`` once it has breached
continuously for long enough (like a Prometheus ``for:``); and :class:`RolloutMonitor`, which owns the
stable/canary :class:`OutcomeWindow` pairs of one rollout and evaluates every rule at a fixed step.
Acting on a firing rule (the rollback itself) belongs to the controller. No I/O, no litellm, no
Prometheus; time comes from an injected monotonic clock.

Thresholds are strict (a value exactly at the threshold does not breach) except fast_fail's ``>=``;
"exactly" allows a relative 1e-9 so that float rounding of ``ratio x baseline`` cannot decide it.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from statistics import NormalDist
from typing import Any, Literal

from litellm_canary.core.config import (
    ErrorRateTrigger,
    EvalScoreTrigger,
    FastFailTrigger,
    Triggers,
    TtftP99Trigger,
)
from litellm_canary.core.decision import Side
from litellm_canary.detection.outcome_windows import Clock, OutcomeWindow, WindowStats

RuleName = Literal["fast_fail", "error_rate", "ttft_p99", "eval_score"]
RuleState = Literal["ok", "breaching", "firing", "insufficient_data", "disabled"]
Observed = Mapping[str, float | int | str | None]

#: Evaluation order, which is also the priority when several rules fire at once.
RULES: tuple[RuleName, ...] = ("fast_fail", "error_rate", "ttft_p99", "eval_score")

MIN_STEP_S = 0.01
MAX_STEP_S = 5.0
STEPS_PER_WINDOW = 20

_REL_TOL = 1e-9


def _above(value: float, limit: float) -> bool:
    return value > limit + _REL_TOL * abs(limit)


def _below(value: float, limit: float) -> bool:
    return value < limit - _REL_TOL * abs(limit)


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """One rule's verdict at one evaluation.

    ``threshold`` is in the unit of the rule's main observed value: a fraction for ``error_rate`` and
    ``fast_fail``, milliseconds for ``ttft_p99``, a score for ``eval_score``. ``min_samples`` is the
    rule's ``min_requests`` (``min_samples`` for eval_score); ``window_s`` is ``None`` for eval_score.
    """

    rule: RuleName
    state: RuleState
    summary: str
    threshold: float | None = None
    window_s: float | None = None
    min_samples: int | None = None
    breaching_since: float | None = None
    observed: Observed = field(default_factory=dict, hash=False)

    def as_dict(self) -> dict[str, Any]:
        """A flat, JSON-serialisable dict (observed values at the top level), e.g. a rollback cause."""
        return {
            "rule": self.rule,
            "state": self.state,
            "summary": self.summary,
            "threshold": self.threshold,
            "window_s": self.window_s,
            "min_samples": self.min_samples,
            "breaching_since": self.breaching_since,
            **self.observed,
        }


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


@dataclass(frozen=True, slots=True)
class EvalScores:
    """Mean eval scores (higher is better, >= 0) and their sample counts on each side.

    ``reject`` is a sequential test's verdict (:class:`~litellm_canary.evals.SequentialEvalTest`): when
    set, the rule breaches exactly when it is True, and ``log_e_value`` / ``log_threshold`` show how
    close the test is; ``None`` compares the plain means. ``source`` names the score series.
    """

    canary_mean: float
    canary_samples: int
    stable_mean: float
    stable_samples: int
    reject: bool | None = None
    log_e_value: float | None = None
    log_threshold: float | None = None
    source: str | None = None


def _pct(rate: float) -> str:
    return f"{rate:.2%}"


def check_error_rate(rule: ErrorRateTrigger, canary: WindowStats, stable: WindowStats) -> RuleStatus:
    """Canary error rate above ``ratio`` x baseline and above baseline + ``min_delta``.

    The baseline is stable's error rate over the same window when stable has ``min_requests``, else
    the configured pre-canary ``baseline_error_rate``; with neither the rule has insufficient data.

    A significance guard (``alpha``) keeps sampling noise from rolling back a healthy canary: with a
    few hundred requests per window and a ~1 % error rate, ``ratio`` 2 and ``min_delta`` 0.01 alone
    are within Poisson noise (an A/A simulation at 5 req/s per side fired on 3.5 % of healthy
    30-minute canaries). The excess must also pass a one-sided two-proportion z-test against stable
    (pooled variance), or a one-sample test against the configured baseline, at level ``alpha`` —
    the same statistic the generated Prometheus rules compute.
    """
    observed: dict[str, float | int | str | None] = {
        "canary_error_rate": canary.error_rate,
        "canary_requests": canary.requests,
        "canary_failures": canary.failures,
        "stable_error_rate": stable.error_rate,
        "stable_requests": stable.requests,
        "stable_failures": stable.failures,
        "baseline_error_rate": None,
        "baseline_source": None,
    }
    status = partial(
        RuleStatus, "error_rate", window_s=rule.window_s, min_samples=rule.min_requests, observed=observed
    )
    if canary.requests < rule.min_requests:
        return status(
            "insufficient_data", f"canary has {canary.requests} requests, needs {rule.min_requests}"
        )
    if stable.requests >= rule.min_requests:
        baseline, source = stable.error_rate, "stable"
    elif rule.baseline_error_rate is not None:
        baseline, source = rule.baseline_error_rate, "config"
    else:
        return status(
            "insufficient_data",
            f"stable has {stable.requests} requests, needs {rule.min_requests}, "
            "and no baseline_error_rate is configured",
        )
    observed.update(baseline_error_rate=baseline, baseline_source=source)
    threshold = max(rule.ratio * baseline, baseline + rule.min_delta)
    z = error_rate_z(canary, stable if source == "stable" else None, baseline)
    observed.update(z_score=None if math.isinf(z) else round(z, 3))
    significant = rule.alpha is None or z > NormalDist().inv_cdf(1 - rule.alpha)
    above = _above(canary.error_rate, threshold)
    breaching = above and significant
    verdict = ">" if breaching else "> (not significant)" if above else "<="
    return status(
        "breaching" if breaching else "ok",
        f"canary error rate {_pct(canary.error_rate)} {verdict} {_pct(threshold)} (baseline {_pct(baseline)} "
        f"from {source}; z {z:.2f}; {canary.requests} canary / {stable.requests} stable requests in "
        f"{rule.window_s:g}s)",
        threshold,
    )


def error_rate_z(canary: WindowStats, stable: WindowStats | None, baseline: float) -> float:
    """One-sided z statistic of the canary's excess error rate.

    Against stable (two proportions, pooled variance) when ``stable`` is given, else against the
    fixed ``baseline``. Infinite when the variance is zero and the canary is above.
    """
    excess = canary.error_rate - baseline
    if stable is not None:
        pooled = (canary.failures + stable.failures) / (canary.requests + stable.requests)
        variance = pooled * (1 - pooled) * (1 / canary.requests + 1 / stable.requests)
    else:
        variance = baseline * (1 - baseline) / canary.requests
    if variance <= 0:
        return math.inf if excess > 0 else 0.0
    return excess / math.sqrt(variance)


def check_ttft_p99(
    rule: TtftP99Trigger, canary: WindowStats, stable: WindowStats | None = None
) -> RuleStatus:
    """Canary p99 time to first token above ``ratio`` x ``slo_ms`` (``stable`` is for context only)."""
    p99_ms = None if canary.ttft_p99_s is None else canary.ttft_p99_s * 1000
    threshold = rule.ratio * rule.slo_ms
    status = partial(
        RuleStatus,
        "ttft_p99",
        threshold=threshold,
        window_s=rule.window_s,
        min_samples=rule.min_requests,
        observed={
            "canary_ttft_p99_ms": p99_ms,
            "canary_ttft_samples": canary.ttft_samples,
            "stable_ttft_p99_ms": None
            if stable is None or stable.ttft_p99_s is None
            else stable.ttft_p99_s * 1000,
            "stable_ttft_samples": None if stable is None else stable.ttft_samples,
        },
    )
    if p99_ms is None or canary.ttft_samples < rule.min_requests:
        return status(
            "insufficient_data", f"canary has {canary.ttft_samples} TTFT samples, needs {rule.min_requests}"
        )
    breaching = _above(p99_ms, threshold)
    return status(
        "breaching" if breaching else "ok",
        f"canary TTFT p99 {p99_ms:.0f} ms {'>' if breaching else '<='} {threshold:g} ms "
        f"({rule.ratio:g} x SLO {rule.slo_ms:g} ms; {canary.ttft_samples} samples in {rule.window_s:g}s)",
    )


def check_fast_fail(rule: FastFailTrigger, canary: WindowStats) -> RuleStatus:
    """A plainly broken canary: error rate at or above ``error_rate`` (note: ``>=``)."""
    status = partial(
        RuleStatus,
        "fast_fail",
        threshold=rule.error_rate,
        window_s=rule.window_s,
        min_samples=rule.min_requests,
        observed={
            "canary_error_rate": canary.error_rate,
            "canary_requests": canary.requests,
            "canary_failures": canary.failures,
        },
    )
    if canary.requests < rule.min_requests:
        return status(
            "insufficient_data", f"canary has {canary.requests} requests, needs {rule.min_requests}"
        )
    breaching = not _below(canary.error_rate, rule.error_rate)
    return status(
        "breaching" if breaching else "ok",
        f"canary error rate {_pct(canary.error_rate)} {'>=' if breaching else '<'} "
        f"{_pct(rule.error_rate)} ({canary.requests} requests in {rule.window_s:g}s)",
    )


def check_eval_score(rule: EvalScoreTrigger, scores: EvalScores | None) -> RuleStatus:
    """Canary mean score below stable's x (1 - ``max_drop``), with ``min_samples`` on each side.

    When ``scores`` carries a sequential test's verdict (``reject`` set), the rule breaches exactly
    when the test rejects: the test holds the false-alarm rate at ``alpha`` however often it is
    looked at, which a plain comparison of means does not.
    """
    fields = {} if scores is None else dataclasses.asdict(scores)
    observed = {key: value for key, value in fields.items() if value is not None}
    status = partial(RuleStatus, "eval_score", min_samples=rule.min_samples, observed=observed)
    if scores is None:
        return status("insufficient_data", "no eval scores recorded")
    if min(scores.canary_samples, scores.stable_samples) < rule.min_samples:
        return status(
            "insufficient_data",
            f"{scores.canary_samples} canary / {scores.stable_samples} stable scores, "
            f"needs {rule.min_samples} each",
        )
    threshold = scores.stable_mean * (1 - rule.max_drop)
    if scores.reject is not None:
        return status(
            "breaching" if scores.reject else "ok",
            f"sequential test on {scores.source or 'eval'} scores "
            f"{'rejects' if scores.reject else 'does not reject'}: "
            f"log e-value {scores.log_e_value or 0.0:.3g} {'>=' if scores.reject else '<'} "
            f"{scores.log_threshold or 0.0:.3g}; canary mean {scores.canary_mean:.4g} vs stable "
            f"{scores.stable_mean:.4g} less {rule.max_drop:.0%} = {threshold:.4g} "
            f"({scores.canary_samples} / {scores.stable_samples} scores)",
            threshold,
        )
    breaching = _below(scores.canary_mean, threshold)
    return status(
        "breaching" if breaching else "ok",
        f"canary mean score {scores.canary_mean:.4g} {'<' if breaching else '>='} {threshold:.4g} "
        f"(stable {scores.stable_mean:.4g} less {rule.max_drop:.0%})",
        threshold,
    )


class RuleTracker:
    """Turns one rule's checks, made every ``step_s``, into ``firing`` after ``for_s`` of breaching.

    Any check that is not ``breaching`` resets the streak, and so does a gap between checks longer
    than ``max_gap_s`` (nobody evaluated: the streak was not observed). The tolerance is two steps or a
    tenth of ``for_s``, whichever is longer, so that a busy process (GIL, a stalled loop) delaying one
    evaluation by a few tens of milliseconds does not restart a two-minute streak. ``for_s=0`` fires on
    the first breaching check.
    """

    def __init__(self, *, for_s: float, step_s: float) -> None:
        self.for_s = for_s
        self.step_s = step_s
        self.max_gap_s = max(2 * step_s, for_s / 10)
        self.breaching_since: float | None = None
        self._last_at: float | None = None

    def evaluate(self, check: RuleStatus, now: float) -> RuleStatus:
        """``check`` (made at ``now``) with its state made ``firing`` and ``breaching_since`` filled in."""
        if self._last_at is not None and now - self._last_at > self.max_gap_s:
            self.breaching_since = None
        self._last_at = now
        if check.state != "breaching":
            self.breaching_since = None
            return check
        if self.breaching_since is None:
            self.breaching_since = now
        fired = now - self.breaching_since >= self.for_s - _REL_TOL * self.for_s
        return dataclasses.replace(
            check, state="firing" if fired else "breaching", breaching_since=self.breaching_since
        )

    def reset(self) -> None:
        self.breaching_since = None
        self._last_at = None


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
            return check_fast_fail(t.fast_fail, self._pairs[t.fast_fail.window_s].canary.stats())
        if name == "error_rate":
            pair = self._pairs[t.error_rate.window_s]
            return check_error_rate(t.error_rate, pair.canary.stats(), pair.stable.stats())
        if name == "ttft_p99":
            pair = self._pairs[t.ttft_p99.window_s]
            return check_ttft_p99(t.ttft_p99, pair.canary.stats(), pair.stable.stats())
        return check_eval_score(t.eval_score, self._scores)

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


__all__ = [
    "RULES",
    "EvalScores",
    "MonitorResult",
    "RolloutMonitor",
    "RuleName",
    "RuleState",
    "RuleStatus",
    "RuleTracker",
    "check_error_rate",
    "check_eval_score",
    "check_fast_fail",
    "check_ttft_p99",
    "default_step_s",
]

"""The automatic-rollback rules: when a canary's outcomes are bad enough to roll it back.

This module owns the *judgement*: pure ``check_*`` functions that read :class:`WindowStats` (or eval
scores, :class:`EvalScores`) and a rule's config and say ``ok``, ``breaching`` or
``insufficient_data``; and a :class:`RuleTracker` that turns a rule's successive checks into
``firing`` once it has breached continuously for long enough (like a Prometheus ``for:``). Keeping
the windows of a rollout and evaluating every rule at a fixed step is
:mod:`litellm_canary.detection.rollout_monitor`; acting on a firing rule (the rollback itself)
belongs to the controller. No I/O, no litellm, no Prometheus, no clock.

Thresholds are strict (a value exactly at the threshold does not breach) except fast_fail's ``>=``;
"exactly" allows a relative 1e-9 so that float rounding of ``ratio x baseline`` cannot decide it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from statistics import NormalDist
from typing import Any, Literal

from litellm_canary.core.config import (
    ErrorRateTrigger,
    EvalScoreTrigger,
    FastFailTrigger,
    TtftP99Trigger,
)
from litellm_canary.detection.outcome_windows import WindowStats

RuleName = Literal["fast_fail", "error_rate", "ttft_p99", "eval_score"]
RuleState = Literal["ok", "breaching", "firing", "insufficient_data", "disabled"]
Observed = Mapping[str, float | int | str | None]

#: Evaluation order, which is also the priority when several rules fire at once.
RULES: tuple[RuleName, ...] = ("fast_fail", "error_rate", "ttft_p99", "eval_score")


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
class EvalScores:
    """Mean eval scores (higher is better, >= 0) and their sample counts on each side.

    ``reject`` is a sequential test's verdict
    (:class:`~litellm_canary.detection.evals.sequential.SequentialEvalTest`): when set, the rule
    breaches exactly when it is True, and ``log_e_value`` / ``log_threshold`` show how close the
    test is; ``None`` compares the plain means. ``source`` names the score series.
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


__all__ = [
    "RULES",
    "EvalScores",
    "RuleName",
    "RuleState",
    "RuleStatus",
    "RuleTracker",
    "check_error_rate",
    "check_eval_score",
    "check_fast_fail",
    "check_ttft_p99",
    "error_rate_z",
]

"""The three recovery checks after a rollback, as pure functions, and the verdict they make.

The checks (each ``passed``, ``failed``, ``insufficient_data``, ``skipped`` or ``pending``):

* ``error_rate`` — stable's error rate since the flip is back at the baseline: it does not exceed
  ``max(ratio x baseline, baseline + min_delta)`` significantly (the error_rate rule's own ``ratio``,
  ``min_delta`` and ``alpha``, one-sample test against the baseline). The **baseline** is stable's
  error rate over the error_rate window before the rollback when stable had ``min_requests`` there,
  else the configured ``baseline_error_rate``, else 0 (source ``none``: then only ``min_delta`` of
  errors is tolerated). Needs ``min_requests`` stable requests after the flip.
* ``ttft_p99`` — stable's p99 TTFT since the flip is within the SLO (``slo_ms``) or back at the
  pre-rollback baseline (at most :data:`TTFT_BASELINE_TOLERANCE` x stable's p99 before the flip).
  Needs ``min_requests`` TTFT samples after the flip; ``skipped`` when the ttft_p99 rule is disabled.
* ``golden`` — the golden set replayed against stable right after the flip scores at baseline: its
  mean is at least ``(1 - max_drop)`` x the stable mean of the last scheduled golden round before the
  rollback (the eval_score rule's ``max_drop``). ``skipped`` without a golden set; ``insufficient_data``
  when no scheduled round had completed before the rollback (no baseline to compare with).

The verdict: ``recovered`` as soon as every check has passed (or is skipped) — possibly well before
the deadline; ``not_recovered`` at the deadline when a check failed (a failing check may still pass
before the deadline: stable's window keeps sliding); ``insufficient_data`` at the deadline when no
check failed but one never had enough data (e.g. no stable traffic at all after the flip). Only
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

from litellm_canary.core.config import ErrorRateTrigger, Rollout, TtftP99Trigger
from litellm_canary.detection.outcome_windows import WindowStats
from litellm_canary.detection.rules import error_rate_z

__all__ = [
    "CHECKS",
    "TTFT_BASELINE_TOLERANCE",
    "Baseline",
    "CheckName",
    "CheckResult",
    "CheckState",
    "GoldenScore",
    "Verdict",
    "check_error_rate_recovered",
    "check_golden_recovered",
    "check_ttft_recovered",
    "decide",
    "golden_error",
]

Verdict = Literal["recovered", "not_recovered", "insufficient_data"]
CheckState = Literal["passed", "failed", "insufficient_data", "skipped", "pending"]
CheckName = Literal["error_rate", "ttft_p99", "golden"]
CHECKS: tuple[CheckName, ...] = ("error_rate", "ttft_p99", "golden")

#: Stable's post-rollback p99 TTFT counts as "back at baseline" up to this multiple of its p99 before
#: the rollback (the TTFT sketch alone is accurate to 2 %; p99 over a few hundred requests is noisy).
TTFT_BASELINE_TOLERANCE = 1.25

_REL_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class GoldenScore:
    """A golden-set replay's summary: cases, mean score (``None`` without cases), failed cases."""

    n: int
    mean_score: float | None
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Baseline:
    """Stable before the rollback: what "service restored" is measured against."""

    error_rate: float
    error_rate_source: Literal["stable", "config", "none"]
    stable_requests: int
    stable_failures: int
    ttft_p99_ms: float | None
    ttft_samples: int
    ttft_slo_ms: float | None
    golden_mean: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "error_rate_source": self.error_rate_source,
            "stable_requests": self.stable_requests,
            "stable_failures": self.stable_failures,
            "ttft_p99_ms": self.ttft_p99_ms,
            "ttft_samples": self.ttft_samples,
            "ttft_slo_ms": self.ttft_slo_ms,
            "golden_mean": self.golden_mean,
        }

    @classmethod
    def from_stats(
        cls,
        rollout: Rollout,
        errors: WindowStats,
        ttft: WindowStats,
        golden_mean: float | None = None,
    ) -> Baseline:
        """The baseline from stable's windows just before the rollback (see the module docstring)."""
        rule = rollout.triggers.error_rate
        if errors.requests >= rule.min_requests:
            rate, source = errors.error_rate, "stable"
        elif rule.baseline_error_rate is not None:
            rate, source = rule.baseline_error_rate, "config"
        else:
            rate, source = 0.0, "none"
        ttft_rule = rollout.triggers.ttft_p99
        p99 = ttft.ttft_p99_s
        return cls(
            error_rate=rate,
            error_rate_source=source,  # type: ignore[arg-type]
            stable_requests=errors.requests,
            stable_failures=errors.failures,
            ttft_p99_ms=None if p99 is None or ttft.ttft_samples < ttft_rule.min_requests else p99 * 1e3,
            ttft_samples=ttft.ttft_samples,
            ttft_slo_ms=ttft_rule.slo_ms if ttft_rule.enabled else None,
            golden_mean=golden_mean,
        )


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's state with a one-line summary and the values it read."""

    name: CheckName
    state: CheckState
    summary: str
    observed: Mapping[str, float | int | str | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "summary": self.summary, **self.observed}


def check_error_rate_recovered(rule: ErrorRateTrigger, baseline: Baseline, post: WindowStats) -> CheckResult:
    """Stable's error rate since the flip is not significantly above the baseline's threshold."""
    observed: dict[str, float | int | str | None] = {
        "error_rate": post.error_rate,
        "requests": post.requests,
        "failures": post.failures,
        "baseline_error_rate": baseline.error_rate,
        "baseline_source": baseline.error_rate_source,
    }
    if post.requests < rule.min_requests:
        return CheckResult(
            "error_rate",
            "insufficient_data",
            f"stable has {post.requests} requests since the flip, needs {rule.min_requests}",
            observed,
        )
    base = baseline.error_rate
    threshold = max(rule.ratio * base, base + rule.min_delta)
    z = error_rate_z(post, None, base)
    observed.update(threshold=threshold, z_score=None if math.isinf(z) else round(z, 3))
    above = post.error_rate > threshold + _REL_TOL * abs(threshold)
    significant = rule.alpha is None or z > NormalDist().inv_cdf(1 - rule.alpha)
    if above and significant:
        return CheckResult(
            "error_rate",
            "failed",
            f"stable error rate {post.error_rate:.2%} since the flip is above {threshold:.2%} "
            f"(baseline {base:.2%} from {baseline.error_rate_source}; {post.requests} requests)",
            observed,
        )
    return CheckResult(
        "error_rate",
        "passed",
        f"stable error rate {post.error_rate:.2%} since the flip is back at baseline {base:.2%} "
        f"(limit {threshold:.2%}; {post.requests} requests)",
        observed,
    )


def check_ttft_recovered(rule: TtftP99Trigger, baseline: Baseline, post: WindowStats) -> CheckResult:
    """Stable's p99 TTFT since the flip is within the SLO or back at its pre-rollback baseline."""
    if not rule.enabled:
        return CheckResult("ttft_p99", "skipped", "the ttft_p99 rule is disabled: no SLO to check")
    p99_ms = None if post.ttft_p99_s is None else post.ttft_p99_s * 1e3
    limit = None if baseline.ttft_p99_ms is None else baseline.ttft_p99_ms * TTFT_BASELINE_TOLERANCE
    observed: dict[str, float | int | str | None] = {
        "p99_ms": p99_ms,
        "samples": post.ttft_samples,
        "slo_ms": rule.slo_ms,
        "baseline_p99_ms": baseline.ttft_p99_ms,
        "baseline_limit_ms": limit,
    }
    if p99_ms is None or post.ttft_samples < rule.min_requests:
        return CheckResult(
            "ttft_p99",
            "insufficient_data",
            f"stable has {post.ttft_samples} TTFT samples since the flip, needs {rule.min_requests}",
            observed,
        )
    if p99_ms <= rule.slo_ms * (1 + _REL_TOL):
        return CheckResult(
            "ttft_p99",
            "passed",
            f"stable p99 TTFT {p99_ms:.0f} ms is within the SLO {rule.slo_ms:g} ms",
            observed,
        )
    if limit is not None and p99_ms <= limit * (1 + _REL_TOL):
        return CheckResult(
            "ttft_p99",
            "passed",
            f"stable p99 TTFT {p99_ms:.0f} ms is back at baseline {baseline.ttft_p99_ms:.0f} ms "
            f"(limit {limit:.0f} ms), above the SLO {rule.slo_ms:g} ms",
            observed,
        )
    base = "no baseline" if limit is None else f"baseline limit {limit:.0f} ms"
    return CheckResult(
        "ttft_p99",
        "failed",
        f"stable p99 TTFT {p99_ms:.0f} ms is above the SLO {rule.slo_ms:g} ms and {base}",
        observed,
    )


def check_golden_recovered(
    max_drop: float, baseline_mean: float | None, result: GoldenScore | None, *, configured: bool = True
) -> CheckResult:
    """The golden replay against stable after the flip scores at least ``(1 - max_drop)`` x baseline."""
    if not configured:
        return CheckResult("golden", "skipped", "no golden set configured for this rollout")
    if result is None:
        return CheckResult("golden", "pending", "golden replay against stable still running")
    observed: dict[str, float | int | str | None] = {
        "mean_score": result.mean_score,
        "cases": result.n,
        "failed_cases": result.failures,
        "baseline_mean": baseline_mean,
    }
    if result.mean_score is None or result.n == 0:
        return CheckResult("golden", "insufficient_data", "the golden replay scored no case", observed)
    if baseline_mean is None:
        return CheckResult(
            "golden",
            "insufficient_data",
            f"golden mean {result.mean_score:.3f} after the flip, but no scheduled golden round had "
            "completed before the rollback: no baseline to compare with",
            observed,
        )
    floor = baseline_mean * (1 - max_drop)
    observed["floor"] = floor
    if result.mean_score >= floor - _REL_TOL * abs(floor):
        return CheckResult(
            "golden",
            "passed",
            f"stable golden mean {result.mean_score:.3f} is at baseline {baseline_mean:.3f} "
            f"(floor {floor:.3f})",
            observed,
        )
    return CheckResult(
        "golden",
        "failed",
        f"stable golden mean {result.mean_score:.3f} is below {floor:.3f} ({1 - max_drop:.0%} of baseline "
        f"{baseline_mean:.3f}; {result.failures} of {result.n} cases failed)",
        observed,
    )


def golden_error(error: BaseException) -> CheckResult:
    """The golden check when the replay itself could not run."""
    return CheckResult("golden", "failed", f"the golden replay against stable failed: {type(error).__name__}")


def decide(checks: Mapping[CheckName, CheckResult], *, final: bool) -> Verdict | None:
    """The verdict of ``checks``; ``None`` while undecided (before the deadline, ``final=False``)."""
    states = [check.state for check in checks.values()]
    if all(state in ("passed", "skipped") for state in states):
        return "recovered"
    if not final:
        return None
    if "failed" in states:
        return "not_recovered"
    return "insufficient_data"

"""Post-rollback verification: did sending everybody to stable actually restore service?

This module owns the *judgement* after a rollback, and nothing else: the pre-rollback
:class:`Baseline` of stable, the three checks (error rate, p99 time to first token, golden-set eval
score) as pure functions, and :class:`Verification`, which watches stable's outcomes from the flip on
and turns the checks into one verdict within ``verify_within_s`` of the rollback. Running it in the
background, writing the incident and escalating belong to :mod:`litellm_canary.followup`. No I/O, no
litellm, no Prometheus; time comes from an injected monotonic clock.

The checks themselves and the verdict rule are :mod:`litellm_canary.response.recovery_checks`
(re-exported here).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litellm_canary.core.config import Rollout
from litellm_canary.detection.outcome_windows import Clock, OutcomeWindow
from litellm_canary.response.recovery_checks import (
    CHECKS,
    TTFT_BASELINE_TOLERANCE,
    Baseline,
    CheckName,
    CheckResult,
    GoldenScore,
    Verdict,
    check_error_rate_recovered,
    check_golden_recovered,
    check_ttft_recovered,
    decide,
    golden_error,
)

__all__ = [
    "CHECKS",
    "TTFT_BASELINE_TOLERANCE",
    "Baseline",
    "BaselineWatch",
    "CheckResult",
    "GoldenScore",
    "Verdict",
    "Verification",
    "VerificationResult",
    "check_error_rate_recovered",
    "check_golden_recovered",
    "check_ttft_recovered",
    "decide",
]


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """A verdict with every check, the baseline, and when (seconds after the rollback decision)."""

    verdict: Verdict
    checks: Mapping[CheckName, CheckResult]
    baseline: Baseline
    elapsed_s: float
    within_s: float

    @property
    def failed(self) -> list[str]:
        return [name for name, check in self.checks.items() if check.state == "failed"]

    @property
    def restored(self) -> bool:
        return self.verdict == "recovered"

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "failed_checks": self.failed,
            "elapsed_s": round(self.elapsed_s, 3),
            "within_s": self.within_s,
            "checks": {name: check.as_dict() for name, check in self.checks.items()},
            "baseline": self.baseline.as_dict(),
        }


class Verification:
    """The watch over stable after one rollback. Thread-safe :meth:`record`; call :meth:`evaluate`
    periodically until it returns a result (at the latest when ``verify_within_s`` has passed).

    ``started`` is the rollback decision's monotonic time (the deadline counts from it).
    """

    def __init__(
        self,
        rollout: Rollout,
        baseline: Baseline,
        *,
        clock: Clock,
        started: float,
        golden_configured: bool = False,
        max_drop: float | None = None,
    ) -> None:
        self.rollout = rollout
        self.baseline = baseline
        self.within_s = rollout.verify_within_s
        self.started = started
        self._clock = clock
        t = rollout.triggers
        # Everything recorded here came after the flip, so the rule's own window is right: it holds
        # every outcome since the flip until it is longer ago than the window. (A window of
        # verify_within_s dropped the first outcomes when the final evaluation ran late.)
        self._errors = OutcomeWindow(t.error_rate.window_s, clock=clock)
        self._ttft = OutcomeWindow(t.ttft_p99.window_s, clock=clock)
        self._golden_configured = golden_configured
        self._max_drop = t.eval_score.max_drop if max_drop is None else max_drop
        self._golden: CheckResult | None = None
        self._lock = threading.Lock()
        self.result: VerificationResult | None = None

    @property
    def deadline(self) -> float:
        return self.started + self.within_s

    def record(self, ok: bool, ttft_s: float | None = None) -> None:
        """One stable outcome after the flip."""
        if self.result is not None:
            return
        self._errors.record(ok)
        self._ttft.record(ok, ttft_s if ok else None)

    def set_golden(self, result: GoldenScore | BaseException) -> None:
        """The golden replay's result (or the error that stopped it)."""
        check = (
            golden_error(result)
            if isinstance(result, BaseException)
            else check_golden_recovered(self._max_drop, self.baseline.golden_mean, result)
        )
        with self._lock:
            self._golden = check

    def checks(self) -> dict[CheckName, CheckResult]:
        """Every check as of now."""
        t = self.rollout.triggers
        with self._lock:
            golden = self._golden
        if golden is None:
            golden = check_golden_recovered(
                self._max_drop, self.baseline.golden_mean, None, configured=self._golden_configured
            )
        return {
            "error_rate": check_error_rate_recovered(t.error_rate, self.baseline, self._errors.stats()),
            "ttft_p99": check_ttft_recovered(t.ttft_p99, self.baseline, self._ttft.stats()),
            "golden": golden,
        }

    def evaluate(self) -> VerificationResult | None:
        """The result once decided (then always the same one); ``None`` while undecided."""
        if self.result is not None:
            return self.result
        now = self._clock()
        checks = self.checks()
        verdict = decide(checks, final=now >= self.deadline)
        if verdict is None:
            return None
        self.result = VerificationResult(verdict, checks, self.baseline, now - self.started, self.within_s)
        return self.result


class BaselineWatch:
    """Stable's outcomes of one rollout over the error_rate and ttft_p99 windows, always on, so that a
    rollback can take the pre-rollback :class:`Baseline` at the moment it happens."""

    def __init__(self, rollout: Rollout, *, clock: Clock) -> None:
        self.rollout = rollout
        t = rollout.triggers
        self._errors = OutcomeWindow(t.error_rate.window_s, clock=clock)
        self._ttft = OutcomeWindow(t.ttft_p99.window_s, clock=clock)

    def record(self, ok: bool, ttft_s: float | None = None) -> None:
        self._errors.record(ok)
        self._ttft.record(ok, ttft_s if ok else None)

    def baseline(self, golden_mean: float | None = None) -> Baseline:
        return Baseline.from_stats(self.rollout, self._errors.stats(), self._ttft.stats(), golden_mean)

"""Post-rollback verification: each check, its edges, the verdict, the deadline (fake clock)."""

from __future__ import annotations

from typing import Any

import pytest

from litellm_canary.core.config import ErrorRateTrigger, Rollout, TtftP99Trigger
from litellm_canary.detection.outcome_windows import OutcomeWindow, WindowStats
from litellm_canary.response.verification import (
    TTFT_BASELINE_TOLERANCE,
    Baseline,
    BaselineWatch,
    GoldenScore,
    Verification,
    check_error_rate_recovered,
    check_golden_recovered,
    check_ttft_recovered,
    decide,
)
from tests.support.helpers import FakeClock, chat_rollout


def _stats(requests: int, failures: int = 0, ttfts_s: list[float] | None = None) -> WindowStats:
    clock = FakeClock()
    window = OutcomeWindow(60.0, clock=clock)
    window.record_batch(requests - failures, failures, ttfts_s or [])
    return window.stats()


def _baseline(**overrides: Any) -> Baseline:
    fields: dict[str, Any] = {
        "error_rate": 0.01,
        "error_rate_source": "stable",
        "stable_requests": 1000,
        "stable_failures": 10,
        "ttft_p99_ms": 400.0,
        "ttft_samples": 1000,
        "ttft_slo_ms": 2000.0,
        "golden_mean": 0.9,
    }
    fields.update(overrides)
    return Baseline(**fields)


def _rollout(**triggers: Any) -> Rollout:
    return Rollout.model_validate(chat_rollout(verify_within_s=10.0, triggers=triggers))


# -- error rate ------------------------------------------------------------------------------------

RULE = ErrorRateTrigger(ratio=2.0, min_requests=20, min_delta=0.01, alpha=0.01)


def test_error_rate_needs_min_requests_after_the_flip() -> None:
    check = check_error_rate_recovered(RULE, _baseline(), _stats(19))
    assert check.state == "insufficient_data"
    assert "19 requests" in check.summary and "needs 20" in check.summary


def test_error_rate_back_at_baseline_passes() -> None:
    check = check_error_rate_recovered(RULE, _baseline(), _stats(1000, 12))
    assert check.state == "passed"
    assert check.observed["threshold"] == pytest.approx(0.02)


def test_error_rate_still_high_fails() -> None:
    check = check_error_rate_recovered(RULE, _baseline(), _stats(1000, 200))
    assert check.state == "failed"
    assert "20.00%" in check.summary and "above 2.00%" in check.summary


def test_error_rate_above_the_limit_but_not_significant_passes() -> None:
    # 1 failure in 20 is 5 % > 2 %, but far from significant against a 1 % baseline at alpha 0.01
    check = check_error_rate_recovered(RULE, _baseline(), _stats(20, 1))
    assert check.state == "passed"


def test_error_rate_exactly_at_the_limit_passes() -> None:
    rule = ErrorRateTrigger(ratio=2.0, min_requests=20, min_delta=0.01, alpha=None)
    assert check_error_rate_recovered(rule, _baseline(), _stats(100, 2)).state == "passed"
    assert check_error_rate_recovered(rule, _baseline(), _stats(100, 3)).state == "failed"


def test_error_rate_without_any_baseline_tolerates_min_delta_only() -> None:
    baseline = _baseline(error_rate=0.0, error_rate_source="none")
    rule = ErrorRateTrigger(min_requests=20, min_delta=0.05, alpha=None)
    assert check_error_rate_recovered(rule, baseline, _stats(100, 5)).state == "passed"
    assert check_error_rate_recovered(rule, baseline, _stats(100, 6)).state == "failed"


# -- TTFT ------------------------------------------------------------------------------------------

TTFT = TtftP99Trigger(slo_ms=500.0, min_requests=10)


def test_ttft_within_slo_passes() -> None:
    check = check_ttft_recovered(TTFT, _baseline(), _stats(20, ttfts_s=[0.3] * 20))
    assert check.state == "passed" and "within the SLO" in check.summary


def test_ttft_above_slo_but_back_at_baseline_passes() -> None:
    baseline = _baseline(ttft_p99_ms=800.0)
    check = check_ttft_recovered(TTFT, baseline, _stats(20, ttfts_s=[0.9] * 20))
    assert check.state == "passed" and "back at baseline" in check.summary
    limit = 800.0 * TTFT_BASELINE_TOLERANCE
    assert check.observed["baseline_limit_ms"] == pytest.approx(limit)


def test_ttft_above_slo_and_baseline_fails() -> None:
    check = check_ttft_recovered(TTFT, _baseline(ttft_p99_ms=400.0), _stats(20, ttfts_s=[2.0] * 20))
    assert check.state == "failed"
    no_baseline = check_ttft_recovered(TTFT, _baseline(ttft_p99_ms=None), _stats(20, ttfts_s=[2.0] * 20))
    assert no_baseline.state == "failed" and "no baseline" in no_baseline.summary


def test_ttft_needs_samples_and_is_skipped_when_the_rule_is_off() -> None:
    assert check_ttft_recovered(TTFT, _baseline(), _stats(9, ttfts_s=[0.1] * 9)).state == "insufficient_data"
    assert check_ttft_recovered(TTFT, _baseline(), _stats(50)).state == "insufficient_data"  # no TTFTs
    off = TtftP99Trigger(enabled=False)
    assert check_ttft_recovered(off, _baseline(), _stats(0)).state == "skipped"


# -- golden ----------------------------------------------------------------------------------------


def test_golden_states() -> None:
    assert check_golden_recovered(0.05, 0.9, None, configured=False).state == "skipped"
    assert check_golden_recovered(0.05, 0.9, None).state == "pending"
    assert check_golden_recovered(0.05, None, GoldenScore(4, 1.0)).state == "insufficient_data"
    assert check_golden_recovered(0.05, 0.9, GoldenScore(0, None)).state == "insufficient_data"
    at_floor = check_golden_recovered(0.05, 0.8, GoldenScore(4, 0.76))
    assert at_floor.state == "passed"  # 0.8 x 0.95 = 0.76 exactly
    below = check_golden_recovered(0.05, 0.8, GoldenScore(4, 0.75, failures=1))
    assert below.state == "failed" and "1 of 4 cases failed" in below.summary


# -- the verdict -----------------------------------------------------------------------------------


def _checks(*states: str) -> dict[str, Any]:
    from litellm_canary.response.verification import CheckResult

    names = ("error_rate", "ttft_p99", "golden")
    return {name: CheckResult(name, state, "") for name, state in zip(names, states, strict=True)}  # type: ignore[arg-type]


def test_decide() -> None:
    assert decide(_checks("passed", "skipped", "passed"), final=False) == "recovered"
    assert decide(_checks("passed", "failed", "passed"), final=False) is None  # may still recover
    assert decide(_checks("passed", "failed", "insufficient_data"), final=True) == "not_recovered"
    assert decide(_checks("passed", "insufficient_data", "pending"), final=False) is None
    assert decide(_checks("passed", "insufficient_data", "passed"), final=True) == "insufficient_data"


def test_verification_recovers_early_once_every_check_passes() -> None:
    clock = FakeClock()
    rollout = _rollout(error_rate={"min_requests": 5}, ttft_p99={"min_requests": 5})
    verification = Verification(rollout, _baseline(), clock=clock, started=clock.now)
    for _ in range(4):
        verification.record(True, 0.1)
    assert verification.evaluate() is None
    verification.record(True, 0.1)
    clock.now += 1.5
    result = verification.evaluate()
    assert result is not None and result.verdict == "recovered" and result.restored
    assert result.elapsed_s == pytest.approx(1.5)
    assert verification.evaluate() is result  # decided once


def test_verification_not_recovered_at_the_deadline_names_the_failed_check() -> None:
    clock = FakeClock()
    rollout = _rollout(error_rate={"min_requests": 5, "alpha": None}, ttft_p99={"min_requests": 5})
    verification = Verification(rollout, _baseline(), clock=clock, started=clock.now)
    clock.now += 5.0
    for _ in range(10):
        verification.record(False)
    for _ in range(10):
        verification.record(True, 0.1)
    clock.now += 4.9
    assert verification.evaluate() is None  # failing, but the deadline is not reached
    clock.now += 0.1
    result = verification.evaluate()
    assert result is not None and result.verdict == "not_recovered"
    assert result.failed == ["error_rate"]
    assert result.as_dict()["checks"]["ttft_p99"]["state"] == "passed"


def test_verification_insufficient_data_without_stable_traffic() -> None:
    clock = FakeClock()
    verification = Verification(_rollout(), _baseline(), clock=clock, started=clock.now)
    clock.now += 10.0
    result = verification.evaluate()
    assert result is not None and result.verdict == "insufficient_data" and result.failed == []


def test_verification_waits_for_the_golden_replay() -> None:
    clock = FakeClock()
    rollout = _rollout(error_rate={"min_requests": 1}, ttft_p99={"enabled": False})
    verification = Verification(
        rollout, _baseline(golden_mean=0.9), clock=clock, started=clock.now, golden_configured=True
    )
    verification.record(True, 0.1)
    assert verification.evaluate() is None
    verification.set_golden(GoldenScore(4, 0.5, failures=2))
    clock.now += 10
    result = verification.evaluate()
    assert result is not None and result.verdict == "not_recovered" and result.failed == ["golden"]


def test_a_golden_replay_that_raises_fails_the_check() -> None:
    clock = FakeClock()
    rollout = _rollout(error_rate={"min_requests": 1}, ttft_p99={"enabled": False})
    verification = Verification(rollout, _baseline(), clock=clock, started=clock.now, golden_configured=True)
    verification.set_golden(RuntimeError("boom"))
    assert verification.checks()["golden"].state == "failed"


def test_post_flip_window_slides_so_a_late_recovery_counts() -> None:
    clock = FakeClock()
    rollout = _rollout(
        error_rate={"min_requests": 5, "window_s": 2.0, "alpha": None}, ttft_p99={"enabled": False}
    )
    verification = Verification(rollout, _baseline(), clock=clock, started=clock.now)
    for _ in range(10):
        verification.record(False)
    clock.now += 1.0
    assert verification.evaluate() is None
    clock.now += 3.0  # the failures slid out of the 2 s window
    for _ in range(10):
        verification.record(True)
    result = verification.evaluate()
    assert result is not None and result.verdict == "recovered"


def test_outcomes_right_after_the_flip_still_count_when_the_final_evaluation_runs_late() -> None:
    clock = FakeClock()
    rollout = _rollout(error_rate={"min_requests": 5, "alpha": None}, ttft_p99={"enabled": False})
    verification = Verification(rollout, _baseline(), clock=clock, started=clock.now)
    for _ in range(6):
        verification.record(False)
    clock.now += rollout.verify_within_s + 3.0  # a loaded machine evaluates 3 s past the deadline
    result = verification.evaluate()
    assert result is not None and result.verdict == "not_recovered" and result.failed == ["error_rate"]


# -- the baseline ----------------------------------------------------------------------------------


def test_baseline_sources() -> None:
    clock = FakeClock()
    rollout = _rollout(error_rate={"min_requests": 10}, ttft_p99={"min_requests": 10})
    watch = BaselineWatch(rollout, clock=clock)
    for _ in range(9):
        watch.record(True, 0.2)
    baseline = watch.baseline()
    assert (baseline.error_rate, baseline.error_rate_source, baseline.ttft_p99_ms) == (0.0, "none", None)
    watch.record(False)
    baseline = watch.baseline(golden_mean=0.7)
    assert baseline.error_rate_source == "stable" and baseline.error_rate == pytest.approx(0.1)
    assert baseline.ttft_samples == 9 and baseline.golden_mean == 0.7
    configured = _rollout(error_rate={"min_requests": 10, "baseline_error_rate": 0.02})
    assert BaselineWatch(configured, clock=clock).baseline().error_rate_source == "config"

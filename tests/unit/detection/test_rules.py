"""Rollback rules: thresholds, insufficient data, continuity (``for:``) and gaps; module purity."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import litellm_canary.detection.outcome_windows as windows_module
import litellm_canary.detection.rollout_monitor as monitor_module
import litellm_canary.detection.rules as triggers_module
from litellm_canary.core.config import ErrorRateTrigger, EvalScoreTrigger, FastFailTrigger, TtftP99Trigger
from litellm_canary.detection.outcome_windows import WindowStats
from litellm_canary.detection.rules import (
    EvalScores,
    RuleStatus,
    RuleTracker,
    check_error_rate,
    check_eval_score,
    check_fast_fail,
    check_ttft_p99,
)


def window(
    requests: int, failures: int = 0, *, p99_s: float | None = None, samples: int | None = None
) -> WindowStats:
    ttft_samples = (requests if p99_s is not None else 0) if samples is None else samples
    return WindowStats(120.0, requests, failures, ttft_samples, p99_s)


# --- error_rate --------------------------------------------------------------------------------------

# The threshold semantics alone (ratio 2, min_delta 0.01, min_requests 20, window 120 s); the
# significance guard has its own tests.
ERROR_RATE = ErrorRateTrigger(alpha=None)


def test_error_rate_defaults() -> None:
    assert (ERROR_RATE.ratio, ERROR_RATE.window_s, ERROR_RATE.min_requests) == (2.0, 120.0, 20)
    assert (ERROR_RATE.min_delta, ERROR_RATE.baseline_error_rate) == (0.01, None)


def test_error_rate_exactly_at_ratio_times_baseline_does_not_breach() -> None:
    stable = window(100, 2)  # 2 %: threshold max(4 %, 3 %) = 4 %
    assert check_error_rate(ERROR_RATE, window(100, 4), stable).state == "ok"
    breaching = check_error_rate(ERROR_RATE, window(100, 5), stable)
    assert breaching.state == "breaching"
    assert breaching.threshold == pytest.approx(0.04)
    assert breaching.observed["baseline_source"] == "stable"
    assert breaching.observed["baseline_error_rate"] == 0.02


def test_error_rate_must_also_exceed_baseline_plus_min_delta() -> None:
    rule = ErrorRateTrigger(min_delta=0.05, alpha=None)
    stable = window(200, 2)  # 1 %: 2x is 2 %, but + min_delta is 6 %
    assert check_error_rate(rule, window(100, 5), stable).state == "ok"  # 5 % > 2 %, not > 6 %
    assert check_error_rate(rule, window(100, 6), stable).state == "ok"  # exactly 6 %
    status = check_error_rate(rule, window(100, 7), stable)
    assert status.state == "breaching"
    assert status.threshold == pytest.approx(0.06)


def test_error_rate_with_a_zero_baseline_needs_more_than_min_delta() -> None:
    stable = window(500, 0)
    assert check_error_rate(ERROR_RATE, window(100, 1), stable).state == "ok"  # exactly 1 %
    assert check_error_rate(ERROR_RATE, window(100, 2), stable).state == "breaching"
    no_delta = ErrorRateTrigger(min_delta=0.0, alpha=None)
    assert check_error_rate(no_delta, window(100, 0), stable).state == "ok"
    assert check_error_rate(no_delta, window(100, 1), stable).state == "breaching"


def test_error_rate_exact_threshold_is_not_decided_by_float_rounding() -> None:
    # 3 x 0.15 is 0.44999999999999996 in floats; 45/100 is 0.45: exactly at the threshold.
    rule = ErrorRateTrigger(ratio=3.0, baseline_error_rate=0.15, alpha=None)
    assert 3.0 * 0.15 < 45 / 100
    assert check_error_rate(rule, window(100, 45), window(0)).state == "ok"
    assert check_error_rate(rule, window(100, 46), window(0)).state == "breaching"


def test_error_rate_with_a_low_traffic_canary_has_insufficient_data() -> None:
    status = check_error_rate(ERROR_RATE, window(19, 19), window(1000, 0))
    assert status.state == "insufficient_data"
    assert "19 requests, needs 20" in status.summary
    assert check_error_rate(ERROR_RATE, window(20, 19), window(1000, 0)).state == "breaching"


def test_error_rate_falls_back_to_the_configured_baseline_while_stable_is_quiet() -> None:
    rule = ErrorRateTrigger(baseline_error_rate=0.05, alpha=None)  # threshold max(10 %, 6 %) = 10 %
    quiet_stable = window(19, 0)
    status = check_error_rate(rule, window(100, 10), quiet_stable)
    assert (status.state, status.observed["baseline_source"]) == ("ok", "config")
    assert check_error_rate(rule, window(100, 11), quiet_stable).state == "breaching"
    # As soon as stable has min_requests, its own rate (0 %) is the baseline.
    status = check_error_rate(rule, window(100, 2), window(20, 0))
    assert (status.state, status.observed["baseline_source"]) == ("breaching", "stable")


def test_error_rate_without_stable_traffic_or_configured_baseline_has_insufficient_data() -> None:
    status = check_error_rate(ERROR_RATE, window(100, 100), window(19, 0))
    assert status.state == "insufficient_data"
    assert "baseline_error_rate" in status.summary


# --- ttft_p99 ----------------------------------------------------------------------------------------

TTFT = TtftP99Trigger()  # slo 2000 ms, ratio 2: 4000 ms; window 300 s; min_requests 20


def test_ttft_defaults() -> None:
    assert (TTFT.slo_ms, TTFT.ratio, TTFT.window_s, TTFT.min_requests) == (2000.0, 2.0, 300.0, 20)


def test_ttft_p99_exactly_at_ratio_times_slo_does_not_breach() -> None:
    assert check_ttft_p99(TTFT, window(50, p99_s=4.0)).state == "ok"
    status = check_ttft_p99(TTFT, window(50, p99_s=4.001))
    assert (status.state, status.threshold) == ("breaching", 4000.0)
    assert status.observed["canary_ttft_p99_ms"] == pytest.approx(4001.0)
    # Fractional SLOs work the same: 1.5 x 333.3 ms.
    odd = TtftP99Trigger(slo_ms=333.3, ratio=1.5)
    assert check_ttft_p99(odd, window(50, p99_s=1.5 * 333.3 / 1000)).state == "ok"
    assert check_ttft_p99(odd, window(50, p99_s=0.5)).state == "breaching"


def test_ttft_needs_min_requests_ttft_samples_not_just_requests() -> None:
    status = check_ttft_p99(TTFT, window(500, p99_s=9.0, samples=19))
    assert status.state == "insufficient_data"
    assert check_ttft_p99(TTFT, window(500, p99_s=9.0, samples=20)).state == "breaching"
    assert check_ttft_p99(TTFT, window(500)).state == "insufficient_data"  # no TTFT at all


def test_ttft_reports_stable_p99_for_context() -> None:
    status = check_ttft_p99(TTFT, window(50, p99_s=5.0), window(80, p99_s=0.9))
    assert status.observed["stable_ttft_p99_ms"] == pytest.approx(900.0)
    assert status.observed["stable_ttft_samples"] == 80


# --- fast_fail ---------------------------------------------------------------------------------------

FAST_FAIL = FastFailTrigger()  # error_rate 0.5, window 10 s, min_requests 10


def test_fast_fail_defaults() -> None:
    assert (FAST_FAIL.error_rate, FAST_FAIL.window_s, FAST_FAIL.min_requests) == (0.5, 10.0, 10)


def test_fast_fail_breaches_at_exactly_its_error_rate() -> None:
    assert check_fast_fail(FAST_FAIL, window(10, 5)).state == "breaching"  # >=, unlike the others
    assert check_fast_fail(FAST_FAIL, window(10, 4)).state == "ok"
    assert (
        check_fast_fail(FastFailTrigger(error_rate=0.3), window(10, 3)).state == "breaching"
    )  # 0.3 in floats


def test_fast_fail_with_few_requests_has_insufficient_data() -> None:
    assert check_fast_fail(FAST_FAIL, window(9, 9)).state == "insufficient_data"


# --- eval_score --------------------------------------------------------------------------------------

EVAL = EvalScoreTrigger()  # max_drop 5 %, min_samples 30


def test_eval_score_breaches_below_stable_minus_max_drop() -> None:
    at = EvalScores(canary_mean=0.76, canary_samples=30, stable_mean=0.8, stable_samples=30)
    assert check_eval_score(EVAL, at).state == "ok"  # exactly 0.8 x 0.95
    below = EvalScores(canary_mean=0.759, canary_samples=30, stable_mean=0.8, stable_samples=30)
    status = check_eval_score(EVAL, below)
    assert status.state == "breaching"
    assert status.threshold == pytest.approx(0.76)
    assert status.observed["canary_mean"] == 0.759


def test_eval_score_needs_min_samples_on_each_side() -> None:
    assert check_eval_score(EVAL, None).state == "insufficient_data"
    for canary_n, stable_n in ((29, 100), (100, 29)):
        scores = EvalScores(
            canary_mean=0.1, canary_samples=canary_n, stable_mean=0.9, stable_samples=stable_n
        )
        assert check_eval_score(EVAL, scores).state == "insufficient_data"


# --- RuleTracker (continuity) ------------------------------------------------------------------------

BREACHING = RuleStatus("error_rate", "breaching", "bad")
OK = RuleStatus("error_rate", "ok", "fine")
NO_DATA = RuleStatus("error_rate", "insufficient_data", "quiet")


def run(tracker: RuleTracker, plan: list[tuple[float, RuleStatus]]) -> list[str]:
    return [tracker.evaluate(check, at).state for at, check in plan]


def test_a_rule_fires_after_breaching_continuously_for_its_window() -> None:
    tracker = RuleTracker(for_s=2.0, step_s=0.5)
    states = run(tracker, [(t * 0.5, BREACHING) for t in range(6)])
    assert states == ["breaching", "breaching", "breaching", "breaching", "firing", "firing"]
    assert tracker.breaching_since == 0.0


def test_the_breaching_status_carries_breaching_since() -> None:
    tracker = RuleTracker(for_s=10.0, step_s=1.0)
    tracker.evaluate(BREACHING, 3.0)
    status = tracker.evaluate(BREACHING, 4.0)
    assert (status.state, status.breaching_since) == ("breaching", 3.0)


@pytest.mark.parametrize("interruption", [OK, NO_DATA])
def test_one_non_breaching_evaluation_resets_the_streak(interruption: RuleStatus) -> None:
    tracker = RuleTracker(for_s=2.0, step_s=0.5)
    plan = [(0.0, BREACHING), (0.5, BREACHING), (1.0, BREACHING), (1.5, interruption)]
    plan += [(1.5 + 0.5 * i, BREACHING) for i in range(1, 6)]
    states = run(tracker, plan)
    assert states[3] == interruption.state
    assert states[4:] == ["breaching", "breaching", "breaching", "breaching", "firing"]
    assert tracker.breaching_since == 2.0


def test_an_evaluation_gap_longer_than_two_steps_resets_the_streak() -> None:
    """(for_s / 10 is below two steps here; see the next test for the other case.)"""
    tracker = RuleTracker(for_s=5.0, step_s=1.0)
    # Gaps of exactly two steps are tolerated: the streak runs on from 0.
    assert run(tracker, [(0.0, BREACHING), (1.0, BREACHING), (3.0, BREACHING), (5.0, BREACHING)]) == [
        "breaching",
        "breaching",
        "breaching",
        "firing",
    ]
    tracker = RuleTracker(for_s=5.0, step_s=1.0)
    assert run(tracker, [(0.0, BREACHING), (1.0, BREACHING), (3.001, BREACHING)]) == ["breaching"] * 3
    assert tracker.breaching_since == 3.001  # just over two steps: a new streak
    plan = [(3.001 + i, BREACHING) for i in range(1, 6)]
    assert run(tracker, plan) == ["breaching"] * 4 + ["firing"]


def test_a_long_for_tolerates_a_gap_of_a_tenth_of_it() -> None:
    tracker = RuleTracker(for_s=120.0, step_s=0.5)
    assert run(tracker, [(0.0, BREACHING), (12.0, BREACHING)]) == ["breaching"] * 2
    assert tracker.breaching_since == 0.0
    assert run(tracker, [(24.001, BREACHING)]) == ["breaching"]
    assert tracker.breaching_since == 24.001


def test_a_zero_for_fires_on_the_first_breaching_evaluation() -> None:
    tracker = RuleTracker(for_s=0.0, step_s=0.5)
    assert run(tracker, [(0.0, OK), (0.5, BREACHING), (1.0, OK)]) == ["ok", "firing", "ok"]


# --- purity -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [windows_module, triggers_module, monitor_module])
def test_the_modules_import_no_litellm_http_or_prometheus(module: object) -> None:
    source = Path(module.__file__).read_text()  # type: ignore[attr-defined]
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    allowed_project = {
        "litellm_canary.core.config",
        "litellm_canary.core.decision",
        "litellm_canary.detection.outcome_windows",
        "litellm_canary.detection.rules",
    }
    for name in imported:
        if name.startswith("litellm_canary"):
            assert name in allowed_project
        else:
            root = name.split(".")[0]
            assert root in {
                "__future__",
                "math",
                "statistics",
                "threading",
                "collections",
                "dataclasses",
                "functools",
                "typing",
            }


def test_the_significance_guard_holds_back_noise_but_not_real_regressions() -> None:
    stable = window(600, 6)  # 1 %
    noisy = window(600, 14)  # 2.3 %: above 2 x baseline, but within Poisson noise of 600 requests
    assert check_error_rate(ErrorRateTrigger(alpha=None), noisy, stable).state == "breaching"
    guarded = check_error_rate(ErrorRateTrigger(), noisy, stable)
    assert guarded.state == "ok" and "not significant" in guarded.summary
    assert 1.0 < guarded.observed["z_score"] < 2.33  # type: ignore[operator]
    assert check_error_rate(ErrorRateTrigger(), window(600, 30), stable).state == "breaching"  # 5 %
    assert check_error_rate(ErrorRateTrigger(), window(40, 20), window(40, 0)).state == "breaching"

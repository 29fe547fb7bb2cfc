"""Smoke tests of the benchmarks: each runs once with ``--quick --json`` in a subprocess.

We check the shape of the JSON it prints and the invariants that hold whatever the machine's speed
(every call decided and closed, no canary decision after a rollback, no in-flight stream lost) --
never a timing threshold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.support import REPO

ROOT = REPO
TIMEOUT_S = 300


def run_benchmark(name: str, *args: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--quick", "--json", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=ROOT,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    lines = completed.stdout.splitlines()
    assert len(lines) == 1, f"expected exactly one JSON line on stdout, got: {completed.stdout[:2000]!r}"
    result = json.loads(lines[0])
    assert isinstance(result, dict)
    return result


def assert_types(result: dict[str, Any], types: dict[str, type | tuple[type, ...]]) -> None:
    for key, expected in types.items():
        assert key in result, f"missing key {key!r}"
        assert isinstance(result[key], expected) and not isinstance(result[key], bool), (key, result[key])


@pytest.fixture(scope="module")
def overhead() -> dict[str, Any]:
    return run_benchmark("overhead")


@pytest.fixture(scope="module")
def switch() -> dict[str, Any]:
    return run_benchmark("switch_latency")


def test_overhead_reports_medians_and_their_ratio(overhead: dict[str, Any]) -> None:
    assert_types(
        overhead,
        {
            "baseline_us_median": float,
            "canary_us_median": float,
            "ratio": float,
            "decision_us_median": float,
            "iterations": int,
            "decision_iterations": int,
        },
    )
    assert overhead["iterations"] == overhead["settings"]["iterations"]
    assert overhead["baseline_us_median"] > 0 and overhead["canary_us_median"] > 0
    assert overhead["ratio"] == pytest.approx(
        overhead["canary_us_median"] / overhead["baseline_us_median"], rel=1e-3
    )
    assert 0 < overhead["decision_us_median"] <= overhead["decision_us_p90"]
    breakdown = overhead["decision_breakdown_us"]
    assert set(breakdown) == {"flag_read", "deployment_choice", "other"}
    assert all(isinstance(value, float) and value >= 0 for value in breakdown.values())
    assert all(isinstance(value, float) for value in overhead["decision_parts_isolated_us"].values())
    assert set(overhead["meets_targets"]) == {"ratio", "decision_us_median"}


def test_overhead_decides_and_closes_every_canary_call(overhead: dict[str, Any]) -> None:
    calls = overhead["canary_calls"]
    assert calls == overhead["settings"]["warmup"] + overhead["iterations"]
    # The flag serves "stable": every end-to-end call and every timed decision went there.
    assert overhead["canary_outcomes"] == calls
    assert overhead["canary_attempts"] == {"stable:success": calls}
    assert overhead["decision_sides"] == {"stable": overhead["decision_iterations"], "canary": 0}
    assert overhead["open_attempts_after"] == 0


def test_switch_latency_reports_restore_latency(switch: dict[str, Any]) -> None:
    assert_types(
        switch,
        {
            "clients": int,
            "flips": int,
            "decision_to_restored_us_p50": float,
            "decision_to_restored_us_p99": float,
            "canary_after_flip": int,
            "inflight_at_flip": int,
            "inflight_completed": int,
            "inflight_failed": int,
        },
    )
    assert switch["clients"] == switch["settings"]["clients"]
    assert switch["flips"] == switch["settings"]["flips"]
    assert 0 < switch["decision_to_restored_us_p50"] <= switch["decision_to_restored_us_p99"]
    assert 0 < switch["rollback_call_us_p50"] <= switch["rollback_call_us_p99"]
    assert switch["restore_timeouts"] == 0


def test_no_canary_decision_between_a_rollback_and_its_rearm(switch: dict[str, Any]) -> None:
    assert switch["canary_after_flip"] == 0
    # Not vacuous: every flip waited for (at least) one stable decision before re-arming.
    assert switch["stable_decisions_while_rolled_back"] >= switch["flips"]


def test_streams_in_flight_at_a_flip_finish_on_the_canary(switch: dict[str, Any]) -> None:
    assert switch["inflight_at_flip"] >= switch["flips"]  # each flip waited for canary attempts
    assert switch["inflight_failed"] == 0
    assert switch["inflight_expired"] == 0 and switch["inflight_pending"] == 0
    assert switch["inflight_completed"] == switch["inflight_at_flip"]
    assert switch["drain_timeouts"] == 0
    # The clients' and the upstreams' view agree: no stream failed or was cut.
    assert switch["client_canary_failed"] == 0 and switch["client_inflight_failed"] == 0
    assert all(counts["failed"] == 0 for counts in switch["client_streams"].values())
    assert switch["client_streams"]["canary"]["completed"] >= switch["inflight_at_flip"]
    for counts in switch["upstream_streams"].values():
        assert counts["failed"] == 0 and counts["cancelled"] == 0


def test_detection_rolls_back_a_broken_canary_and_nothing_reaches_it_afterwards() -> None:
    result = run_benchmark("detection")
    scenario = result["errors_100"]
    assert scenario["rule"] == "fast_fail"
    assert isinstance(scenario["detect_s"], float) and scenario["detect_s"] > 0
    assert scenario["canary_requests_after_decision"] == 0
    assert result["settings"]["scale"] > 0


def test_flip_storm_leaves_no_thread_per_rollback_and_fails_nothing() -> None:
    storm = run_benchmark("flip_storm", "--cycles", "40", "--seconds", "60", "--clients", "6")
    assert_types(
        storm,
        {
            "clients": int,
            "cycles": int,
            "requests": int,
            "failed": int,
            "canary_after_rollback_returned": int,
            "threads_before": int,
            "threads_after_drain": int,
            "rss_mb_before": float,
            "rss_mb_after_drain": float,
        },
    )
    assert storm["clients"] == 6 and storm["cycles"] == 40 and storm["requests"] > 0
    assert storm["failed"] == 0, storm["errors"]
    assert storm["canary_after_rollback_returned"] == 0
    assert storm["canary_decisions_checked"] > 0  # not vacuous: canary decisions were made and checked
    # one follow-up worker for all 40 rollbacks, not a thread each (the old code left 40 behind)
    assert storm["threads_after_drain"] - storm["threads_before"] <= 10
    assert storm["last_followup_verdict"] == "cancelled" and storm["drained"] is True

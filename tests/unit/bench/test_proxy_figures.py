"""``bench proxy``'s pure parts: the round order and schedules, the figures of some rounds, the
comparison with its intervals and verdicts, the workers phase's figures, the settings' checks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from litellm_canary.bench.proxy_load import Request, RoundRun, alternating_rounds, scheduled_round
from litellm_canary.bench.proxy_report import comparison, figures, summary_lines, workers_figures
from litellm_canary.bench.proxy_setup import default_settings
from litellm_canary.bench.round_stats import VERDICTS


def test_rounds_alternate_which_configuration_goes_first() -> None:
    assert alternating_rounds("a", "b", 4) == [("a", "b"), ("b", "a"), ("a", "b"), ("b", "a")]
    assert alternating_rounds("a", "b", 1) == [("a", "b")]


@pytest.mark.parametrize(("schedule", "overlapped"), [("paired", True), ("alternating", False)])
async def test_a_paired_round_loads_both_at_once_an_alternating_one_after_the_other(
    schedule: str, overlapped: bool
) -> None:
    events: list[str] = []

    async def run(name: str) -> RoundRun:
        events.append(f"start {name}")
        await asyncio.sleep(0)  # a yield, not a wait: a paired round lets the other one start here
        events.append(f"end {name}")
        return RoundRun(name)

    runs = await scheduled_round(schedule, ("b", "a"), run)
    assert [r.target for r in runs] == ["b", "a"]
    assert (events[:2] == ["start b", "start a"]) is overlapped


def _run(elapsed_s: float, *requests: Request, cpu_s: float | None = None, target: str = "x") -> RoundRun:
    return RoundRun(target, elapsed_s, list(requests), cpu_s)


def test_figures_pool_the_rounds_and_leave_failures_out_of_the_latencies() -> None:
    ok = [
        Request(0.0, float(ms), ms / 2, "chat-stable" if ms % 2 else "chat-canary", True)
        for ms in range(1, 101)
    ]
    failed = Request(0.0, 5000.0, None, None, False)
    result = figures([_run(1.0, *ok[:50], cpu_s=0.5), _run(1.0, *ok[50:], failed, cpu_s=0.51)])
    assert result["requests"] == 101 and result["failed"] == 1
    assert result["requests_per_s"] == 50.5  # 101 requests in 2 s of rounds
    assert result["served_by"] == {"chat-canary": 50, "chat-stable": 50}
    assert result["latency_ms_p50"] == 50.5 and result["latency_ms_max"] == 100.0  # not the failed 5000
    assert result["ttft_ms_p50"] == 25.25
    assert result["cpu_ms_per_request"] == 10.0 and result["cpu_unavailable"] is None  # 1.01 s / 101


def test_figures_of_no_requests_are_none_rather_than_an_error() -> None:
    result = figures([_run(0.0)])
    assert result["requests"] == 0 and result["requests_per_s"] is None and result["latency_ms_p99"] is None
    assert result["cpu_ms_per_request"] is None


def test_a_round_without_cpu_makes_the_cpu_figure_null_with_the_reason() -> None:
    one = Request(0.0, 10.0, 5.0, "chat-stable", True)
    unreadable = RoundRun("x", 1.0, [one], None, "cannot read /proc/9/stat: No such file or directory")
    result = figures([_run(1.0, one, cpu_s=0.01), unreadable])
    assert result["cpu_ms_per_request"] is None and "/proc/9/stat" in result["cpu_unavailable"]
    assert figures([_run(1.0, one)])["cpu_unavailable"] == "not measured"


def _side(target: str, rounds: int, ms: float, cpu_ms: float | None, per_s: float) -> list[RoundRun]:
    """``rounds`` rounds of 50 requests of ``ms`` each (a little spread), at ``per_s`` requests/s."""
    requests = [Request(0.0, ms + i / 10, ms / 2, "chat-stable", True) for i in range(50)]
    cpu = None if cpu_ms is None else cpu_ms * 50 / 1e3
    return [_run(50 / (per_s + r), *requests, cpu_s=cpu, target=target) for r in range(rounds)]


def test_the_comparison_has_ratios_intervals_and_a_verdict_per_target() -> None:
    runs = {
        "baseline": _side("baseline", 4, 10.0, 16.0, 100.0),
        "canary": _side("canary", 4, 10.5, 16.4, 98.0),
    }
    result = comparison(runs, "paired")
    assert result["schedule"] == "paired" and [r["first"] for r in result["rounds"]] == [None] * 4
    assert result["baseline"]["cpu_ms_per_request"] == 16.0 and result["canary"]["cpu_ms_per_request"] == 16.4
    assert result["cpu_ratio"] == pytest.approx(1.025) and result["cpu_ratio_round_median"] == 1.025
    assert result["cpu_ratio_interval"] == [1.025, 1.025]  # every round alike
    assert result["rounds"][0]["cpu_ratio"] == 1.025 and result["rounds"][0]["canary"]["cpu_ms_per_request"]
    low, high = result["throughput_ratio_interval"]
    assert low <= result["throughput_ratio"] <= high and low > 0.97
    assert result["p99_added_ms"] == 0.5 and result["p99_added_ms_interval"] == [0.5, 0.5]
    assert result["verdicts"] == {"throughput_ratio": "met", "cpu_ratio": "met", "p99_added_ms": "met"}
    assert result["targets"] == {"throughput_ratio": 0.97, "cpu_ratio": 1.03, "p99_added_ms": 1.0}
    assert result["intervals"] == (
        "95 % percentile bootstrap over 4 rounds (2000 resamples, seed 14); rough with fewer than 8 rounds "
        "(too narrow)"
    )


def test_alternating_rounds_name_the_first_and_unknown_cpu_is_not_resolved() -> None:
    runs = {
        "baseline": _side("baseline", 2, 10.0, None, 100.0),
        "canary": _side("canary", 2, 12.0, None, 90.0),
    }
    result = comparison(runs, "alternating")
    assert [r["first"] for r in result["rounds"]] == ["baseline", "canary"]
    assert result["cpu_ratio"] is None and result["cpu_ratio_interval"] is None
    assert result["verdicts"] == {
        "throughput_ratio": "missed",
        "cpu_ratio": "not_resolved",
        "p99_added_ms": "missed",
    }
    assert set(result["verdicts"].values()) <= set(VERDICTS)


def test_one_round_has_no_interval_and_every_verdict_is_not_resolved() -> None:
    runs = {"baseline": _side("baseline", 1, 10.0, 16.0, 100.0), "canary": _side("canary", 1, 90.0, 99, 9.0)}
    result = comparison(runs)
    assert result["intervals"] == "no intervals: 1 round(s), at least 2 needed"
    assert result["cpu_ratio_interval"] is None and result["throughput_ratio_interval"] is None
    assert set(result["verdicts"].values()) == {"not_resolved"}


def _paired_result() -> dict[str, Any]:
    runs = {
        "baseline": _side("baseline", 2, 10.0, 16.0, 100.0),
        "canary": _side("canary", 2, 10.5, 17.0, 95.0),
    }
    return {**comparison(runs, "paired"), "settings": {"clients": 2, "rounds": 2, "requests": 50}}


def test_the_summary_shows_the_cpu_rows_intervals_verdicts_and_every_round() -> None:
    result = _paired_result()
    result["workers_phase"] = None
    text = "\n".join(summary_lines(result))
    assert "2 paired rounds (both proxies at once)" in text and "CPU ms/req" in text
    assert "CPU per request ratio 1.0625 [1.0625, 1.0625], target <= 1.03: MISSED" in text
    assert "throughput ratio 0.9" in text and "target >= 0.97: MISSED" in text
    assert "p99 added ms 0.5 [0.5, 0.5], target <= 1: met" in text
    assert "\n     1 both" in text and "\n     2 both" in text
    assert "16.0    17.0  1.0625" in text

    result["canary"] = {**result["canary"], "cpu_ms_per_request": None, "cpu_unavailable": "no /proc"}
    result["cpu_ratio"] = None
    assert "CPU per request: not measured (no /proc)" in "\n".join(summary_lines(result))


def _flip(confirmed_ms: float, follower_latch_ms: float | None = 20.0) -> dict[str, float | None]:
    return {
        "propagation_ms": 0.0,
        "confirmed_ms": confirmed_ms,
        "follower_latch_ms": follower_latch_ms,
        "probe_rtt_ms": 5.0,
    }


@pytest.mark.parametrize(("confirmed", "expected"), [([60.0, 90.0, 100.0], "met"), ([60.0, 130.0], "missed")])
def test_the_workers_phase_compares_confirmed_p99_to_the_poll_interval_plus_50_ms(
    confirmed: list[float], expected: str
) -> None:
    phase = workers_figures({"worker_pids": [1, 2], "flips": [_flip(ms) for ms in confirmed]}, 2)
    assert phase["targets"]["confirmed_ms_p99"] == 100.0  # FLAG_POLL_MS 50 + 50
    assert phase["verdicts"]["confirmed_ms_p99"] == expected
    assert phase["confirmed_ms_max"] == max(confirmed) and phase["probe_rtt_ms_p50"] == 5.0


def test_the_followers_latch_time_is_judged_and_a_flip_without_it_is_counted() -> None:
    flips = [_flip(60.0, 30.0), _flip(60.0, 120.0), _flip(60.0, None)]
    phase = workers_figures({"worker_pids": [1, 2], "flips": flips}, 2)
    assert phase["follower_latch_ms_max"] == 120.0 and phase["followers_not_latched"] == 1
    assert phase["verdicts"] == {"follower_latch_ms_p99": "missed", "confirmed_ms_p99": "met"}
    assert "1 flips without its latch" in "\n".join(
        summary_lines({**_paired_result(), "workers_phase": phase})
    )


def test_the_redis_path_of_the_workers_phase_is_held_to_50_ms() -> None:
    flips = [_flip(40.0, 3.0), _flip(70.0, 4.0)]
    phase = workers_figures({"worker_pids": [1, 2], "flips": flips}, 2, "redis")
    assert (phase["via"], phase["targets"], phase["verdicts"]) == (
        "redis",
        {"follower_latch_ms_p99": 50.0, "confirmed_ms_p99": 50.0},
        {"follower_latch_ms_p99": "met", "confirmed_ms_p99": "missed"},
    )


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"requests": 0}, "requests must be positive"),
        ({"canary_percent": 101}, "canary_percent"),
        ({"workers": 1}, "workers must be at least 2"),
        ({"warmup": -1}, "warmup must not be negative"),
        ({"schedule": "sideways"}, "schedule must be one of paired, alternating, got 'sideways'"),
        ({"workers_via": "carrier-pigeon"}, "workers_via must be one of file, redis, got 'carrier-pigeon'"),
    ],
)
def test_settings_out_of_range_are_refused_by_name(override: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        default_settings(False, **override)


def test_the_schedule_is_paired_unless_asked() -> None:
    assert default_settings(True).schedule == "paired"
    assert default_settings(True, schedule="alternating").schedule == "alternating"

"""``bench proxy``'s pure parts: the round order, the figures of some rounds, the settings' checks."""

from __future__ import annotations

import pytest

from litellm_canary.bench.proxy_load import Request, RoundRun, alternating_rounds
from litellm_canary.bench.proxy_overhead import figures, summary_lines
from litellm_canary.bench.proxy_setup import default_settings


def test_rounds_alternate_which_configuration_goes_first() -> None:
    assert alternating_rounds("a", "b", 4) == [("a", "b"), ("b", "a"), ("a", "b"), ("b", "a")]
    assert alternating_rounds("a", "b", 1) == [("a", "b")]


def _run(elapsed_s: float, *requests: Request) -> RoundRun:
    return RoundRun("x", elapsed_s, list(requests))


def test_figures_pool_the_rounds_and_leave_failures_out_of_the_latencies() -> None:
    ok = [
        Request(0.0, float(ms), ms / 2, "chat-stable" if ms % 2 else "chat-canary", True)
        for ms in range(1, 101)
    ]
    failed = Request(0.0, 5000.0, None, None, False)
    result = figures([_run(1.0, *ok[:50]), _run(1.0, *ok[50:], failed)])
    assert result["requests"] == 101 and result["failed"] == 1
    assert result["requests_per_s"] == 50.5  # 101 requests in 2 s of rounds
    assert result["served_by"] == {"chat-canary": 50, "chat-stable": 50}
    assert result["latency_ms_p50"] == 50.5 and result["latency_ms_max"] == 100.0  # not the failed 5000
    assert result["ttft_ms_p50"] == 25.25


def test_figures_of_no_requests_are_none_rather_than_an_error() -> None:
    result = figures([_run(0.0)])
    assert result["requests"] == 0 and result["requests_per_s"] is None and result["latency_ms_p99"] is None


def test_the_summary_names_the_targets_and_every_round() -> None:
    row = {"requests_per_s": 100.0, "latency_ms_p50": 1.0, "latency_ms_p99": 2.0, "ttft_ms_p50": 0.5}
    side = {**row, "ttft_ms_p99": 1.0, "failed": 0, "served_by": {"chat-stable": 10}}
    result = {
        "settings": {"clients": 2, "rounds": 1, "requests": 10},
        "baseline": side,
        "canary": side,
        "throughput_ratio": 0.95,
        "throughput_ratio_round_median": 0.95,
        "p50_added_ms": 0.1,
        "p99_added_ms": 0.5,
        "meets_targets": {"throughput_ratio": False, "p99_added_ms": True},
        "rounds": [
            {
                "round": 1,
                "first": "baseline",
                "baseline": row,
                "canary": row,
                "throughput_ratio": 1.0,
                "p99_added_ms": 0.0,
            }
        ],
        "workers_phase": None,
    }
    text = "\n".join(summary_lines(result))
    assert "target >= 0.97: MISSED" in text and "target <= 1 ms: met" in text
    assert "\n     1 baseline" in text


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"requests": 0}, "requests must be positive"),
        ({"canary_percent": 101}, "canary_percent"),
        ({"workers": 1}, "workers must be at least 2"),
        ({"warmup": -1}, "warmup must not be negative"),
    ],
)
def test_settings_out_of_range_are_refused_by_name(override: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        default_settings(False, **override)

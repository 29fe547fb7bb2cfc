"""``litellm-canary bench proxy --quick --json`` run as a real process: two real LiteLLM proxies
(with and without the canary callback) and a ``--num_workers 2`` one.

Invariants only, never timing thresholds: the JSON has every figure, both configurations served
every request (the canary one from both sides of the rollout, the baseline from the group's
deployments as LiteLLM shuffles them), each proxy process's CPU per request was read (Linux
``/proc``), every target has a verdict, and the workers phase saw both workers, every one of them
answering the route probe, and no failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from litellm_canary.bench.round_stats import VERDICTS

TIMEOUT_S = 900  # three proxies start on a loaded 2-core machine


def test_bench_proxy_quick_json_compares_both_configurations_and_sees_both_workers() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "litellm_canary.cli", "bench", "proxy", "--quick", "--json", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    (line,) = completed.stdout.splitlines()
    result = json.loads(line)
    settings = result["settings"]
    expected = settings["rounds"] * settings["requests"]
    for name in ("baseline", "canary"):
        figures = result[name]
        assert figures["requests"] == expected and figures["failed"] == 0, figures
        assert sum(figures["served_by"].values()) == expected
        assert set(figures["served_by"]) <= {"chat-stable", "chat-canary"}
        assert figures["requests_per_s"] > 0
        assert 0 < figures["latency_ms_p50"] <= figures["latency_ms_p99"] <= figures["latency_ms_max"]
        assert 0 < figures["ttft_ms_p50"] <= figures["ttft_ms_p99"]
        assert figures["cpu_ms_per_request"] > 0 and figures["cpu_unavailable"] is None, figures
    assert "chat-stable" in result["canary"]["served_by"]  # the flag sends 90 % of users to stable
    assert len(result["rounds"]) == settings["rounds"]
    assert result["schedule"] == settings["schedule"] == "paired"  # the default
    assert [r["first"] for r in result["rounds"]] == [None, None]  # both proxies at once
    for r in result["rounds"]:
        assert r["baseline"]["cpu_ms_per_request"] > 0 and r["canary"]["cpu_ms_per_request"] > 0
        assert r["cpu_ratio"] > 0 and r["throughput_ratio"] > 0
    assert result["throughput_ratio"] > 0 and isinstance(result["p99_added_ms"], float)
    assert result["cpu_ratio"] > 0 and result["cpu_ratio_round_median"] > 0
    for key in ("throughput_ratio", "cpu_ratio", "p99_added_ms"):
        low, high = result[f"{key}_interval"]
        assert low <= high
    targets = {"throughput_ratio", "cpu_ratio", "p99_added_ms"}
    assert set(result["meets_targets"]) == set(result["targets"]) == set(result["verdicts"]) == targets
    assert set(result["verdicts"].values()) <= set(VERDICTS)

    workers = result["workers_phase"]
    assert len(workers["worker_pids"]) == 2
    assert len(workers["flips"]) == settings["flips"] >= 1
    assert workers["failed"] == 0
    for flip in [workers["first_flip"], *workers["flips"]]:
        assert flip["requests_after_rollback"] > 0 and flip["failed_after_rollback"] == 0
        assert flip["propagation_ms"] >= 0 and flip["confirmed_ms"] > 0 and flip["rollback_call_ms"] > 0
        assert flip["probes"] >= len(workers["worker_pids"]) and flip["probe_rtt_ms"] > 0
        assert flip["probe_regressions"] == 0
        # the other worker latched too (from the flag file's rollback mark), after the first
        assert flip["follower_latch_ms"] is not None and flip["follower_latch_ms"] >= 0
    assert 0 < workers["confirmed_ms_p50"] <= workers["confirmed_ms_p99"] <= workers["confirmed_ms_max"]
    assert workers["via"] == "file" and workers["followers_not_latched"] == 0
    assert workers["targets"] == {"follower_latch_ms_p99": 100.0, "confirmed_ms_p99": 100.0}
    assert set(workers["verdicts"].values()) <= set(VERDICTS)

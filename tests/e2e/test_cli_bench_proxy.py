"""``litellm-canary bench proxy --quick --json`` run as a real process: two real LiteLLM proxies
(with and without the canary callback) and a ``--num_workers 2`` one.

Invariants only, never timing thresholds: the JSON has every figure, both configurations served
every request (the canary one from both sides of the rollout, the baseline from the group's
deployments as LiteLLM shuffles them), and the workers phase saw both workers and no failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
    assert "chat-stable" in result["canary"]["served_by"]  # the flag sends 90 % of users to stable
    assert len(result["rounds"]) == settings["rounds"]
    assert [r["first"] for r in result["rounds"]] == ["baseline", "canary"]  # alternating
    assert result["throughput_ratio"] > 0 and isinstance(result["p99_added_ms"], float)
    assert set(result["meets_targets"]) == {"throughput_ratio", "p99_added_ms"}

    workers = result["workers_phase"]
    assert len(workers["worker_pids"]) == 2
    assert len(workers["flips"]) == settings["flips"] >= 1
    assert workers["failed"] == 0
    for flip in workers["flips"]:
        assert flip["requests_after_rollback"] > 0 and flip["failed_after_rollback"] == 0
        assert flip["propagation_ms"] >= 0 and flip["status_confirmed_ms"] > 0

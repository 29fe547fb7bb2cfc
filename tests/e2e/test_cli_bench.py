"""``litellm-canary bench`` run as a real process: a short offline switch run and an overhead run.

Invariants only, never timing thresholds: no canary decision between a rollback and its re-arm, no
canary stream in flight at a flip lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

TIMEOUT_S = 300


def _bench(*args: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "litellm_canary.cli", "bench", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    (line,) = completed.stdout.splitlines()
    result = json.loads(line)
    assert isinstance(result, dict)
    return result


def test_bench_switch_offline_latches_to_stable_and_loses_no_stream_in_flight() -> None:
    result = _bench("switch", "--offline", "--quick", "--clients", "12", "--flips", "3")
    assert result["clients"] == 12 and result["flips"] == 3
    assert result["canary_after_flip"] == 0
    assert result["stable_decisions_while_rolled_back"] >= 3  # not vacuous: each flip saw stable
    assert result["inflight_at_flip"] >= 3  # each flip waited for canary attempts in flight
    assert result["inflight_failed"] == 0
    assert result["inflight_completed"] == result["inflight_at_flip"]
    assert result["restore_timeouts"] == 0 and result["drain_timeouts"] == 0
    assert 0 < result["decision_to_restored_us_p50"] <= result["decision_to_restored_us_max"]


def test_bench_overhead_closes_every_call_it_decided() -> None:
    result = _bench("overhead", "--quick", "--iterations", "50")
    assert result["iterations"] == 50
    assert result["canary_attempts"] == {"stable:success": result["canary_calls"]}
    assert result["open_attempts_after"] == 0
    assert result["ratio"] > 0

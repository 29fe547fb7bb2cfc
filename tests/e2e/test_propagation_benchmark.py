"""Smoke test of ``benchmarks/propagation.py --quick --json``: real gateway processes, a real
``redis-server``; checks the JSON shape and that every flip reached every replica — never a timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from litellm_canary.testing.redis_server import require_redis_server
from tests.support import REPO

ROOT = REPO


def test_every_flip_reaches_every_replica_on_both_paths() -> None:
    require_redis_server()
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "propagation.py"), "--quick", "--json", "--replicas", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    lines = completed.stdout.splitlines()
    assert len(lines) == 1, f"expected one JSON line, got: {completed.stdout[:2000]!r}"
    results = json.loads(lines[0])
    assert [r["path"] for r in results] == ["flag_file", "redis"]
    for result in results:
        assert result["replicas"] == 2 and result["flips"] == 3
        assert result["reached_every_replica"] == 3, result  # every rollback reached every replica
        assert result["regressions"] == 0, result  # no replica went back to the canary before the re-arm
        for key in ("p50_ms", "p99_ms", "max_ms", "min_ms", "lower_bound_p50_ms", "probe_rtt_ms_median"):
            assert isinstance(result[key], float | int) and result[key] >= 0, (key, result[key])
        assert result["min_ms"] <= result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
        assert result["lower_bound_p50_ms"] <= result["p50_ms"]
        # targets: the flag file's poll interval (100 ms by default) + 50 ms; Redis 50 ms
        assert result["target_p99_ms"] == {"flag_file": 150.0, "redis": 50.0}[result["path"]]
        assert isinstance(result["meets_target"], bool)
        # the routing probe observed the switch (no chat round trip), with traffic on every replica
        assert result["probe"] == "route" and result["probe_requests"] > 0 and result["probe_errors"] == 0
        assert result["probe_rtt_ms"] == result["probe_rtt_ms_median"]
    assert sum(r["traffic_requests"] for r in results) > 0  # chat traffic ran meanwhile
    redis = results[1]
    # every replica reported its own latch time after the publish: propagation without the probe
    assert redis["latch_flips"] == 3, redis
    assert 0 <= redis["latch_ms_p50"] <= redis["latch_ms_max"] <= redis["max_ms"], redis

"""The switch benchmark's figures (the ``--json`` keys) and its human summary.

* ``decision_to_restored`` = first stable decision after ``t0`` minus ``t0``: ``rollback_call``
  (latch, flag-store write, log record, span) plus ``first_decision_wait`` (until the next request
  reaches the routing step).
* ``canary_after_flip`` counts canary decisions after ``rollback()`` returned and before the re-arm.

Targets (reported, not enforced): ``decision_to_restored_us_p99 <= 1000``, ``canary_after_flip == 0``,
``inflight_failed == 0``.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict
from typing import Any

from litellm_canary import Side
from litellm_canary.bench.report import quantile, rounded, table
from litellm_canary.bench.switch_setup import (
    CANARY_ID,
    STABLE_ID,
    TARGET_RESTORED_P99_US,
    DecisionLog,
    Run,
)

__all__ = ["summarize", "summary_lines"]


def first_stable_after(log: DecisionLog, start: float, end: float) -> float | None:
    index = bisect.bisect_right(log.times, start)
    while index < len(log.times) and log.times[index] < end:
        if not log.canary[index]:
            return log.times[index]
        index += 1
    return None


def flip_metrics(run: Run) -> dict[str, Any]:
    log = run.decisions
    restored_us: list[float] = []
    call_us: list[float] = []
    wait_us: list[float] = []
    canary_after = stable_while_rolled_back = 0
    for flip in run.flips:
        call_us.append((flip.returned - flip.t0) * 1e6)
        restored = first_stable_after(log, flip.t0, flip.rearmed)
        if restored is not None:
            restored_us.append((restored - flip.t0) * 1e6)
            wait_us.append((restored - flip.returned) * 1e6)
        window = slice(
            bisect.bisect_right(log.times, flip.returned), bisect.bisect_left(log.times, flip.rearmed)
        )
        in_window = log.canary[window]
        canary_after += sum(in_window)
        stable_while_rolled_back += len(in_window) - sum(in_window)
    elapsed = run.ended - run.started
    return {
        "decision_to_restored_us_p50": rounded(quantile(restored_us, 0.5)),
        "decision_to_restored_us_p99": rounded(quantile(restored_us, 0.99)),
        "decision_to_restored_us_max": rounded(max(restored_us, default=None)),
        "rollback_call_us_p50": rounded(quantile(call_us, 0.5)),
        "rollback_call_us_p99": rounded(quantile(call_us, 0.99)),
        "rollback_call_us_max": rounded(max(call_us, default=None)),
        "rollback_call_idle_us_p50": rounded(quantile(run.idle_rollback_us, 0.5)),
        "rollback_call_idle_us_p99": rounded(quantile(run.idle_rollback_us, 0.99)),
        "rollback_call_idle_us_max": rounded(max(run.idle_rollback_us, default=None)),
        "first_decision_wait_us_p50": rounded(quantile(wait_us, 0.5)),
        "first_decision_wait_us_p99": rounded(quantile(wait_us, 0.99)),
        "first_decision_wait_us_max": rounded(max(wait_us, default=None)),
        "latch_us_p50": rounded(quantile([f.latch_us for f in run.flips], 0.5)),
        "latch_us_p99": rounded(quantile([f.latch_us for f in run.flips], 0.99)),
        "latch_us_max": rounded(max((f.latch_us for f in run.flips), default=None)),
        "restore_timeouts": sum(not f.restored_seen for f in run.flips),
        "decisions": len(log.times),
        "decisions_per_s": rounded(len(log.times) / elapsed if elapsed > 0 else None),
        "canary_after_flip": canary_after,
        "stable_decisions_while_rolled_back": stable_while_rolled_back,
    }


def inflight_metrics(run: Run) -> dict[str, Any]:
    drains_ms = [f.drain_s * 1e3 for f in run.flips]
    return {
        "inflight_at_flip": sum(f.in_flight_at_flip for f in run.flips),
        "inflight_completed": sum(f.completed for f in run.flips),
        "inflight_failed": sum(f.failed for f in run.flips),
        "inflight_expired": sum(f.expired for f in run.flips),
        "inflight_pending": sum(f.pending for f in run.flips),
        "drain_timeouts": sum(not f.drained for f in run.flips),
        "drain_ms_p50": rounded(quantile(drains_ms, 0.5)),
        "drain_ms_p99": rounded(quantile(drains_ms, 0.99)),
        "drain_ms_max": rounded(max(drains_ms, default=None)),
        # Every failed attempt of the run, in flight at a flip or not; a failed attempt the Router
        # retried successfully is a failure here and a completed stream for the client.
        "attempt_failures": dict(sorted(run.attempt_failures.items())),
    }


def client_metrics(run: Run) -> dict[str, Any]:
    """The clients' view, to cross-check the controller's records."""
    per_side: dict[str, dict[str, int]] = {
        side: {"completed": 0, "failed": 0} for side in ("stable", "canary", "unrouted")
    }
    for stream in run.streams:
        side = stream.side.value if stream.side is not None else "unrouted"
        per_side[side]["completed" if stream.ok else "failed"] += 1
    canary_streams = [s for s in run.streams if s.side is Side.CANARY]
    spanning = [s for s in canary_streams if any(s.start < f.t0 < s.end for f in run.flips)]
    durations = [(s.end - s.start) * 1e3 for s in run.streams if s.ok]
    return {
        "client_streams": per_side,
        "client_canary_failed": per_side["canary"]["failed"],
        "client_inflight_at_flip": len(spanning),
        "client_inflight_failed": sum(not s.ok for s in spanning),
        "stream_ms_p50": rounded(quantile(durations, 0.5)),
        "stream_ms_p99": rounded(quantile(durations, 0.99)),
        "upstream_streams": {
            side: {
                key: stats.get(f"streams_{key}", 0) for key in ("started", "completed", "failed", "cancelled")
            }
            for side, stats in (
                ("stable", run.upstream_stats.get(STABLE_ID, {})),
                ("canary", run.upstream_stats.get(CANARY_ID, {})),
            )
        },
    }


def summarize(run: Run) -> dict[str, Any]:
    settings = run.settings
    result: dict[str, Any] = {"clients": settings.clients, "flips": len(run.flips)}
    result |= flip_metrics(run)
    result |= inflight_metrics(run)
    result |= client_metrics(run)
    p99 = result["decision_to_restored_us_p99"]
    result["elapsed_s"] = round(run.ended - run.started, 2)
    result["settings"] = asdict(settings)
    result["targets"] = {
        "decision_to_restored_us_p99": TARGET_RESTORED_P99_US,
        "canary_after_flip": 0,
        "inflight_failed": 0,
    }
    result["meets_targets"] = {
        "decision_to_restored_us_p99": p99 is not None and p99 <= TARGET_RESTORED_P99_US,
        "canary_after_flip": result["canary_after_flip"] == 0,
        "inflight_failed": result["inflight_failed"] == 0,
    }
    return result


def summary_lines(result: dict[str, Any]) -> list[str]:
    settings = result["settings"]
    met = result["meets_targets"]

    def verdict(key: str) -> str:
        return "met" if met[key] else "MISSED"

    streams = result["client_streams"]
    lines = [
        f"rollback under load: {result['clients']} streaming clients (think {settings['think_ms']:.0f} ms), "
        f"{result['flips']} flips in {result['elapsed_s']} s, {result['decisions_per_s']} decisions/s",
        f"  decision -> restored   p50 {result['decision_to_restored_us_p50']} µs, "
        f"p99 {result['decision_to_restored_us_p99']} µs (target <= {TARGET_RESTORED_P99_US:.0f}: "
        f"{verdict('decision_to_restored_us_p99')})",
        f"    = rollback() call    p50 {result['rollback_call_us_p50']} µs, "
        f"p99 {result['rollback_call_us_p99']} µs (latch p50 {result['latch_us_p50']} µs; "
        f"idle: p50 {result['rollback_call_idle_us_p50']} µs)",
        f"    + next decision      p50 {result['first_decision_wait_us_p50']} µs, "
        f"p99 {result['first_decision_wait_us_p99']} µs (waiting for the next request)",
        f"  canary after flip      {result['canary_after_flip']} of "
        f"{result['canary_after_flip'] + result['stable_decisions_while_rolled_back']} decisions "
        f"while rolled back ({verdict('canary_after_flip')})",
        f"  in flight at flips     {result['inflight_at_flip']} canary attempts: "
        f"{result['inflight_completed']} completed, {result['inflight_failed']} failed, "
        f"{result['inflight_expired']} expired, {result['inflight_pending']} pending "
        f"({verdict('inflight_failed')}); drain p50 {result['drain_ms_p50']} ms, "
        f"p99 {result['drain_ms_p99']} ms",
        f"  clients                stable {streams['stable']}, canary {streams['canary']}, "
        f"{result['client_inflight_at_flip']} canary streams spanned a flip, "
        f"{result['client_inflight_failed']} of them failed",
        f"  failed attempts        {result['attempt_failures'] or 'none'}",
    ]
    lines += table(
        result,
        {
            "decision -> restored (µs)": "decision_to_restored_us",
            "rollback() call (µs)": "rollback_call_us",
            "rollback() call idle (µs)": "rollback_call_idle_us",
            "latch (µs)": "latch_us",
            "next decision (µs)": "first_decision_wait_us",
            "drain (ms)": "drain_ms",
        },
    )
    return lines

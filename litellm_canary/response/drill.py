"""The rollback drill: rehearse a whole rollback, end to end, and check it against the standards.

This module owns ``litellm-canary drill``:

* :func:`run_drill` — self-contained and offline: two :class:`~litellm_canary.fake_upstream.FakeUpstream`
  servers (stable, canary) on loopback, a real ``litellm.Router`` with a canary attached (scaled-down
  windows), steady streaming traffic, then an injected canary fault (``errors``, ``slow-ttft`` or
  ``bad-answers``), automatic detection, rollback, drain and verification, and an incident tagged
  ``drill``. Some canary streams are held open across the flip (``Faults.hold_stream``) and released
  right after it, so the drill always proves that in-flight streams survive a rollback.
* :func:`run_live_drill` (:mod:`litellm_canary.response.live_drill`, re-exported here) — against a
  running gateway (``litellm-canary serve`` or a proxy with the canary's webhook): a synthetic
  Alertmanager alert (labels ``action=rollback``, ``drill=true``) at its webhook, then decision →
  restored, drain and verification read from its ``/canary/status``; the incident the gateway wrote
  gets the drill's measurements; ``rearm`` re-arms afterwards.

Both return one JSON-serialisable report whose ``passed`` says whether every drill standard was met
(:data:`STANDARDS`): decision → restored under 60 s, no request to the canary after the flip, no
in-flight request lost, verification ``recovered``.

In-flight requests are counted at the client, end to end: a canary stream is *in flight at the flip*
when its first chunk arrived before the latch and it had not ended; it is *completed* when it then
ended normally and *failed* (lost) otherwise. A request that fails before its first token because of
the injected fault is the fault, not a lost stream. The library's own per-attempt accounting
(``canary_attempts`` of the rollback) is reported next to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from litellm_canary.response.drill_report import (
    MEASUREMENTS,
    STANDARDS,
    DrillError,
    finish_report,
    record_drill,
)
from litellm_canary.response.live_drill import run_live_drill

__all__ = ["FAULTS", "MEASUREMENTS", "STANDARDS", "DrillError", "Fault", "run_drill", "run_live_drill"]

logger = logging.getLogger("litellm_canary.drill")

Fault = Literal["errors", "slow-ttft", "bad-answers"]
FAULTS: tuple[Fault, ...] = get_args(Fault)

GROUP = "drill"
STABLE_ID = "drill-stable"
CANARY_ID = "drill-canary"
FLAG_KEY = "drill-canary"
ANSWER = "the drill answer is forty two and it streams in several small pieces"
WRONG = "a wrong answer"

# Scaled-down windows: the drill finishes in seconds, not hours.
_TRIGGERS: dict[str, Any] = {
    "fast_fail": {"error_rate": 0.5, "window_s": 2.0, "min_requests": 8},
    "error_rate": {"window_s": 3.0, "min_requests": 10, "min_delta": 0.05},
    "ttft_p99": {"slo_ms": 500.0, "ratio": 2.0, "window_s": 1.5, "min_requests": 5},
    "eval_score": {"max_drop": 0.05, "alpha": 0.05, "min_samples": 10},
    "cooldown": True,
}
_RATE_PER_S = 30.0
_CHUNK_DELAY_S = 0.02
_WARMUP_S = 3.0
_HOLD_S = 0.5
_SLOW_TTFT_S = 2.0  # 2x the 1 s alert threshold (2 x SLO)
_VERIFY_WITHIN_S = 15.0
_DETECT_TIMEOUT_S = 20.0


@dataclass
class _Request:
    started: float
    first_chunk: float | None = None
    ended: float | None = None
    ok: bool | None = None
    deployment: str | None = None


# -- the self-contained drill ----------------------------------------------------------------------


def _config(fault: Fault, directory: Path, golden: Path) -> dict[str, Any]:
    return {
        "rollouts": [
            {
                "model_group": GROUP,
                "stable": [STABLE_ID],
                "canary": [CANARY_ID],
                "flag_key": FLAG_KEY,
                "triggers": _TRIGGERS,
                "verify_within_s": _VERIFY_WITHIN_S,
                "evals": {
                    "scorer": {"builtin": "exact", "reference": ANSWER},
                    "sample_rate": 1.0 if fault == "bad-answers" else 0.0,
                    "golden_set": str(golden),
                    "golden_interval_s": 3600.0,  # one round at start: the verification's baseline
                    "golden_timeout_s": 10.0,
                },
            }
        ],
        "flag_store": {"kind": "memory"},
        "evaluation_step_s": 0.05,
        "incidents": {"dir": str(directory)},
    }


class _Traffic:
    """Open-loop streaming traffic: one new request every ``1/rate`` s, each its own task."""

    def __init__(self, router: Any, rate_per_s: float) -> None:
        self._router = router
        self._interval = 1.0 / rate_per_s
        self.requests: list[_Request] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run())

    async def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            task = asyncio.create_task(self._one(number))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)  # the traffic's pace

    async def _one(self, number: int) -> None:
        request = _Request(started=time.monotonic())
        self.requests.append(request)
        try:
            stream = await self._router.acompletion(
                model=GROUP,
                messages=[{"role": "user", "content": "drill question"}],
                stream=True,
                user=f"drill-user-{number}",
            )
            async for chunk in stream:
                if request.first_chunk is None:
                    request.first_chunk = time.monotonic()
                    hidden = getattr(chunk, "_hidden_params", None) or {}
                    request.deployment = hidden.get("model_id")
            request.ok = True
        except Exception:
            request.ok = False
        finally:
            request.ended = time.monotonic()

    async def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._runner is not None:
            await self._runner
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def _fault_changes(fault: Fault) -> dict[str, Any]:
    if fault == "errors":
        return {"error_rate": 1.0, "error_status": 503, "chunk_delay_s": _CHUNK_DELAY_S}
    if fault == "slow-ttft":
        return {"first_token_delay_s": _SLOW_TTFT_S, "chunk_delay_s": _CHUNK_DELAY_S}
    return {"bad_answer": WRONG, "chunk_delay_s": _CHUNK_DELAY_S}


async def run_drill(fault: Fault, *, incidents_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run the self-contained drill with ``fault``; returns the report (see the module docstring)."""
    if fault not in FAULTS:
        raise DrillError(f"unknown fault {fault!r} (choose one of {list(FAULTS)})")
    from litellm.router import Router

    from litellm_canary.canary import attach
    from litellm_canary.testing.fake_upstream import FakeUpstream

    began = time.monotonic()
    directory = (
        Path(incidents_dir) if incidents_dir else Path(tempfile.mkdtemp(prefix="litellm-canary-drill-"))
    )
    directory.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="litellm-canary-drill-work-"))
    golden = work / "golden.jsonl"
    golden.write_text(
        "".join(
            json.dumps({"prompt": f"drill golden {i}", "expect": {"exact": ANSWER}}) + "\n" for i in range(4)
        )
    )
    loop = asyncio.get_running_loop()
    flipped = asyncio.Event()
    records: list[Any] = []

    stable = FakeUpstream("drill-stable", answer=ANSWER)
    canary_upstream = FakeUpstream("drill-canary", answer=ANSWER)
    canary = None
    traffic = None
    try:
        await asyncio.gather(asyncio.to_thread(stable.start), asyncio.to_thread(canary_upstream.start))
        for upstream in (stable, canary_upstream):
            upstream.set_faults(chunk_delay_s=_CHUNK_DELAY_S)
        router = Router(
            model_list=[stable.deployment(GROUP, STABLE_ID), canary_upstream.deployment(GROUP, CANARY_ID)],
            num_retries=0,
        )
        canary = attach(router, _config(fault, directory, golden))

        def on_rollback(record: Any) -> None:
            if not record.repeated:
                records.append(record)
                loop.call_soon_threadsafe(flipped.set)

        canary.controller.on_rollback(on_rollback)
        canary.set_canary_percent(GROUP, 50.0)
        traffic = _Traffic(router, _RATE_PER_S)
        traffic.start()
        await asyncio.sleep(_WARMUP_S)  # steady healthy traffic: stable's baseline, golden baseline
        canary_upstream.update_faults(hold_stream=True, hold_after_chunks=2)
        await asyncio.sleep(_HOLD_S)  # canary streams started now stay open across the flip
        canary_upstream.set_faults(**_fault_changes(fault))
        fault_at = time.monotonic()
        try:
            await asyncio.wait_for(flipped.wait(), _DETECT_TIMEOUT_S)
        except TimeoutError:
            raise DrillError(
                f"the {fault} fault was not detected within {_DETECT_TIMEOUT_S:g} s: no rollback"
            ) from None
        record = records[0]
        canary_upstream.release_streams()
        summary = await asyncio.wait_for(
            asyncio.wrap_future(canary.followup.result(GROUP)), _VERIFY_WITHIN_S + 15.0
        )
        await traffic.stop(timeout=10.0)
        report = _local_report(fault, record, fault_at, traffic.requests, summary)
        report["incident_path"] = None
        report["duration_s"] = round(time.monotonic() - began, 3)
        finish_report(report)
        report["incident_path"] = record_drill(directory, summary.get("incident_id"), report)
        return report
    finally:
        if traffic is not None:
            await traffic.stop(timeout=5.0)
        if canary is not None:
            canary.detach()
        canary_upstream.release_streams()
        await asyncio.gather(asyncio.to_thread(stable.stop), asyncio.to_thread(canary_upstream.stop))
        shutil.rmtree(work, ignore_errors=True)


def _local_report(
    fault: Fault, record: Any, fault_at: float, requests: list[_Request], summary: Mapping[str, Any]
) -> dict[str, Any]:
    flip = record.latched_mono
    at_flip = [
        r
        for r in requests
        if r.deployment == CANARY_ID
        and r.first_chunk is not None
        and r.first_chunk <= flip
        and (r.ended is None or r.ended > flip)
    ]
    served_after = sum(1 for r in requests if r.deployment == CANARY_ID and r.started > flip)
    cause = dict(record.cause or {})
    return {
        "mode": "local",
        "fault": fault,
        "trigger": cause.get("rule"),
        "trigger_summary": cause.get("summary"),
        "detect_s": round(record.decided_mono - fault_at, 3),
        "decision_to_restored_ms": round((record.latched_mono - record.decided_mono) * 1e3, 3),
        "canary_requests_after_flip": int(summary.get("canary_decisions_after_flip") or 0) + served_after,
        "inflight_at_flip": len(at_flip),
        "inflight_completed": sum(1 for r in at_flip if r.ok),
        "inflight_failed": sum(1 for r in at_flip if not r.ok),
        "library_canary_attempts": summary.get("canary_attempts"),
        "drained": summary.get("drained"),
        "drained_after_ms": summary.get("drained_after_ms"),
        "requests": len(requests),
        "verification": summary.get("verification"),
    }

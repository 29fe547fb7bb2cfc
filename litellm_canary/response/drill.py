"""The rollback drill: rehearse a whole rollback, end to end, and check it against the standards.

This module owns ``litellm-canary drill``:

* :func:`run_drill` — self-contained and offline: two :class:`~litellm_canary.fake_upstream.FakeUpstream`
  servers (stable, canary) on loopback, a real ``litellm.Router`` with a canary attached (scaled-down
  windows), steady streaming traffic, then an injected canary fault (``errors``, ``slow-ttft`` or
  ``bad-answers``), automatic detection, rollback, drain and verification, and an incident tagged
  ``drill``. Some canary streams are held open across the flip (``Faults.hold_stream``) and released
  right after it, so the drill always proves that in-flight streams survive a rollback.
* :func:`run_live_drill` — against a running gateway (``litellm-canary serve`` or a proxy with the
  canary's webhook): a synthetic Alertmanager alert (labels ``action=rollback``, ``drill=true``) at its
  webhook, then decision → restored, drain and verification read from its ``/canary/status``; the
  incident the gateway wrote gets the drill's measurements; ``rearm`` re-arms afterwards.

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
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

__all__ = ["FAULTS", "STANDARDS", "DrillError", "Fault", "run_drill", "run_live_drill"]

logger = logging.getLogger("litellm_canary.drill")

Fault = Literal["errors", "slow-ttft", "bad-answers"]
FAULTS: tuple[Fault, ...] = get_args(Fault)

#: The drill standards: a drill passes when every one holds.
STANDARDS = {
    "decision_to_restored_ms": "decision -> restored under 60 s",
    "canary_requests_after_flip": "no request decided or served canary after the flip",
    "inflight_failed": "no canary stream in flight at the flip lost",
    "verification": "post-rollback verification verdict 'recovered'",
}
RESTORED_LIMIT_MS = 60_000.0
#: The figures every drill report carries (beside ``verification`` and ``incident_path``).
MEASUREMENTS = (
    "fault",
    "trigger",
    "detect_s",
    "decision_to_restored_ms",
    "canary_requests_after_flip",
    "inflight_at_flip",
    "inflight_completed",
    "inflight_failed",
)

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


class DrillError(Exception):
    """A drill that could not run (bad arguments, an unreachable gateway); exit status 2."""


@dataclass
class _Request:
    started: float
    first_chunk: float | None = None
    ended: float | None = None
    ok: bool | None = None
    deployment: str | None = None


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _standards(report: Mapping[str, Any]) -> dict[str, bool]:
    restored = report.get("decision_to_restored_ms")
    verification = report.get("verification") or {}
    return {
        "decision_to_restored_ms": restored is not None and restored < RESTORED_LIMIT_MS,
        "canary_requests_after_flip": report.get("canary_requests_after_flip") == 0,
        "inflight_failed": report.get("inflight_failed") == 0,
        "verification": verification.get("verdict") == "recovered",
    }


def _finish(report: dict[str, Any]) -> dict[str, Any]:
    standards = _standards(report)
    report["standards"] = standards
    report["missed"] = [STANDARDS[name] for name, ok in standards.items() if not ok]
    report["passed"] = all(standards.values())
    return report


def _record_drill(directory: Path, incident_id: str | None, report: dict[str, Any]) -> str | None:
    """Tag the incident ``drill`` and store the drill's measurements in it; returns its JSON path."""
    if incident_id is None:
        return None
    from litellm_canary.response.incidents import IncidentStore

    store = IncidentStore(directory)
    drill = {key: report.get(key) for key in (*MEASUREMENTS, "passed", "mode")}
    drill["verdict"] = (report.get("verification") or {}).get("verdict")
    drill["missed"] = report.get("missed")
    store.update(incident_id, kind="drill", drill=drill)
    return str(directory / f"{incident_id}.json")


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
        _finish(report)
        report["incident_path"] = _record_drill(directory, summary.get("incident_id"), report)
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


# -- the live drill --------------------------------------------------------------------------------


def _alert(group: str) -> dict[str, Any]:
    fingerprint = secrets.token_hex(8)
    return {
        "version": "4",
        "groupKey": f"litellm-canary-drill:{fingerprint}",
        "status": "firing",
        "receiver": "litellm-canary",
        "groupLabels": {"alertname": "LitellmCanaryDrill"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "LitellmCanaryDrill",
                    "action": "rollback",
                    "model_group": group,
                    "drill": "true",
                    "severity": "critical",
                },
                "annotations": {"summary": "synthetic rollback drill (litellm-canary drill --live)"},
                "startsAt": _iso_now(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "litellm-canary-drill",
                "fingerprint": fingerprint,
            }
        ],
    }


def run_live_drill(
    config_path: str | os.PathLike[str],
    *,
    url: str | None = None,
    group: str | None = None,
    rearm: bool = False,
    token: str | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Drill the running gateway of ``config_path`` (see the module docstring)."""
    import httpx

    from litellm_canary.integrations.gateway import load_gateway_config

    config = load_gateway_config(Path(config_path))
    incidents = config.canary.incidents
    if incidents is None:
        raise DrillError(
            f"{config_path}: --live needs 'incidents: {{dir: ...}}' in the litellm_canary section"
        )
    groups = [r.model_group for r in config.canary.rollouts]
    if group is None:
        if len(groups) != 1:
            raise DrillError(f"the config has several rollouts {groups}: choose one with --group")
        group = groups[0]
    elif group not in groups:
        raise DrillError(f"--group {group!r} is not a rollout of the config (rollouts: {groups})")
    token = token or os.environ.get(config.gateway.token_env)
    if not token:
        raise DrillError(f"no bearer token: set ${config.gateway.token_env} (gateway.token_env)")
    base = (url or f"http://{config.gateway.host}:{config.gateway.port}").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise DrillError(f"--url must be an http(s) URL, got {base!r}")
    within = config.canary.rollout(group).verify_within_s
    deadline = time.monotonic() + (timeout_s if timeout_s is not None else within + 60.0)
    headers = {"Authorization": f"Bearer {token}"}

    with httpx.Client(base_url=base, headers=headers, timeout=10.0) as client:

        def status() -> dict[str, Any]:
            response = client.get("/canary/status")
            if response.status_code != 200:
                raise DrillError(
                    f"GET {base}/canary/status: HTTP {response.status_code}: {response.text[:200]}"
                )
            data: dict[str, Any] = response.json()["groups"][group]
            return data

        try:
            before = status()
        except httpx.HTTPError as error:
            raise DrillError(f"cannot reach the gateway at {base}: {error}") from None
        if before["state"] == "rolled_back":
            raise DrillError(f"{group!r} is already rolled back: re-arm it before drilling")
        sent = time.monotonic()
        response = client.post("/alertmanager", json=_alert(group))
        answered_ms = round((time.monotonic() - sent) * 1e3, 3)
        if response.status_code != 200:
            raise DrillError(f"POST {base}/alertmanager: HTTP {response.status_code}: {response.text[:200]}")
        result = response.json()["alerts"][0]
        if result.get("result") != "rolled_back":
            raise DrillError(f"the gateway did not roll back: {result.get('result')}")
        record = result["rollback"]
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = status()["last_rollback"] or {}
            if last.get("complete"):
                break
            time.sleep(0.2)  # polling a remote HTTP status: there is no event to wait on
        attempts = last.get("canary_attempts") or record.get("canary_attempts") or {}
        report: dict[str, Any] = {
            "mode": "live",
            "gateway": base,
            "model_group": group,
            "fault": None,
            "trigger": "alert",
            "detect_s": None,
            "alert_to_response_ms": answered_ms,
            "decision_to_restored_ms": round(float(record["latch_us"]) / 1e3, 3),
            "canary_requests_after_flip": last.get("canary_decisions_after_flip"),
            "inflight_at_flip": attempts.get("at_flip"),
            "inflight_completed": attempts.get("completed"),
            "inflight_failed": None
            if not attempts
            else int(attempts.get("failed", 0))
            + int(attempts.get("expired", 0))
            + int(attempts.get("pending", 0)),
            "drained": last.get("drained"),
            "drained_after_ms": last.get("drained_after_ms"),
            "verification": last.get("verification"),
            "complete": bool(last.get("complete")),
        }
        _finish(report)
        report["incident_path"] = _record_drill(incidents.dir, last.get("incident_id"), report)
        report["rearmed"] = False
        if rearm:
            response = client.post("/canary/rearm", json={"model_group": group})
            report["rearmed"] = response.status_code == 200 and bool(response.json().get("rearmed"))
    return report

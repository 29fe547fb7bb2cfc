"""Rollback follow-up wired into attach: an incident per rollback, completed after drain and verified,
escalation when stable does not recover, sync SDK use, alert/drill kinds, status and config errors."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import threading
from pathlib import Path
from typing import Any

import httpx
import litellm
import pytest
from litellm import Router

import litellm_canary
from litellm_canary.core.config import ConfigError
from litellm_canary.integrations.admin_api import create_app
from litellm_canary.integrations.metrics import CanaryMetrics
from litellm_canary.response.drill_status import drill_status
from litellm_canary.response.followup import NOT_RESTORED_NOTE
from litellm_canary.response.incidents import IncidentStore
from tests.support.helpers import (
    FakeClock,
    OutcomeWaiter,
    chat_rollout,
    deployment,
    started_upstreams,
    upstream_router,
)

MESSAGES = [{"role": "user", "content": "a private prompt"}]
SECRET = "sk-abcdefghijklmnop1234"
FAST = {"error_rate": {"min_requests": 3}, "ttft_p99": {"min_requests": 3}}


def _config(directory: Path, **rollout: Any) -> dict[str, Any]:
    return {
        "rollouts": [chat_rollout(**{"verify_within_s": 5.0, "triggers": FAST, **rollout})],
        "flag_store": {"kind": "memory"},
        "incidents": {"dir": str(directory)},
    }


def _mock_router() -> Router:
    return Router(
        model_list=[deployment("chat", "chat-stable", "stable"), deployment("chat", "chat-canary", "c")]
    )


async def _traffic(router: Router, n: int) -> None:
    for i in range(n):
        await router.acompletion(model="chat", messages=MESSAGES, user=f"u{i}")


async def test_every_rollback_writes_an_incident_completed_after_drain_and_verified(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    router = _mock_router()
    canary = litellm_canary.attach(router, _config(tmp_path))
    try:
        canary.set_canary_percent("chat", 50)
        # LiteLLM logs a success after the reply; listeners run in order, so once ours has run the
        # feedback map (registered before it) knows the response.
        logged = asyncio.Queue[str]()
        loop = asyncio.get_running_loop()
        canary._callbacks.successes.connect(
            lambda outcome, kwargs, response: loop.call_soon_threadsafe(logged.put_nowait, response.id)
        )
        for i in range(8):
            await router.acompletion(model="chat", messages=MESSAGES, user=f"u{i}")
        for _ in range(8):
            canary.record_feedback(await asyncio.wait_for(logged.get(), 10), 0.5)
        with caplog.at_level(logging.WARNING, logger="litellm_canary"):
            canary.rollback("chat", f"bad canary, key {SECRET}")
        assert SECRET not in caplog.text and "[REDACTED]" in caplog.text  # scrubbed in the log too
        await _traffic(router, 6)
        summary = await asyncio.wait_for(asyncio.wrap_future(canary.followup.result("chat")), 20)
    finally:
        canary.detach()
    assert summary["complete"] and summary["drained"] is True
    assert summary["verification"]["verdict"] == "recovered"
    assert summary["canary_decisions_after_flip"] == 0
    store = IncidentStore(tmp_path)
    (only,) = store.list()
    incident = store.get(only.id)
    assert incident.kind == "manual" and summary["incident_id"] == incident.id
    events = [e.event for e in incident.timeline]
    assert {"decision", "latch", "canary_drained", "verification"} <= set(events)
    assert incident.verification is not None and incident.verification["verdict"] == "recovered"
    assert incident.verification["restored_service"] is True
    assert incident.verification["error_rate"]["state"] == "passed"
    feedback = incident.verification["user_feedback"]  # beside the checks, per side
    assert feedback["stable_count"] + feedback["canary_count"] == 8
    assert {feedback[f"{side}_mean"] for side in ("stable", "canary") if feedback[f"{side}_count"]} == {0.5}
    assert summary["verification"]["user_feedback"] == canary.lifecycle.feedback.status("chat")["sides"]
    assert incident.traffic.canary_decisions_after_flip == 0
    if importlib.util.find_spec("matplotlib") is not None:  # the optional timeline picture
        assert incident.picture == f"{incident.id}.png"
        assert (tmp_path / incident.picture).read_bytes().startswith(b"\x89PNG")
        assert f"![timeline]({incident.picture})" in (tmp_path / f"{incident.id}.md").read_text()
    else:
        assert incident.picture is None and incident.picture_note and "matplotlib" in incident.picture_note
    text = (tmp_path / f"{incident.id}.json").read_text() + (tmp_path / f"{incident.id}.md").read_text()
    assert SECRET not in text and "a private prompt" not in text
    status = canary.status()["groups"]["chat"]
    assert status["last_rollback"]["verification"]["verdict"] == "recovered"
    assert status["last_rollback"]["incident_id"] == incident.id


async def test_a_rollback_that_does_not_restore_service_escalates(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upstreams = started_upstreams({"chat-stable": "stable", "chat-canary": "canary"})
    router = upstream_router(upstreams, num_retries=0, disable_cooldowns=True)
    config = _config(tmp_path)
    config["rollouts"][0]["triggers"] = {
        "error_rate": {"min_requests": 3, "alpha": None},
        "ttft_p99": {"enabled": False},
        "fast_fail": False,
        "cooldown": False,
    }
    # The verdict is final at verify_within_s on the canary's clock. The failures reach the window
    # through LiteLLM's asynchronous failure logging, so the test awaits them all and only then moves
    # the clock past the deadline (a real-clock deadline lost that race on a loaded CI machine).
    clock = FakeClock()
    canary = litellm_canary.attach(router, config, clock=clock)
    metrics = CanaryMetrics(canary)
    outcomes = OutcomeWaiter(canary)  # after attach: the follow-up's own listener runs first
    try:
        await _traffic(router, 5)
        await outcomes.wait(5)
        upstreams["chat-stable"].set_faults(error_rate=1.0)  # stable itself is broken
        with caplog.at_level(logging.CRITICAL, logger="litellm_canary"):
            canary.rollback("chat", "canary looks bad")
            for i in range(6):
                with pytest.raises(litellm.InternalServerError):
                    await router.acompletion(model="chat", messages=MESSAGES, user=f"v{i}")
            failures = await outcomes.wait(11)
            assert [o.ok for o in failures[5:]] == [False] * 6
            clock.now += config["rollouts"][0]["verify_within_s"]
            summary = await asyncio.wait_for(asyncio.wrap_future(canary.followup.result("chat")), 20)
    finally:
        canary.detach()
        for upstream in upstreams.values():
            upstream.stop()
    verification = summary["verification"]
    assert verification["verdict"] == "not_recovered" and verification["failed_checks"] == ["error_rate"]
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert critical and "did not restore service" in critical[0].getMessage()
    exposition = metrics.exposition().decode()
    assert 'litellm_canary_verification_total{model_group="chat",verdict="not_recovered"} 1.0' in exposition
    assert 'litellm_canary_verification_total{model_group="chat",verdict="recovered"} 0.0' in exposition
    incident = IncidentStore(tmp_path).get(summary["incident_id"])
    assert incident.verification is not None
    assert incident.verification["restored_service"] is False
    assert incident.verification["note"] == NOT_RESTORED_NOTE
    assert "cause is probably not the canary" in (tmp_path / f"{incident.id}.md").read_text()


def test_sync_sdk_users_get_the_follow_up_without_an_event_loop(tmp_path: Path) -> None:
    router = _mock_router()
    canary = litellm_canary.attach(router, _config(tmp_path))
    canary.route_sync_calls()  # sync calls are steered only through the opt-in strategy
    try:
        for i in range(5):
            router.completion(model="chat", messages=MESSAGES, user=f"s{i}")
        canary.rollback("chat", "manual from a script")
        for i in range(5):
            router.completion(model="chat", messages=MESSAGES, user=f"t{i}")
        summary = canary.followup.result("chat").result(timeout=20)
    finally:
        canary.detach()
    assert summary["verification"]["verdict"] == "recovered" and summary["drained"] is True
    incident = IncidentStore(tmp_path).get(summary["incident_id"])
    assert incident.event("canary_drained") is not None and incident.verification is not None


async def test_a_drill_alert_is_recorded_as_a_drill_and_status_shows_the_last_drill(tmp_path: Path) -> None:
    router = _mock_router()
    canary = litellm_canary.attach(router, _config(tmp_path))
    assert canary.status()["groups"]["chat"]["drill"] == {
        "last_at": None,
        "incident_id": None,
        "result": None,
        "drill_overdue": True,
    }
    alert = {
        "version": "4",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "Drill",
                    "action": "rollback",
                    "model_group": "chat",
                    "drill": "true",
                },
                "annotations": {"summary": "synthetic"},
                "startsAt": "2026-11-27T03:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "f1",
            }
        ],
    }
    app = create_app(canary, token="t0ken")
    try:
        await _traffic(router, 4)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            response = await client.post(
                "/alertmanager", json=alert, headers={"Authorization": "Bearer t0ken"}
            )
            assert response.json()["alerts"][0]["rollback"]["kind"] == "drill"
            await _traffic(router, 4)
            summary = await asyncio.wait_for(asyncio.wrap_future(canary.followup.result("chat")), 20)
            status = (await client.get("/canary/status", headers={"Authorization": "Bearer t0ken"})).json()
    finally:
        canary.detach()
    drill = status["groups"]["chat"]["drill"]
    assert drill["incident_id"] == summary["incident_id"]
    assert drill["result"] == "recovered" and drill["drill_overdue"] is False
    assert IncidentStore(tmp_path).get(drill["incident_id"]).kind == "drill"


def test_drill_overdue_after_the_configured_days(tmp_path: Path) -> None:
    from litellm_canary.core.pins import InFlightAtFlip
    from litellm_canary.core.rollback_record import RollbackRecord
    from litellm_canary.response.incidents import incident_from_record

    record = RollbackRecord(
        model_group="chat",
        kind="drill",
        reason="drill",
        cause=None,
        decided_at="2026-01-01T00:00:00.000+00:00",
        decided_mono=0.0,
        latched_mono=0.0,
        in_flight_at_flip={"canary": 0, "stable": 0},
        canary_attempts=InFlightAtFlip(set()),
        flag_store=None,
    )
    store = IncidentStore(tmp_path)
    incident = store.write(incident_from_record(record).model_copy(update={"drill": {"passed": False}}))
    decided = 1767225600.0  # 2026-01-01T00:00:00Z
    fresh = drill_status(store, "chat", overdue_days=90, now=decided + 89 * 86400)
    assert fresh["incident_id"] == incident.id and fresh["result"] == "failed" and not fresh["drill_overdue"]
    assert drill_status(store, "chat", overdue_days=90, now=decided + 91 * 86400)["drill_overdue"]
    assert drill_status(store, "other", overdue_days=90, now=decided)["drill_overdue"]


def test_incident_config_errors_name_the_field(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match=r"incidents\.dir: .* is not a directory"):
        litellm_canary.attach(_mock_router(), _config(a_file))
    with pytest.raises(ConfigError, match=r"incidents\.dir: .*must be a directory path"):
        litellm_canary.attach(_mock_router(), {**_config(tmp_path), "incidents": {"dir": " "}})
    with pytest.raises(ConfigError, match=r"verify_within_s: Input should be greater than 0"):
        litellm_canary.attach(_mock_router(), _config(tmp_path, verify_within_s=0))
    with pytest.raises(ConfigError, match=r"incidents\.drill_overdue_days"):
        litellm_canary.attach(
            _mock_router(),
            {**_config(tmp_path), "incidents": {"dir": str(tmp_path), "drill_overdue_days": -1}},
        )


async def test_without_background_the_app_follows_up_itself(tmp_path: Path) -> None:
    router = _mock_router()
    canary = litellm_canary.attach(router, _config(tmp_path), background=False)
    try:
        await _traffic(router, 4)
        canary.rollback("chat", "manual")
        assert canary.status()["groups"]["chat"]["last_rollback"]["verification"]["verdict"] == "pending"
        await _traffic(router, 4)
        summary = await asyncio.wait_for(canary.followup.follow("chat"), 20)
    finally:
        canary.detach()
    assert summary["verification"]["verdict"] == "recovered"
    assert (
        json.loads((tmp_path / f"{summary['incident_id']}.json").read_text())["verification"]["verdict"]
        == "recovered"
    )


def test_timeline_series_per_second_relative_to_the_decision() -> None:
    from litellm_canary.core.decision import Side
    from litellm_canary.response.followup import SeriesBuffer
    from tests.support.helpers import FakeClock

    clock = FakeClock()  # starts at 1000.0
    buffer = SeriesBuffer(clock, keep_s=60)
    buffer.record(Side.CANARY, False, None)
    buffer.record(Side.CANARY, True, 0.2)
    buffer.record(Side.STABLE, True, 0.1)
    clock.now = 1001.2
    buffer.record(Side.STABLE, True, 0.3)
    series = buffer.series(decided_mono=1001.0)
    assert series is not None
    assert series.t_s == [-0.5, 0.5]
    assert series.canary_error_rate == [0.5, None] and series.stable_error_rate == [0.0, 0.0]
    assert series.canary_ttft_p99_ms == [200.0, None] and series.stable_ttft_p99_ms == [100.0, 300.0]
    clock.now = 1100.0
    buffer.record(Side.STABLE, True, None)  # older seconds than keep_s are dropped
    later = buffer.series(decided_mono=1100.0, before_s=1000)
    assert later is not None and later.t_s == [0.5]


# -- bounded follow-up: re-arm cancels, a new rollback supersedes, one worker thread ----------------


def _slow_verify_config(directory: Path) -> dict[str, Any]:
    return _config(directory, verify_within_s=120.0)  # pending for the whole test unless cancelled


async def test_a_rearm_cancels_the_pending_follow_up_and_the_incident_says_so(tmp_path: Path) -> None:
    router = _mock_router()
    canary = litellm_canary.attach(router, _slow_verify_config(tmp_path))
    try:
        await _traffic(router, 4)
        canary.rollback("chat", "bad canary")
        pending = canary.followup.result("chat")
        assert canary.status()["groups"]["chat"]["last_rollback"]["verification"]["verdict"] == "pending"
        assert canary.rearm("chat")
        summary = await asyncio.wait_for(asyncio.wrap_future(pending), 10)
        status = canary.status()["groups"]["chat"]["last_rollback"]
    finally:
        canary.detach()
    assert summary["complete"] is True
    verification = summary["verification"]
    assert verification["verdict"] == "cancelled" and verification["cancelled"].startswith("re-armed at 20")
    assert status["verification"] == verification and status["complete"] is True
    incident = IncidentStore(tmp_path).get(summary["incident_id"])
    assert incident.verification is not None and incident.verification["verdict"] == "cancelled"
    assert incident.verification["cancelled"] == verification["cancelled"]
    event = incident.event("verification")
    assert event is not None and event.detail == f"cancelled: {verification['cancelled']}"
    assert f"cancelled: {verification['cancelled']}" in (tmp_path / f"{incident.id}.md").read_text()


async def test_a_new_rollback_of_the_group_starts_a_new_follow_up_and_the_old_one_ends(
    tmp_path: Path,
) -> None:
    router = _mock_router()
    canary = litellm_canary.attach(router, _slow_verify_config(tmp_path))
    try:
        await _traffic(router, 4)
        canary.rollback("chat", "first")
        first = canary.followup.result("chat")
        canary.rearm("chat")
        canary.rollback("chat", "second")
        second = canary.followup.result("chat")
        first_summary = await asyncio.wait_for(asyncio.wrap_future(first), 10)
        assert second is not first and not second.done()
        status = canary.status()["groups"]["chat"]["last_rollback"]
        assert status["reason"] == "second" and status["verification"]["verdict"] == "pending"
        assert status["incident_id"] != first_summary["incident_id"]
    finally:
        canary.detach()
    assert first_summary["verification"]["verdict"] == "cancelled"


async def test_a_rollback_supersedes_a_follow_up_that_was_not_cancelled(tmp_path: Path) -> None:
    """The follow-up also ends when a newer rollback of the group arrives without a re-arm seen
    first (here: the re-arm listener is bypassed by releasing the latch under the controller)."""
    router = _mock_router()
    canary = litellm_canary.attach(router, _slow_verify_config(tmp_path))
    try:
        canary.rollback("chat", "first")
        first = canary.followup.result("chat")
        canary.runtimes["chat"].rolled_back = False  # as if re-armed where no listener ran
        canary.rollback("chat", "second")
        first_summary = await asyncio.wait_for(asyncio.wrap_future(first), 10)
    finally:
        canary.detach()
    cancelled = first_summary["verification"]["cancelled"]
    assert first_summary["verification"]["verdict"] == "cancelled"
    assert cancelled.startswith("superseded by the rollback at 20")


def test_a_flip_storm_uses_one_follow_up_thread_and_leaves_nothing_pending(tmp_path: Path) -> None:
    router = _mock_router()
    canary = litellm_canary.attach(router, _slow_verify_config(tmp_path))
    try:
        router.completion(model="chat", messages=MESSAGES, user="warm")
        existing = set(threading.enumerate())  # other tests' canaries may still run theirs
        futures = []
        for cycle in range(200):
            canary.rollback("chat", f"storm {cycle}")
            futures.append(canary.followup.result("chat"))
            canary.rearm("chat")
        summaries = [future.result(timeout=20) for future in futures]
        started = [t for t in threading.enumerate() if t not in existing]
        worker = canary.followup.worker.thread
    finally:
        canary.detach()
    assert worker is not None and not worker.is_alive()  # detach stopped it
    assert [t for t in started if t.name.startswith("litellm-canary-followup")] == [worker]
    assert len(started) <= 3  # the worker, at most a couple of LiteLLM's own; not one per rollback
    assert {s["verification"]["verdict"] for s in summaries} == {"cancelled"}
    assert len(IncidentStore(tmp_path).list()) == 200


# -- incident writes that fail ----------------------------------------------------------------------


async def test_an_incident_the_directory_cannot_take_is_kept_counted_and_written_later(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "incidents"
    router = _mock_router()
    canary = litellm_canary.attach(router, _slow_verify_config(directory))
    metrics = CanaryMetrics(canary)
    recorder = canary.followup.recorder
    assert recorder is not None
    recorder.pending.retry_initial_s, recorder.pending.retry_max_s = 0.02, 0.1
    moved = tmp_path / "moved"
    try:
        directory.rename(moved)
        directory.write_text("not a directory")  # every write now fails (we run as root: no chmod)
        canary.rollback("chat", "bad canary")
        assert canary.runtimes["chat"].rolled_back  # the latch holds
        broken = canary.status()["groups"]["chat"]["last_rollback"]
        assert broken["incident_id"] is not None and broken["incident_written"] is False
        assert broken["incident_write_errors"] >= 1 and broken["incidents_unwritten"] == 1
        assert "FileExistsError" in broken["incident_write_error"]
        exposition = metrics.exposition().decode()
        assert 'litellm_canary_incidents_unwritten{model_group="chat"} 1.0' in exposition
        assert 'litellm_canary_incident_write_errors_total{model_group="chat"}' in exposition
        canary.rearm("chat")  # a change (the cancelled verdict) to an incident not yet written
        summary = await asyncio.wait_for(asyncio.wrap_future(canary.followup.result("chat")), 10)
        assert not await asyncio.to_thread(recorder.wait_written, 0.3)  # still broken: still waiting

        directory.unlink()
        moved.rename(directory)
        assert await asyncio.to_thread(recorder.wait_written, 20)
        healed = canary.status()["groups"]["chat"]["last_rollback"]
    finally:
        canary.detach()
    assert healed["incident_written"] is True and healed["incidents_unwritten"] == 0
    assert healed["incident_write_error"] is None and healed["incident_write_errors"] >= 1
    incident = IncidentStore(directory).get(summary["incident_id"])
    assert incident.trigger.reason == "bad canary"
    assert incident.verification is not None and incident.verification["verdict"] == "cancelled"
    assert (directory / f"{incident.id}.md").is_file()


def test_unwritten_incidents_are_retried_with_backoff(tmp_path: Path) -> None:
    from litellm_canary.response.incidents import IncidentRecorder
    from litellm_canary.response.incidents.pending_writes import PendingWrites
    from tests.support.helpers import FakeClock

    clock = FakeClock()
    directory = tmp_path / "incidents"
    directory.write_text("x")
    router = _mock_router()
    canary = litellm_canary.attach(router, {**_config(tmp_path), "incidents": None}, background=False)
    recorder = IncidentRecorder(
        IncidentStore(directory),
        drained=canary.drained,
        on_rollback=canary.controller.on_rollback,
        on_decision=canary.on_decision,
        pending=PendingWrites(IncidentStore(directory), clock=clock, retry_initial_s=1.0, retry_max_s=4.0),
    )
    try:
        canary.rollback("chat", "bad")
        delays = []
        for _ in range(5):
            clock.now += 100
            delays.append(recorder.retry_unwritten())
        assert delays == [2.0, 4.0, 4.0, 4.0, 4.0]  # doubling, capped
        assert recorder.status("chat")["incidents_unwritten"] == 1
        directory.unlink()
        assert recorder.retry_unwritten() == 4.0  # not due yet: the backoff holds
        clock.now += 4
        assert recorder.retry_unwritten() is None
    finally:
        canary.detach()
    (summary,) = IncidentStore(directory).list()
    assert summary.id == recorder.incident_id("chat") and recorder.status("chat")["incident_written"]


# -- texts from outside ----------------------------------------------------------------------------


async def test_an_alert_summary_with_a_lone_surrogate_or_900_kb_is_cleaned_capped_and_recorded(
    tmp_path: Path,
) -> None:
    router = _mock_router()
    canary = litellm_canary.attach(router, _config(tmp_path, verify_within_s=1.0))
    app = create_app(canary, token="t0ken")
    headers = {"Authorization": "Bearer t0ken", "Content-Type": "application/json"}

    def alert(fingerprint: str, summary: str) -> bytes:
        body = {
            "version": "4",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "Bad", "action": "rollback", "model_group": "chat"},
                    "annotations": {"summary": summary},
                    "startsAt": "2026-11-27T03:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "fingerprint": fingerprint,
                }
            ],
        }
        return json.dumps(body).encode()  # ensure_ascii: the lone surrogate travels as \\ud800

    summaries = []
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            for fingerprint, summary in (("f1", "broken \ud800 text\x00\x1b[31m"), ("f2", "x" * 900_000)):
                response = await client.post(
                    "/alertmanager", content=alert(fingerprint, summary), headers=headers
                )
                assert response.status_code == 200, response.text
                summaries.append(
                    await asyncio.wait_for(asyncio.wrap_future(canary.followup.result("chat")), 20)
                )
                status = canary.status()
                canary.rearm("chat")
                assert len(json.dumps(status)) < 20_000
    finally:
        canary.detach()
    surrogate, huge = (IncidentStore(tmp_path).get(s["incident_id"]) for s in summaries)
    assert surrogate.trigger.summary == "broken \ufffd text[31m"
    markdown = (tmp_path / f"{surrogate.id}.md").read_text()
    assert "broken \ufffd text[31m" in markdown and surrogate.verification is not None
    assert huge.trigger.summary is not None and len(huge.trigger.summary) <= 501
    assert huge.verification is not None and summaries[1]["complete"]

"""Incident records: building, atomic files, annotation, scrubbing, and a real rollback on a Router."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from litellm import Router

import litellm_canary
from litellm_canary import Side
from litellm_canary.core.pins import InFlightAtFlip
from litellm_canary.core.rollback_record import RollbackRecord
from litellm_canary.response.incidents import (
    Incident,
    IncidentNotFound,
    IncidentRecorder,
    IncidentStore,
    TimelineSeries,
    annotate_command,
    incident_from_record,
    list_command,
    show_command,
)
from litellm_canary.response.incidents import store as incident_store
from tests.support.helpers import FakeClock, OutcomeWaiter, chat_rollout, deployment

MESSAGES = [{"role": "user", "content": "my prompt text is private"}]

ERROR_RATE_CAUSE: dict[str, Any] = {
    "rule": "error_rate",
    "state": "firing",
    "summary": "canary error rate 40.00% above 2 x baseline 1.00% (50 requests in 30s)",
    "threshold": 0.02,
    "window_s": 30.0,
    "min_samples": 20,
    "breaching_since": 999.5,
    "canary_error_rate": 0.4,
    "canary_requests": 50,
    "canary_failures": 20,
    "stable_error_rate": 0.01,
    "stable_requests": 500,
    "stable_failures": 5,
    "baseline_error_rate": 0.01,
    "baseline_source": "stable",
}


def _record(decided_at: str = "2026-11-27T01:00:00.000+00:00", **overrides: Any) -> RollbackRecord:
    fields: dict[str, Any] = {
        "model_group": "chat",
        "kind": "automatic",
        "reason": ERROR_RATE_CAUSE["summary"],
        "cause": ERROR_RATE_CAUSE,
        "decided_at": decided_at,
        "decided_mono": 1000.0,
        "latched_mono": 1000.000004,
        "in_flight_at_flip": {"canary": 2, "stable": 3},
        "canary_attempts": InFlightAtFlip({1, 2}, completed=1, failed=1),
        "flag_store": "memory",
        "flag_written_mono": 1000.0021,
    }
    fields.update(overrides)
    return RollbackRecord(**fields)


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != ".incidents.lock")


# -- building -----------------------------------------------------------------------------------


def test_an_automatic_rollback_becomes_an_incident_with_trigger_timeline_and_traffic() -> None:
    incident = incident_from_record(_record())
    assert incident.id.startswith("20261127T010000000Z-") and len(incident.id) == 26
    assert incident.kind == "automatic" and incident.model_group == "chat"
    t = incident.trigger
    assert (t.rule, t.threshold, t.window_s, t.min_samples) == ("error_rate", 0.02, 30.0, 20)
    assert t.observed["canary_error_rate"] == 0.4 and t.observed["canary_requests"] == 50
    assert "breaching_since" not in t.observed and "state" not in t.observed
    events = [(e.event, e.offset_ms) for e in incident.timeline]
    assert events == [("first_breach", -500.0), ("decision", 0.0), ("latch", 0.004), ("flag_written", 2.1)]
    assert incident.event("first_breach").at == "2026-11-27T00:59:59.500+00:00"  # type: ignore[union-attr]
    assert incident.restored_after_ms == 0.004
    assert incident.traffic.in_flight_at_flip == {"canary": 2, "stable": 3}
    assert incident.traffic.canary_attempts == {
        "at_flip": 2,
        "completed": 1,
        "failed": 1,
        "expired": 0,
        "pending": 0,
    }
    assert incident.traffic.canary_decisions_after_flip == 0
    assert incident.actual_cause == "" and incident.what_would_change == "" and incident.verification is None
    assert Incident.model_validate_json(incident.model_dump_json()) == incident


def test_a_manual_rollback_keeps_its_reason_and_has_no_first_breach() -> None:
    record = _record(
        kind="manual", reason="operator: bad answers", cause={"via": "http"}, flag_written_mono=None
    )
    incident = incident_from_record(record)
    assert incident.trigger.rule is None and incident.trigger.reason == "operator: bad answers"
    assert incident.trigger.observed == {"via": "http"}
    assert [e.event for e in incident.timeline] == ["decision", "latch"]


# -- the store ----------------------------------------------------------------------------------


def test_write_creates_json_and_markdown_atomically(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "incidents")
    incident = store.write(incident_from_record(_record()))
    assert _files(store.directory) == [f"{incident.id}.json", f"{incident.id}.md"]  # no temp files
    data = json.loads((store.directory / f"{incident.id}.json").read_text())
    assert data["trigger"]["rule"] == "error_rate" and data["restored_after_ms"] == 0.004
    assert store.get(incident.id) == incident
    markdown = (store.directory / f"{incident.id}.md").read_text()
    for heading in ("# Incident", "## Trigger", "## Timeline", "## Traffic", "## Verification"):
        assert heading in markdown
    assert "## Actual cause\n\n_To be filled in" in markdown
    assert "## What would change\n\n_To be filled in" in markdown
    assert "| canary_error_rate | 0.4 |" in markdown
    assert "| first_breach | 2026-11-27T00:59:59.500+00:00 | -500.000 |" in markdown
    assert "Requests decided canary after the flip: 0 (expected 0)" in markdown


def test_a_crash_mid_write_leaves_the_previous_version_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = IncidentStore(tmp_path)
    incident = store.write(incident_from_record(_record()))
    before = {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)}

    def crash(src: Any, dst: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(incident_store, "_replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        store.annotate(incident.id, "bad deploy", "canary smaller")
    assert {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)} == before  # no temp left
    monkeypatch.undo()
    assert store.get(incident.id).actual_cause == ""


def test_annotate_updates_both_files(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path)
    incident = store.write(incident_from_record(_record()))
    message = annotate_command(tmp_path, incident.id, "  a bad model version  ", "alert on 5xx sooner")
    assert incident.id in message
    stored = store.get(incident.id)
    assert stored.actual_cause == "a bad model version" and stored.what_would_change == "alert on 5xx sooner"
    assert stored.annotated_at is not None
    markdown = (tmp_path / f"{incident.id}.md").read_text()
    assert "## Actual cause\n\na bad model version\n" in markdown
    assert "## What would change\n\nalert on 5xx sooner\n" in markdown
    assert show_command(tmp_path, incident.id) == markdown
    assert store.list()[0].annotated


@pytest.mark.parametrize("bad_id", ["20990101T000000000Z-abcdef", "../../etc/passwd", "", "x.json"])
def test_unknown_ids_are_refused(tmp_path: Path, bad_id: str) -> None:
    store = IncidentStore(tmp_path)
    store.write(incident_from_record(_record()))
    for call in (
        lambda: store.get(bad_id),
        lambda: store.annotate(bad_id, "c", "w"),
        lambda: annotate_command(tmp_path, bad_id, "c", "w"),
        lambda: show_command(tmp_path, bad_id),
    ):
        with pytest.raises(IncidentNotFound) as raised:
            call()
        assert repr(bad_id) in str(raised.value)
        assert isinstance(raised.value, KeyError)
    assert len(_files(tmp_path)) == 2


def test_update_rejects_unknown_fields_and_records_verification(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path)
    incident = store.write(incident_from_record(_record()))
    with pytest.raises(ValueError, match="password"):
        store.update(incident.id, password="x")
    with pytest.raises(ValueError, match="id"):
        store.update(incident.id, id="20990101T000000000Z-abcdef")
    verified = store.verify(incident.id, "pass", {"stable_error_rate": 0.01, "token": "sk-live-abcdefghijkl"})
    assert verified.verification == {"verdict": "pass", "stable_error_rate": 0.01}
    assert verified.event("verification") is not None
    markdown = (tmp_path / f"{incident.id}.md").read_text()
    assert "**Verdict: pass**" in markdown and "| stable_error_rate | 0.01 |" in markdown
    assert "sk-live" not in markdown


def test_secrets_never_land_in_an_incident(tmp_path: Path) -> None:
    secrets_ = [
        "sk-proj-abcdef0123456789",
        "Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
        "0123456789abcdef0123456789abcdef",
        "QWxhZGRpbjpvcGVuIHNlc2FtZQ1234567890abcdEF",
        "hunter2hunter2",
    ]
    cause = {
        "rule": "error_rate",
        "summary": f"upstream said 401 for key {secrets_[0]}",
        "canary_error_rate": 1.0,
        "detail": f"Authorization: {secrets_[1]}",
        "trace": f"request id {secrets_[2]} blob {secrets_[3]}",
        "api_key": "plain-looking-value",
        "headers": {"x-custom": "value-of-header"},
        "prompt": MESSAGES[0]["content"],
        "labels": {
            "alertname": "CanaryErrors",
            "Authorization": "Basic abc",
            "url": f"http://x/?token={secrets_[4]}",
        },
        "object": object(),
    }
    record = _record(kind="alert", reason=f"alert with {secrets_[0]}", cause=cause)
    store = IncidentStore(tmp_path)
    incident = store.write(incident_from_record(record))
    text = (tmp_path / f"{incident.id}.json").read_text() + (tmp_path / f"{incident.id}.md").read_text()
    for leaked in [*secrets_, "plain-looking-value", "value-of-header", "prompt text", "Basic abc"]:
        assert leaked not in text
    assert "[REDACTED]" in text
    observed = incident.trigger.observed
    assert observed["labels"] == {"alertname": "CanaryErrors", "url": "http://x/?token=[REDACTED]"}
    assert {"api_key", "headers", "prompt", "object"}.isdisjoint(observed)
    assert observed["canary_error_rate"] == 1.0


def test_list_is_newest_first(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path)
    assert store.list() == [] and "no incidents" in list_command(tmp_path)
    times = [
        "2026-11-27T01:00:00.000+00:00",
        "2026-11-28T00:00:00.000+00:00",
        "2026-11-26T23:59:59.999+00:00",
    ]
    ids = [
        store.write(incident_from_record(_record(decided_at=t, model_group=f"g{i}"))).id
        for i, t in enumerate(times)
    ]
    (tmp_path / "20260101T000000000Z-000000.json").write_text("{not json")  # a broken file is skipped
    listed = store.list()
    assert [s.id for s in listed] == [ids[1], ids[0], ids[2]]
    assert listed[0].model_group == "g1" and listed[0].rule == "error_rate" and not listed[0].annotated
    lines = list_command(tmp_path).splitlines()
    assert [line.split()[0] for line in lines] == [ids[1], ids[0], ids[2]]


def test_without_matplotlib_the_picture_is_skipped_and_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(incident_store, "matplotlib_available", lambda: False)
    store = IncidentStore(tmp_path)
    series = TimelineSeries(t_s=[-2, -1, 0, 1], canary_error_rate=[0.0, 0.5, 0.6, None])
    incident = store.write(incident_from_record(_record()), series=series)
    assert incident.picture is None
    assert "matplotlib is not installed" in (tmp_path / f"{incident.id}.md").read_text()
    assert not list(tmp_path.glob("*.png"))


def test_with_matplotlib_the_picture_is_rendered_and_linked(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    store = IncidentStore(tmp_path)
    series = TimelineSeries(
        t_s=[-2, -1, 0, 1],
        canary_error_rate=[0.0, 0.5, 0.6, None],
        stable_error_rate=[0.0, 0.0, 0.0, 0.0],
        canary_ttft_p99_ms=[100, 900, 950, None],
        stable_ttft_p99_ms=[100, 110, 105, 100],
    )
    incident = store.write(incident_from_record(_record()), series=series)
    assert incident.picture == f"{incident.id}.png"
    assert (tmp_path / incident.picture).read_bytes().startswith(b"\x89PNG")
    assert f"![timeline]({incident.picture})" in (tmp_path / f"{incident.id}.md").read_text()


# -- end to end on a real Router ----------------------------------------------------------------


def _canary(clock: FakeClock | None = None) -> tuple[Router, litellm_canary.Canary]:
    router = Router(
        model_list=[deployment("chat", "chat-stable", "stable"), deployment("chat", "chat-canary", "canary")]
    )
    kwargs: dict[str, Any] = {"background": False}
    if clock is not None:
        kwargs["clock"] = clock
    canary = litellm_canary.attach(
        router, {"rollouts": [chat_rollout()], "flag_store": {"kind": "memory"}}, **kwargs
    )
    return router, canary


async def _answers(router: Router, n: int) -> list[str]:
    answers = []
    for i in range(n):
        response = await router.acompletion(model="chat", messages=MESSAGES, user=f"user-{i}")
        answers.append(str(response.choices[0].message.content))
    return answers


async def test_a_real_rollback_writes_one_incident_and_complete_records_the_drain(tmp_path: Path) -> None:
    router, canary = _canary()
    recorder = IncidentRecorder(
        IncidentStore(tmp_path),
        drained=canary.drained,
        on_rollback=canary.controller.on_rollback,
        on_decision=canary.on_decision,
    )
    try:
        outcomes = OutcomeWaiter(canary)
        canary.set_side("chat", "canary")
        assert set(await _answers(router, 3)) == {"canary"}
        await outcomes.wait(3)  # LiteLLM reports outcomes from its logging workers
        canary.rollback("chat", reason="bad answers, key sk-abcdef0123456789", cause={"via": "http"})
        canary.rollback("chat", reason="again")  # a repeat: no second incident
        incident_id = recorder.incident_id("chat")
        assert incident_id is not None and recorder.write_errors == {}
        assert _files(tmp_path) == [f"{incident_id}.json", f"{incident_id}.md"]
        written = IncidentStore(tmp_path).get(incident_id)
        assert written.kind == "manual" and written.trigger.reason == "bad answers, key [REDACTED]"
        assert written.flag_store == "memory" and written.event("flag_written") is not None
        assert written.traffic.in_flight_at_flip == {"canary": 0, "stable": 0}

        assert set(await _answers(router, 5)) == {"stable"}
        done = await recorder.complete("chat", drain_timeout=5)
        assert done.event("canary_drained") is not None
        assert done.traffic.canary_decisions_after_flip == 0
        assert done.traffic.canary_attempts["at_flip"] == 0
        text = (tmp_path / f"{incident_id}.json").read_text() + (tmp_path / f"{incident_id}.md").read_text()
        assert "private" not in text and "sk-test" not in text and "sk-abcdef" not in text
        offsets = [e.offset_ms for e in done.timeline]
        assert offsets == sorted(offsets)
    finally:
        canary.detach()


async def test_an_automatic_rollback_records_the_rule_and_its_first_breach(tmp_path: Path) -> None:
    clock = FakeClock()
    _, canary = _canary(clock)
    recorder = IncidentRecorder(
        IncidentStore(tmp_path),
        drained=canary.drained,
        on_rollback=canary.controller.on_rollback,
        on_decision=canary.on_decision,
    )
    try:
        cause = {**ERROR_RATE_CAUSE, "breaching_since": clock.now - 30.0}
        canary.controller.rollback("chat", str(cause["summary"]), kind="automatic", cause=cause)
        incident = IncidentStore(tmp_path).list()[0]
        assert incident.id == recorder.incident_id("chat") and incident.rule == "error_rate"
        stored = IncidentStore(tmp_path).get(incident.id)
        assert stored.timeline[0].event == "first_breach" and stored.timeline[0].offset_ms == -30000.0
        assert stored.trigger.observed["canary_requests"] == 50
        with pytest.raises(IncidentNotFound, match="other"):
            await recorder.complete("other", drain_timeout=0)
    finally:
        canary.detach()


async def test_complete_records_how_the_canary_attempts_in_flight_at_the_flip_ended(tmp_path: Path) -> None:
    _, canary = _canary()
    recorder = IncidentRecorder(
        IncidentStore(tmp_path),
        drained=canary.drained,
        on_rollback=canary.controller.on_rollback,
        on_decision=canary.on_decision,
    )
    try:
        pins = canary.runtimes["chat"].pins
        ok, bad = pins.open(Side.CANARY, "chat-canary"), pins.open(Side.CANARY, "chat-canary")
        canary.rollback("chat", reason="drill", kind="drill")
        incident_id = recorder.incident_id("chat")
        assert incident_id is not None
        at_flip = IncidentStore(tmp_path).get(incident_id).traffic
        assert at_flip.in_flight_at_flip["canary"] == 2 and at_flip.canary_attempts["pending"] == 2
        assert await canary.drained("chat", 0.01) is False
        pins.close(ok, "success")
        pins.close(bad, "error")
        done = await recorder.complete("chat", drain_timeout=5)
        assert done.traffic.canary_attempts == {
            "at_flip": 2,
            "completed": 1,
            "failed": 1,
            "expired": 0,
            "pending": 0,
        }
        assert done.event("canary_drained") is not None and done.kind == "drill"
    finally:
        canary.detach()


def test_clean_text_replaces_lone_surrogates_drops_control_chars_and_caps() -> None:
    from litellm_canary.core.redact import MAX_ITEMS, MAX_TEXT, clean_text, clean_value

    assert clean_text("a\ud800b\x00c\x1b\x7f\x9fd\te\r\nf") == "a\ufffdbcd\te\r\nf"
    assert "\U0001f600" in clean_text(json.loads('"\\ud83d\\ude00"'))  # a proper pair is one character
    capped = clean_text("x" * 900_000)
    assert len(capped) == MAX_TEXT and capped.endswith("…")
    assert clean_text("short", 3) == "sh…"
    value = clean_value({"k\ud800": ["\x00v"] * 100, "deep": {"a": {"b": {"c": {"d": 1}}}}, "n": 3})
    assert isinstance(value, dict)
    assert value["k\ufffd"] == ["v"] * MAX_ITEMS and value["n"] == 3
    assert value["deep"] == {"a": {"b": {"c": None}}}
    (json.dumps(value) + json.dumps(capped)).encode()  # encodable: nothing left to fail a write


def test_scrub_redacts_a_secret_in_a_huge_text_and_caps_it() -> None:
    from litellm_canary.core.redact import scrub

    text = "key sk-abcdefghijklmnop1234 " + "y" * 900_000 + "\ud800"
    scrubbed = scrub(text)
    assert scrubbed.startswith("key [REDACTED] ") and len(scrubbed) <= 501 and "\ud800" not in scrubbed

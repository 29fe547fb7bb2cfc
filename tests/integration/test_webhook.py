"""The HTTP face (litellm_canary.webhook) on a real canary attached to a real litellm.Router.

The Alertmanager payloads below are the real captured samples (Alertmanager 0.25, payload version 4;
see the monitoring notes); the tests add the ``model_group`` label the rollback alert rules carry.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from litellm import Router

import litellm_canary
from litellm_canary import Canary
from litellm_canary.integrations.admin_api import create_app
from litellm_canary.response.followup import FOLLOW_UP_KEYS
from tests.support.helpers import chat_rollout, deployment

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MESSAGES = [{"role": "user", "content": "hi"}]

FIRING_SAMPLE: dict[str, Any] = json.loads(
    r"""{
  "receiver": "rollback-webhook",
  "status": "firing",
  "alerts": [
    {
      "status": "firing",
      "labels": {
        "action": "rollback",
        "alertname": "CanaryMetricHigh",
        "instance": "127.0.0.1:44819",
        "job": "canary",
        "severity": "critical",
        "trial": "for5s-1"
      },
      "annotations": {
        "summary": "my_metric=2 on 127.0.0.1:44819 (trial for5s-1)"
      },
      "startsAt": "2026-11-26T17:20:44.498Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://127.0.0.1:46701/graph?g0.expr=my_metric+%3E+1&g0.tab=1",
      "fingerprint": "936c41e4c462e65a"
    }
  ],
  "groupLabels": {"alertname": "CanaryMetricHigh", "trial": "for5s-1"},
  "commonLabels": {
    "action": "rollback",
    "alertname": "CanaryMetricHigh",
    "instance": "127.0.0.1:44819",
    "job": "canary",
    "severity": "critical",
    "trial": "for5s-1"
  },
  "commonAnnotations": {"summary": "my_metric=2 on 127.0.0.1:44819 (trial for5s-1)"},
  "externalURL": "http://127.0.0.1:54077",
  "version": "4",
  "groupKey": "{}:{alertname=\"CanaryMetricHigh\", trial=\"for5s-1\"}",
  "truncatedAlerts": 0
}"""
)

# The captured resolved notification differs only in these fields.
RESOLVED_SAMPLE: dict[str, Any] = copy.deepcopy(FIRING_SAMPLE)
RESOLVED_SAMPLE["status"] = RESOLVED_SAMPLE["alerts"][0]["status"] = "resolved"
RESOLVED_SAMPLE["alerts"][0]["endsAt"] = "2026-11-26T17:20:45.498Z"


def sample(base: dict[str, Any] = FIRING_SAMPLE, group: str | None = "chat", **alert: Any) -> dict[str, Any]:
    """A copy of ``base`` whose alert names ``group``; keyword arguments override alert fields."""
    payload = copy.deepcopy(base)
    first = payload["alerts"][0]
    if group is not None:
        first["labels"]["model_group"] = payload["commonLabels"]["model_group"] = group
    first.update(alert)
    return payload


def alert_of(payload: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**copy.deepcopy(payload["alerts"][0]), **fields}


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def router() -> Router:
    return Router(
        model_list=[
            deployment("chat", "chat-stable", "stable"),
            deployment("chat", "chat-canary", "canary"),
            deployment("other", "other-1", "other"),  # a Router group no rollout manages
        ]
    )


@pytest.fixture
def canary(router: Router) -> Iterator[Canary]:
    # A fixed wall clock: status() carries the canary window's remaining time, and the round-trip test
    # compares two status() snapshots.
    canary = litellm_canary.attach(
        router,
        {"rollouts": [chat_rollout()], "flag_store": {"kind": "memory"}},
        wall_clock=lambda: 1_800_000_000.0,
    )
    canary.set_side("chat", "canary")
    yield canary
    canary.detach()


@pytest.fixture
def rollbacks(canary: Canary) -> list[Any]:
    """Every rollback the controller actually performs (a repeat of a latched one is not one)."""
    records: list[Any] = []
    canary.controller.on_rollback(records.append)
    return records


@pytest.fixture
async def client(canary: Canary) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(canary, token=TOKEN, max_body_bytes=4096)
    async with _client(app) as client:
        yield client


def _record(last_rollback: dict[str, Any]) -> dict[str, Any]:
    """The rollback record in ``status()``'s last_rollback, without the follow-up (verification, drain)."""
    return {key: value for key, value in last_rollback.items() if key not in FOLLOW_UP_KEYS}


def _client(app: Any, headers: Mapping[str, str | bytes] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers=AUTH if headers is None else headers,
    )


async def _answers(router: Router, n: int) -> set[str]:
    answers = set()
    for i in range(n):
        response = await router.acompletion(model="chat", messages=MESSAGES, user=f"user-{i}")
        answers.add(response.choices[0].message.content)
    return answers


def _state(canary: Canary) -> str:
    state: str = canary.status()["groups"]["chat"]["state"]
    return state


def _unchanged(canary: Canary, rollbacks: list[Any]) -> bool:
    return _state(canary) == "armed" and not rollbacks and canary.runtimes["chat"].last_rollback is None


# -- the Alertmanager webhook ----------------------------------------------------------------------


async def test_firing_sample_rolls_back_and_the_next_request_goes_to_stable(
    router: Router, canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any]
) -> None:
    assert await _answers(router, 5) == {"canary"}
    response = await client.post("/alertmanager", json=sample())
    assert response.status_code == 200, response.text
    [result] = response.json()["alerts"]
    assert result["result"] == "rolled_back"
    assert result["fingerprint"] == "936c41e4c462e65a" and result["model_group"] == "chat"
    record = result["rollback"]
    assert record["kind"] == "alert" and not record["repeated"]
    assert record["reason"] == (
        "CanaryMetricHigh: my_metric=2 on 127.0.0.1:44819 (trial for5s-1) "
        "(http://127.0.0.1:46701/graph?g0.expr=my_metric+%3E+1&g0.tab=1)"
    )
    cause = record["cause"]
    assert cause["alertname"] == "CanaryMetricHigh" and cause["fingerprint"] == "936c41e4c462e65a"
    assert cause["starts_at"] == "2026-11-26T17:20:44.498Z"
    assert cause["generator_url"].startswith("http://127.0.0.1:46701/graph")
    assert cause["labels"]["model_group"] == "chat" and cause["labels"]["severity"] == "critical"
    # The answer was sent after the latch: the very next request goes to stable.
    assert _state(canary) == "rolled_back" and len(rollbacks) == 1
    assert await _answers(router, 10) == {"stable"}
    last = canary.status()["groups"]["chat"]["last_rollback"]
    assert (last["decided_at"], last["kind"], last["cause"]) == (record["decided_at"], "alert", cause)


async def test_resolved_sample_changes_nothing_and_never_rearms(
    router: Router, canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any]
) -> None:
    response = await client.post("/alertmanager", json=sample(RESOLVED_SAMPLE))
    assert response.status_code == 200
    assert [a["result"] for a in response.json()["alerts"]] == ["ignored_resolved"]
    assert _unchanged(canary, rollbacks)
    assert await _answers(router, 3) == {"canary"}

    await client.post("/alertmanager", json=sample())
    response = await client.post("/alertmanager", json=sample(RESOLVED_SAMPLE))
    assert [a["result"] for a in response.json()["alerts"]] == ["ignored_resolved"]
    assert _state(canary) == "rolled_back" and len(rollbacks) == 1
    assert await _answers(router, 3) == {"stable"}


async def test_redelivery_is_a_duplicate_even_after_a_rearm(
    canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any]
) -> None:
    first = await client.post("/alertmanager", json=sample())
    last_rollback = canary.status()["groups"]["chat"]["last_rollback"]
    again = await client.post("/alertmanager", json=sample())
    assert first.json()["alerts"][0]["result"] == "rolled_back"
    assert again.status_code == 200 and again.json()["alerts"][0]["result"] == "duplicate"
    assert "rollback" not in again.json()["alerts"][0]
    assert _record(canary.status()["groups"]["chat"]["last_rollback"]) == _record(last_rollback)
    assert len(rollbacks) == 1

    # The operator re-arms; Alertmanager repeats the same firing: the re-arm stands.
    assert canary.rearm("chat")
    again = await client.post("/alertmanager", json=sample())
    assert again.json()["alerts"][0]["result"] == "duplicate"
    assert _state(canary) == "armed" and len(rollbacks) == 1

    # A new firing of the same alert (a new startsAt) acts again.
    response = await client.post("/alertmanager", json=sample(startsAt="2026-11-26T18:00:00.000Z"))
    assert response.json()["alerts"][0]["result"] == "rolled_back"
    assert _state(canary) == "rolled_back" and len(rollbacks) == 2


async def test_the_same_firing_twice_in_one_payload_is_handled_once(
    canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any]
) -> None:
    payload = sample()
    payload["alerts"].append(copy.deepcopy(payload["alerts"][0]))
    response = await client.post("/alertmanager", json=payload)
    assert [a["result"] for a in response.json()["alerts"]] == ["rolled_back", "duplicate"]
    assert len(rollbacks) == 1


async def test_an_alert_on_a_group_already_rolled_back_keeps_the_first_record(
    canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any]
) -> None:
    manual = canary.rollback("chat", "by hand")
    response = await client.post("/alertmanager", json=sample())
    [result] = response.json()["alerts"]
    assert result["result"] == "already_rolled_back"
    assert result["rollback"]["repeated"] and result["rollback"]["reason"] == "by hand"
    assert _record(canary.status()["groups"]["chat"]["last_rollback"]) == manual and len(rollbacks) == 1


@pytest.mark.parametrize("action", [None, "page", "Rollback", ""])
async def test_alerts_without_the_rollback_action_are_ignored(
    canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any], action: str | None
) -> None:
    payload = sample()
    labels = payload["alerts"][0]["labels"]
    if action is None:
        del labels["action"]
    else:
        labels["action"] = action
    response = await client.post("/alertmanager", json=payload)
    assert response.status_code == 200
    assert [a["result"] for a in response.json()["alerts"]] == ["ignored_no_action"]
    assert _unchanged(canary, rollbacks)


async def test_a_mixed_payload_reports_every_alert(
    canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any]
) -> None:
    payload = sample()
    firing = payload["alerts"][0]
    no_action = alert_of(payload, fingerprint="aaaa", labels={**firing["labels"], "action": "page"})
    # Resolved or without the action, a group no rollout manages is irrelevant: never a 404.
    resolved = alert_of(sample(RESOLVED_SAMPLE, group="nope"))
    unmanaged_page = alert_of(payload, fingerprint="bbbb", labels={"alertname": "X", "model_group": "nope"})
    payload["alerts"] += [no_action, resolved, unmanaged_page]
    response = await client.post("/alertmanager", json=payload)
    assert response.status_code == 200, response.text
    assert [a["result"] for a in response.json()["alerts"]] == [
        "rolled_back",
        "ignored_no_action",
        "ignored_resolved",
        "ignored_no_action",
    ]
    assert len(rollbacks) == 1


@pytest.mark.parametrize("bad_group", ["nope", "other"])
async def test_a_payload_naming_an_unmanaged_group_applies_nothing(
    canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any], bad_group: str
) -> None:
    payload = sample()
    payload["alerts"].append(alert_of(sample(group=bad_group), fingerprint="0123456789abcdef"))
    response = await client.post("/alertmanager", json=payload)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error.startswith("alerts[1].labels.model_group: ") and repr(bad_group) in error
    assert _unchanged(canary, rollbacks)
    # Nothing was remembered either: the valid alert alone is acted on when it comes.
    response = await client.post("/alertmanager", json=sample())
    assert response.json()["alerts"][0]["result"] == "rolled_back"


def _without(key: str) -> dict[str, Any]:
    payload = sample()
    del payload["alerts"][0][key]
    return payload


def _with_labels(**labels: Any) -> dict[str, Any]:
    payload = sample()
    payload["alerts"][0]["labels"].update(labels)
    return payload


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "request body is not valid JSON: "),
        (b"", 400, "request body is not valid JSON: "),
        (b'{"version": "4", "alerts": [\xff]}', 400, "request body is not valid JSON: "),
        (b"[" * 3000, 400, "request body is not valid JSON"),
        ([], 400, "body: Input should be a valid dictionary"),
        ({**sample(), "version": "3"}, 400, "version: Input should be '4'"),
        ({**sample(), "version": 4}, 400, "version: Input should be '4'"),
        ({"version": "4"}, 400, "alerts: Field required"),
        ({"version": "4", "alerts": {}}, 400, "alerts: Input should be a valid list"),
        (sample(labels="x"), 400, "alerts[0].labels: Input should be a valid dictionary"),
        (_with_labels(severity=3), 400, "alerts[0].labels.severity: Input should be a valid string (got 3)"),
        (sample(status="pending"), 400, "alerts[0].status: Input should be 'firing' or 'resolved'"),
        (sample(startsAt="yesterday"), 400, "alerts[0].startsAt: Value error, not an RFC 3339 timestamp"),
        (sample(endsAt=None), 400, "alerts[0].endsAt: Input should be a valid string"),
        (sample(fingerprint=""), 400, "alerts[0].fingerprint: String should have at least 1 character"),
        (_without("fingerprint"), 400, "alerts[0].fingerprint: Field required"),
        (_without("generatorURL"), 400, "alerts[0].generatorURL: Field required"),
        (
            sample(group=None),
            400,
            "alerts[0].labels.model_group: required when the label action is 'rollback'",
        ),
        (sample(group="nope"), 404, "alerts[0].labels.model_group: no rollout manages model group 'nope'"),
    ],
)
async def test_bad_payloads_are_rejected_and_change_nothing(
    canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any], body: Any, status: int, error: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await client.post("/alertmanager", content=content)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"].startswith(error), response.json()
    assert _unchanged(canary, rollbacks)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
async def test_a_body_that_is_not_declared_json_gets_415_and_changes_nothing(
    canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any], content_type: str
) -> None:
    content = json.dumps(sample()).encode()
    for path in ("/alertmanager", "/canary/rollback"):
        response = await client.post(path, content=content, headers={"Content-Type": content_type})
        assert response.status_code == 415, response.text
        assert response.json()["error"] == f"Content-Type must be application/json, got {content_type!r}"
    assert _unchanged(canary, rollbacks)


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "application/json; charset=utf-8", "application/vnd.x+json"]
)
async def test_a_json_body_declared_json_or_undeclared_is_accepted(
    client: httpx.AsyncClient, rollbacks: list[Any], content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await client.post("/alertmanager", content=json.dumps(sample()).encode(), headers=headers)
    assert response.status_code == 200 and len(rollbacks) == 1


# -- body size -----------------------------------------------------------------------------------


def _padded(size: int) -> bytes:
    body = json.dumps(sample()).encode()
    return body + b" " * (size - len(body))


async def _chunks(body: bytes, chunk: int, sent: list[int]) -> AsyncIterator[bytes]:
    for start in range(0, len(body), chunk):
        sent.append(1)
        yield body[start : start + chunk]


async def test_a_body_at_the_limit_is_read_even_without_content_length(
    client: httpx.AsyncClient, rollbacks: list[Any]
) -> None:
    response = await client.post("/alertmanager", content=_padded(4096))
    assert response.status_code == 200, response.text
    sent: list[int] = []
    response = await client.post(
        "/canary/rollback", content=_chunks(b'{"model_group":"chat","reason":"x"}', 5, sent)
    )
    assert response.status_code == 200 and len(sent) > 1


async def test_an_oversized_body_is_413_by_content_length(
    canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any]
) -> None:
    response = await client.post("/alertmanager", content=_padded(4097))
    assert response.status_code == 413
    assert response.json() == {"error": "request body is larger than 4096 bytes"}
    assert _unchanged(canary, rollbacks)


async def test_an_oversized_chunked_body_is_cut_off_while_reading(
    canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any]
) -> None:
    sent: list[int] = []
    body = _padded(10 * 1024 * 1024)  # 10 MiB, offered 1 KiB at a time
    request = client.build_request("POST", "/alertmanager", content=_chunks(body, 1024, sent))
    assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
    response = await client.send(request)
    assert response.status_code == 413
    assert len(sent) <= 6  # stopped reading just past 4 KiB
    assert _unchanged(canary, rollbacks)


async def test_a_content_length_that_lies_does_not_get_past_the_limit(
    canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any]
) -> None:
    response = await client.post("/alertmanager", content=_padded(8192), headers={"Content-Length": "10"})
    assert response.status_code == 413
    response = await client.post("/alertmanager", content=b"{}", headers={"Content-Length": "2x"})
    assert response.status_code == 400 and "Content-Length" in response.json()["error"]
    assert _unchanged(canary, rollbacks)


# -- routes, methods, auth -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/alertmanager", "POST"),
        ("POST", "/canary/status", "GET, HEAD"),
        ("PUT", "/canary/rearm", "POST"),
    ],
)
async def test_a_wrong_method_is_405(
    canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any], method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path, json={"model_group": "chat"})
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == set(allow.split(", "))
    assert "error" in response.json()
    assert _unchanged(canary, rollbacks)


async def test_an_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer é".encode()},
        {"X-Token": TOKEN},
    ],
)
async def test_without_the_token_every_route_is_401_and_nothing_changes(
    canary: Canary, rollbacks: list[Any], headers: dict[str, str | bytes]
) -> None:
    app = create_app(canary, token=TOKEN)
    async with _client(app, headers) as client:
        responses = [
            await client.post("/alertmanager", json=sample()),
            await client.post("/canary/rollback", json={"model_group": "chat", "reason": "x"}),
            await client.post("/canary/rearm", json={"model_group": "chat"}),
            await client.get("/canary/status"),
            await client.get("/nope"),
        ]
    for response in responses:
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"error": "missing or invalid bearer token"}
    assert _unchanged(canary, rollbacks)


async def test_the_bearer_scheme_is_case_insensitive(canary: Canary) -> None:
    async with _client(create_app(canary, token=TOKEN), {"Authorization": f"bearer {TOKEN}"}) as client:
        assert (await client.get("/canary/status")).status_code == 200


async def test_the_token_comes_from_the_environment_or_the_app_refuses_to_start(
    canary: Canary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LITELLM_CANARY_TOKEN", raising=False)
    with pytest.raises(ValueError, match="LITELLM_CANARY_TOKEN"):
        create_app(canary)
    monkeypatch.setenv("LITELLM_CANARY_TOKEN", "")
    with pytest.raises(ValueError, match="LITELLM_CANARY_TOKEN"):
        create_app(canary)
    with pytest.raises(ValueError, match="visible ASCII"):
        create_app(canary, token="with space")
    monkeypatch.setenv("LITELLM_CANARY_TOKEN", "from-env")
    async with _client(create_app(canary), {"Authorization": "Bearer from-env"}) as client:
        assert (await client.get("/canary/status")).status_code == 200
    async with _client(create_app(canary), AUTH) as client:
        assert (await client.get("/canary/status")).status_code == 401


# -- the admin API -------------------------------------------------------------------------------


async def test_admin_rollback_rearm_and_status_round_trip(
    router: Router, canary: Canary, client: httpx.AsyncClient
) -> None:
    status = (await client.get("/canary/status")).json()
    assert status == json.loads(json.dumps(canary.status()))
    assert status["groups"]["chat"]["state"] == "armed"

    response = await client.post("/canary/rollback", json={"model_group": "chat", "reason": "bad deploy"})
    assert response.status_code == 200
    record = response.json()
    assert record["kind"] == "manual" and record["reason"] == "bad deploy" and not record["repeated"]
    assert await _answers(router, 5) == {"stable"}
    status = (await client.get("/canary/status")).json()
    assert status["groups"]["chat"]["state"] == "rolled_back"
    assert _record(status["groups"]["chat"]["last_rollback"]) == record

    again = await client.post("/canary/rollback", json={"model_group": "chat", "reason": "r" * 1000})
    assert again.status_code == 200 and again.json()["repeated"]
    assert again.json()["decided_at"] == record["decided_at"]

    response = await client.post("/canary/rearm", json={"model_group": "chat"})
    assert response.json() == {"model_group": "chat", "rearmed": True}
    response = await client.post("/canary/rearm", json={"model_group": "chat"})
    assert response.json() == {"model_group": "chat", "rearmed": False}
    canary.set_side("chat", "canary")  # the rollback wrote "stable" to the flag store
    assert await _answers(router, 5) == {"canary"}
    assert (await client.get("/canary/status")).json()["groups"]["chat"]["state"] == "armed"


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        (
            "/canary/rollback",
            {"model_group": "chat", "reason": ""},
            400,
            "reason: String should have at least 1",
        ),
        (
            "/canary/rollback",
            {"model_group": "chat", "reason": " \n"},
            400,
            "reason: Value error, must not be blank",
        ),
        (
            "/canary/rollback",
            {"model_group": "chat", "reason": "r" * 1001},
            400,
            "reason: String should have at most",
        ),
        ("/canary/rollback", {"model_group": "chat"}, 400, "reason: Field required"),
        (
            "/canary/rollback",
            {"model_group": 1, "reason": "x"},
            400,
            "model_group: Input should be a valid string",
        ),
        (
            "/canary/rollback",
            {"model_group": "chat", "reason": "x", "kind": "drill"},
            400,
            "kind: Extra inputs",
        ),
        ("/canary/rollback", ["chat"], 400, "body: Input should be a valid dictionary"),
        (
            "/canary/rollback",
            {"model_group": "nope", "reason": "x"},
            404,
            "model_group: no rollout manages model",
        ),
        (
            "/canary/rollback",
            {"model_group": "other", "reason": "x"},
            404,
            "model_group: no rollout manages model",
        ),
        ("/canary/rearm", {}, 400, "model_group: Field required"),
        ("/canary/rearm", {"model_group": ""}, 400, "model_group: String should have at least 1"),
        ("/canary/rearm", {"model_group": "nope"}, 404, "model_group: no rollout manages model group 'nope'"),
    ],
)
async def test_bad_admin_requests_are_rejected_and_change_nothing(
    canary: Canary,
    client: httpx.AsyncClient,
    rollbacks: list[Any],
    path: str,
    body: Any,
    status: int,
    error: str,
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"].startswith(error), response.json()
    assert _unchanged(canary, rollbacks)
    assert (await client.post(path, content=b"{")).status_code == 400


async def test_rearm_of_a_rolled_back_group_is_not_undone_by_a_bad_request(
    canary: Canary, client: httpx.AsyncClient
) -> None:
    canary.rollback("chat", "x")
    response = await client.post("/canary/rearm", json={"model_group": "chat", "force": True})
    assert response.status_code == 400 and _state(canary) == "rolled_back"


# -- fuzzing -------------------------------------------------------------------------------------

MANAGED = {"chat"}
WORDS = ["4", "firing", "resolved", "rollback", "chat", "other", "nope", "", "2026-11-26T17:20:44Z", "x"]
KEYS = ["version", "alerts", "status", "labels", "annotations", "startsAt", "endsAt", "generatorURL"]
KEYS += ["fingerprint", "action", "model_group", "alertname", "summary"]

texts = st.sampled_from(WORDS) | st.text(max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | texts, inner, max_size=5)
    ),
    max_leaves=25,
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        yield from _paths(child, (*path, key))


@st.composite
def mutated_samples(draw: st.DrawFn) -> Any:
    """The real sample with 1-3 alerts on various groups and statuses, then 0-4 random edits."""
    payload = sample(group=draw(st.sampled_from(["chat", "other", "nope"])))
    template = payload["alerts"][0]
    payload["alerts"] = [
        alert_of(
            payload,
            status=draw(st.sampled_from(["firing", "resolved"])),
            fingerprint=draw(st.sampled_from([template["fingerprint"], "fp-b"])),
            labels={**template["labels"], "model_group": draw(st.sampled_from(["chat", "other", "nope"]))},
        )
        for _ in range(draw(st.integers(1, 3)))
    ]
    doc: Any = payload
    for _ in range(draw(st.integers(0, 4))):
        path = draw(st.sampled_from(list(_paths(doc))))
        edit = draw(st.sampled_from(["delete", "replace", "word"]))
        new = draw(json_values) if edit == "replace" else draw(texts)
        if not path:
            doc = new
            continue
        *parent_path, key = path
        parent = doc
        for step in parent_path:
            parent = parent[step]
        if edit == "delete":
            del parent[key]
        else:
            parent[key] = new
    return doc


def _timestamp(value: Any) -> bool:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def _expected_rollbacks(doc: Any) -> set[str] | None:
    """The groups a payload must roll back, or None when it must be refused (written from the spec)."""
    if not isinstance(doc, dict) or doc.get("version") != "4" or not isinstance(doc.get("alerts"), list):
        return None
    groups = set()
    for alert in doc["alerts"]:
        if not isinstance(alert, dict) or alert.get("status") not in ("firing", "resolved"):
            return None
        for key in ("labels", "annotations"):
            mapping = alert.get(key)
            if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
                return None
        if not (_timestamp(alert.get("startsAt")) and _timestamp(alert.get("endsAt"))):
            return None
        if not isinstance(alert.get("generatorURL"), str) or not isinstance(alert.get("fingerprint"), str):
            return None
        if not alert["fingerprint"]:
            return None
        if alert["status"] == "firing" and alert["labels"].get("action") == "rollback":
            if alert["labels"].get("model_group") not in MANAGED:
                return None
            groups.add(alert["labels"]["model_group"])
    return groups


async def _check_one(canary: Canary, rollbacks: list[Any], content: bytes, doc: Any) -> None:
    before = len(rollbacks)
    async with _client(create_app(canary, token=TOKEN)) as client:  # a fresh app forgets firings
        response = await client.post("/alertmanager", content=content)
    assert response.status_code in (200, 400, 404), response.text
    assert "error" in response.json() or response.status_code == 200
    expected = _expected_rollbacks(doc)
    event(f"{response.status_code} rolls back {sorted(expected or [])}")
    if expected is None or response.status_code != 200:
        assert expected is None, (response.status_code, response.text)
        assert len(rollbacks) == before and _state(canary) == "armed"
    else:
        assert {r.model_group for r in rollbacks[before:]} == expected
        assert (_state(canary) == "rolled_back") == bool(expected)
    if canary.runtimes["chat"].rolled_back:
        canary.rearm("chat")


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(doc=mutated_samples())
async def test_fuzz_mutated_samples_never_5xx_and_roll_back_only_when_valid(
    canary: Canary, rollbacks: list[Any], doc: Any
) -> None:
    await _check_one(canary, rollbacks, json.dumps(doc).encode(), doc)


@FUZZ
@given(doc=json_values, raw=st.none() | st.binary(max_size=64))
async def test_fuzz_arbitrary_bodies_never_5xx_and_never_roll_back(
    canary: Canary, rollbacks: list[Any], doc: Any, raw: bytes | None
) -> None:
    if raw is not None:
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            doc = None
    await _check_one(canary, rollbacks, json.dumps(doc).encode() if raw is None else raw, doc)


def test_the_oracle_agrees_with_the_samples() -> None:
    check: Callable[[Any], set[str] | None] = _expected_rollbacks
    assert check(sample()) == {"chat"}
    assert check(sample(RESOLVED_SAMPLE)) == set()
    assert check(sample(group="nope")) is None


async def test_an_over_long_fingerprint_is_rejected_and_changes_nothing(
    canary: Canary, client: httpx.AsyncClient, rollbacks: list[Any]
) -> None:
    """A fingerprint is kept as a dedupe key (up to 10,000 of them): it must be bounded."""
    response = await client.post("/alertmanager", json=sample(fingerprint="f" * 257))
    assert response.status_code == 400
    assert response.json()["error"].startswith("alerts[0].fingerprint: String should have at most 256")
    assert _unchanged(canary, rollbacks)

"""GET /canary/route: the routing-only probe on a real canary attached to a real litellm.Router."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litellm import Router

import litellm_canary
from litellm_canary import Canary
from litellm_canary.integrations.admin_api import create_app
from tests.support.helpers import OutcomeWaiter, chat_rollout, deployment

TOKEN = "route-probe-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MESSAGES = [{"role": "user", "content": "hi"}]
USERS = [f"user-{i}" for i in range(40)]


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
    canary = litellm_canary.attach(
        router, {"rollouts": [chat_rollout()], "flag_store": {"kind": "memory"}}, background=False
    )
    yield canary
    canary.detach()


@pytest.fixture
async def client(canary: Canary) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(canary, token=TOKEN)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH) as client:
        yield client


async def _served(router: Router, user: str) -> str:
    response = await router.acompletion(model="chat", messages=MESSAGES, user=user)
    content: str = response.choices[0].message.content
    return content


async def _probed(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.get("/canary/route", params={"group": "chat", **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_probe_answers_the_side_a_real_request_of_the_same_user_is_routed_to(
    router: Router, canary: Canary, client: httpx.AsyncClient
) -> None:
    canary.set_canary_percent("chat", 50)  # sticky per user: both sides among 40 users
    probed = {user: (await _probed(client, user=user))["side"] for user in USERS}
    served = {user: await _served(router, user) for user in USERS}
    assert probed == served
    assert set(served.values()) == {"stable", "canary"}


async def test_after_a_rollback_the_probe_says_latched_stable_without_reading_the_flag(
    router: Router, canary: Canary, client: httpx.AsyncClient
) -> None:
    canary.set_side("chat", "canary")
    before = await _probed(client, user="u1")
    assert before["side"] == "canary" and before["latched"] is False
    assert before["variant"] == "canary" and before["deployments"] == ["chat-canary"]
    assert before["latched_at"] is None
    called = time.time()
    canary.rollback("chat", "test")
    after = await _probed(client, user="u1")
    assert called <= after["latched_at"] <= time.time()  # the replica's own latch time (Unix)
    assert after["group"] == "chat"
    assert (after["side"], after["reason"], after["latched"]) == ("stable", "rolled_back", True)
    assert after["flag_read"] is False and after["variant"] is None
    assert after["deployments"] == ["chat-stable"]
    assert await _served(router, "u1") == "stable"
    canary.rearm("chat")  # the rollback wrote the flag to stable: the flag decides again
    rearmed = await _probed(client, user="u1")
    assert (rearmed["side"], rearmed["reason"], rearmed["latched"], rearmed["variant"]) == (
        "stable",
        "flag",
        False,
        "stable",
    )


async def test_a_probe_opens_no_attempt_and_emits_no_decision(
    router: Router, canary: Canary, client: httpx.AsyncClient
) -> None:
    canary.set_side("chat", "canary")
    decisions: list[Any] = []
    canary.on_decision(lambda *args: decisions.append(args))
    waiter = OutcomeWaiter(canary)
    for _ in range(5):
        assert (await _probed(client))["side"] == "canary"  # no user: a random stickiness key
    assert decisions == [] and waiter.outcomes == []
    assert canary.status()["groups"]["chat"]["attempts"] == canary.outcomes.summary("chat")
    assert canary.runtimes["chat"].pins.in_flight(litellm_canary.Side.CANARY) == 0
    assert await _served(router, "u1") == "canary"  # the real request is the first decision
    assert len(decisions) == 1
    await waiter.wait(1)


async def test_a_session_pinned_to_stable_stays_there_in_the_probe(
    router: Router, canary: Canary, client: httpx.AsyncClient
) -> None:
    canary.set_side("chat", "stable")
    response = await router.acompletion(model="chat", messages=MESSAGES, metadata={"session_id": "s1"})
    assert response.choices[0].message.content == "stable"
    canary.set_side("chat", "canary")
    pinned = await _probed(client, session_id="s1")
    assert (pinned["side"], pinned["reason"], pinned["pinned"]) == ("stable", "pinned", True)
    assert (await _probed(client, session_id="s2"))["side"] == "canary"


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, "'group' is required"),
        ("?user=u1", 400, "'group' is required"),
        ("?group=", 400, "'group' must be 1..512 characters"),
        ("?group=chat&group=chat", 400, "'group' given 2 times"),
        ("?group=chat&model=chat", 400, "unknown query parameter(s) ['model']"),
        ("?group=other", 404, "no rollout manages model group 'other' (managed: ['chat'])"),
        ("?group=nope&user=u1", 404, "group: no rollout manages model group 'nope'"),
    ],
)
async def test_a_bad_query_is_a_clear_error_naming_the_problem(
    client: httpx.AsyncClient, query: str, status: int, message: str
) -> None:
    response = await client.get(f"/canary/route{query}")
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


async def test_the_probe_needs_the_bearer_token(canary: Canary) -> None:
    transport = httpx.ASGITransport(app=create_app(canary, token=TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}):
            response = await client.get("/canary/route?group=chat", headers=headers)
            assert response.status_code == 401, headers
            assert response.json() == {"error": "missing or invalid bearer token"}
        assert (await client.get("/canary/route?group=chat", headers=AUTH)).status_code == 200
        assert (await client.post("/canary/route?group=chat", headers=AUTH)).status_code == 405

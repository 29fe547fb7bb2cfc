"""The routing core on a real litellm.Router with mocked upstreams (LiteLLM's mock_response)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import litellm
import pytest
from litellm import Router
from openfeature import api
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

import litellm_canary
from litellm_canary import Side
from litellm_canary.core.decision import Decision
from tests.support.helpers import LoggedCalls, OutcomeWaiter, chat_rollout, deployment

MESSAGES = [{"role": "user", "content": "hi"}]


def _router(**kwargs: Any) -> Router:
    model_list = kwargs.pop(
        "model_list",
        [
            deployment("chat", "chat-stable", "stable"),
            deployment("chat", "chat-canary", "canary"),
            deployment("other", "other-a", "other-a"),
            deployment("other", "other-b", "other-b"),
        ],
    )
    return Router(model_list=model_list, **kwargs)


def _attach(router: Router, **config: Any) -> litellm_canary.Canary:
    config.setdefault("rollouts", [chat_rollout()])
    config.setdefault("flag_store", {"kind": "memory"})
    return litellm_canary.attach(router, config)


async def _answers(router: Router, n: int, **kwargs: Any) -> Counter[str]:
    answers: Counter[str] = Counter()
    for i in range(n):
        response = await router.acompletion(model="chat", messages=MESSAGES, user=f"user-{i}", **kwargs)
        answers[response.choices[0].message.content] += 1
    return answers


async def test_flag_routes_every_request_and_a_flip_takes_effect_on_the_next_one() -> None:
    router = _router()
    canary = _attach(router)
    assert await _answers(router, 20) == {"stable": 20}
    canary.set_side("chat", "canary")
    assert await _answers(router, 20) == {"canary": 20}
    canary.set_side("chat", "stable")
    assert await _answers(router, 1) == {"stable": 1}


async def test_ten_percent_split_then_rollback_sends_everything_to_stable() -> None:
    router = _router()
    canary = _attach(router)
    canary.set_canary_percent("chat", 10)
    before = await _answers(router, 400)
    assert 20 <= before["canary"] <= 60
    record = canary.rollback("chat", reason="test")
    assert record["kind"] == "manual" and record["reason"] == "test" and not record["repeated"]
    assert await _answers(router, 200) == {"stable": 200}
    status = canary.status()["groups"]["chat"]
    assert status["state"] == "rolled_back"
    assert status["last_rollback"]["flag_error"] is None


async def test_rollback_is_idempotent_and_only_rearm_releases_the_latch() -> None:
    router = _router()
    canary = _attach(router)
    canary.set_side("chat", "canary")
    first = canary.rollback("chat", reason="first")
    again = canary.rollback("chat", reason="second")
    assert again["repeated"] and again["reason"] == "first" and again["decided_at"] == first["decided_at"]
    with pytest.raises(litellm_canary.RolledBackError, match="re-arm it first"):
        canary.set_side("chat", "canary")  # refused through the canary while rolled back
    assert canary.store is not None
    canary.store.set_side("chat-canary", Side.CANARY)  # the flag says canary again (another writer)
    assert await _answers(router, 10) == {"stable": 10}  # the latch holds
    assert canary.rearm("chat") is True
    assert canary.rearm("chat") is False
    assert await _answers(router, 10) == {"canary": 10}


async def test_rollback_writes_the_flag_store_so_other_readers_follow() -> None:
    router = _router()
    canary = _attach(router)
    canary.set_side("chat", "canary")
    canary.rollback("chat", reason="x")
    canary.rearm("chat")  # the latch is gone, but the store now says stable
    assert await _answers(router, 10) == {"stable": 10}


async def test_application_provider_and_boolean_flags() -> None:
    api.set_provider_and_wait(
        InMemoryProvider({"chat-canary": InMemoryFlag("on", {"on": True, "off": False})})
    )
    router = _router()
    canary = litellm_canary.attach(router, {"rollouts": [chat_rollout()]})
    assert await _answers(router, 5) == {"canary": 5}
    record = canary.rollback("chat", reason="no store")
    assert record["flag_store"] is None
    assert await _answers(router, 5) == {"stable": 5}


async def test_missing_flag_routes_stable_and_is_counted() -> None:
    api.set_provider_and_wait(InMemoryProvider({}))
    router = _router()
    canary = litellm_canary.attach(router, {"rollouts": [chat_rollout()]})
    assert await _answers(router, 5) == {"stable": 5}
    assert canary.status()["flag_errors"] == {"FLAG_NOT_FOUND": 5}


async def test_unmanaged_groups_are_untouched() -> None:
    router = _router()
    _attach(router)
    served: Counter[str] = Counter()
    for _ in range(200):
        response = await router.acompletion(model="other", messages=MESSAGES)
        served[response.choices[0].message.content] += 1
    assert served["other-a"] > 60 and served["other-b"] > 60
    direct = await router.acompletion(model="other-b", messages=MESSAGES)
    assert direct.choices[0].message.content == "other-b"


async def test_a_call_addressing_a_managed_deployment_by_id_is_counted_as_unsteered() -> None:
    # LiteLLM runs no deployment filter for a call that names one deployment: the default routing
    # cannot steer it, so it is served where it asked and counted (the proxy rewrites such calls).
    router = _router()
    canary = _attach(router)
    logged = LoggedCalls()
    response = await router.acompletion(model="chat-canary", messages=MESSAGES)
    assert response.choices[0].message.content == "canary"
    await logged.wait(1)
    assert canary.status()["unsteered"] == {"chat": 1}
    assert canary.status()["groups"]["chat"]["in_flight"] == {"stable": 0, "canary": 0}


async def test_addressing_a_canary_deployment_by_id_does_not_bypass_the_decision_when_opted_in() -> None:
    router = _router()
    canary = _attach(router)
    canary.route_sync_calls()
    response = await router.acompletion(model="chat-canary", messages=MESSAGES)
    assert response.choices[0].message.content == "stable"
    canary.set_side("chat", "canary")
    response = await router.acompletion(model="chat-stable", messages=MESSAGES)
    assert response.choices[0].message.content == "canary"


async def test_sync_completion_is_served_by_litellm_and_counted_as_unsteered() -> None:
    # LiteLLM's sync pick runs no deployment filter: sync calls on a managed group are LiteLLM's own
    # choice unless the application opts in (route_sync_calls); they are counted, never hidden.
    router = _router()
    canary = _attach(router)
    logged = LoggedCalls()
    response = await asyncio.to_thread(router.completion, model="chat", messages=MESSAGES)
    assert response.choices[0].message.content in ("stable", "canary")
    other = await asyncio.to_thread(router.completion, model="other", messages=MESSAGES)
    assert other.choices[0].message.content in ("other-a", "other-b")
    await logged.wait(2)
    assert canary.status()["unsteered"] == {"chat": 1}  # the unmanaged call is not counted


async def test_sync_completion_follows_the_flag_and_the_latch_when_opted_in() -> None:
    router = _router()
    canary = _attach(router)
    canary.route_sync_calls()
    outcomes = OutcomeWaiter(canary)
    canary.set_side("chat", "canary")
    response = await asyncio.to_thread(router.completion, model="chat", messages=MESSAGES)
    assert response.choices[0].message.content == "canary"
    canary.rollback("chat", reason="x")
    response = await asyncio.to_thread(router.completion, model="chat", messages=MESSAGES)
    assert response.choices[0].message.content == "stable"
    assert [(o.side, o.ok) for o in await outcomes.wait(2)] == [(Side.CANARY, True), (Side.STABLE, True)]
    status = canary.status()["groups"]["chat"]
    assert status["in_flight"] == {"stable": 0, "canary": 0}


async def test_embeddings_and_streams_follow_the_flag() -> None:
    router = _router(
        model_list=[
            deployment("chat", "chat-stable", "stable"),
            deployment("chat", "chat-canary", "canary"),
            deployment(
                "embed", "embed-stable", None, model="openai/text-embedding-3-small", mock_response=[0.1]
            ),
            deployment(
                "embed", "embed-canary", None, model="openai/text-embedding-3-small", mock_response=[0.9]
            ),
        ]
    )
    seen: list[tuple[str, str]] = []
    canary = _attach(
        router,
        rollouts=[
            chat_rollout(),
            {
                "model_group": "embed",
                "stable": ["embed-stable"],
                "canary": ["embed-canary"],
                "flag_key": "embed",
            },
        ],
    )
    canary.on_decision(lambda group, decision, deployment_id: seen.append((group, deployment_id)))
    canary.set_side("embed", "canary")
    await router.aembedding(model="embed", input=["x"])
    canary.rollback("embed", reason="x")
    await router.aembedding(model="embed", input=["x"])
    stream = await router.acompletion(model="chat", messages=MESSAGES, stream=True)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == "stable"
    assert seen == [("embed", "embed-canary"), ("embed", "embed-stable"), ("chat", "chat-stable")]


async def test_a_side_with_several_deployments_spreads_load_by_weight() -> None:
    router = _router(
        model_list=[
            deployment("chat", "chat-stable", "stable"),
            deployment("chat", "canary-1", "canary-1", weight=1),
            deployment("chat", "canary-2", "canary-2", weight=3),
        ]
    )
    canary = _attach(router, rollouts=[chat_rollout(canary=["canary-1", "canary-2"])])
    canary.set_side("chat", "canary")
    served = await _answers(router, 400)
    assert set(served) == {"canary-1", "canary-2"}
    assert 2 <= served["canary-2"] / served["canary-1"] <= 4.5


async def test_canary_in_cooldown_is_not_served() -> None:
    router = _router()
    canary = _attach(router)
    canary.set_side("chat", "canary")
    router.health().cooldowns.add_deployment_to_cooldown("chat-canary", RuntimeError("down"), 500, 60)
    assert await _answers(router, 5) == {"stable": 5}


async def test_session_pins_and_their_release_on_rollback() -> None:
    router = _router()
    canary = _attach(router)
    canary.set_canary_percent("chat", 50)
    sessions = [f"session-{i}" for i in range(40)]
    first = {}
    for session in sessions:
        response = await router.acompletion(model="chat", messages=MESSAGES, metadata={"session_id": session})
        first[session] = response.choices[0].message.content
    for session in sessions:  # sticky, whoever the end user is
        response = await router.acompletion(
            model="chat", messages=MESSAGES, metadata={"session_id": session}, user="someone-else"
        )
        assert response.choices[0].message.content == first[session]
    pins = canary.status()["groups"]["chat"]["pins"]
    assert pins["canary"] == Counter(first.values())["canary"] > 0
    canary.rollback("chat", reason="x")
    assert canary.status()["groups"]["chat"]["pins"]["canary"] == 0
    assert await canary.drained("chat", timeout=5)


async def test_detach_removes_every_hook() -> None:
    router = _router()
    canary = _attach(router)
    callbacks_with = len(litellm.callbacks)
    canary.rollback("chat", reason="x")
    canary.detach()
    assert len(litellm.callbacks) == callbacks_with - 2  # the routing filter and the outcome callbacks
    served = await _answers(router, 60)
    assert served["canary"] > 0 and served["stable"] > 0  # plain LiteLLM shuffle again


async def test_flips_racing_with_500_concurrent_requests() -> None:
    """50 concurrent clients x 10 requests; a rollback lands while half of them have been decided."""
    router = _router()
    canary = _attach(router)
    canary.set_side("chat", "canary")
    decisions: list[tuple[float, Side]] = []
    halfway = asyncio.Event()

    def record(group: str, decision: Decision, deployment_id: str) -> None:
        decisions.append((time.perf_counter(), decision.side))
        if len(decisions) == 250:
            halfway.set()

    canary.on_decision(record)
    flipped_at: list[float] = []

    async def flip_at_halfway() -> None:
        await halfway.wait()
        canary.rollback("chat", reason="race")
        flipped_at.append(time.perf_counter())

    async def client(n: int) -> list[str]:
        answers = []
        for i in range(10):
            response = await router.acompletion(model="chat", messages=MESSAGES, user=f"u{n}-{i}")
            answers.append(response.choices[0].message.content)
        return answers

    results = await asyncio.gather(flip_at_halfway(), *(client(n) for n in range(50)))
    answers = [answer for per_client in results[1:] for answer in per_client]
    assert len(answers) == 500 and set(answers) <= {"stable", "canary"}  # every request served
    after = [side for at, side in decisions if at > flipped_at[0]]
    assert len(after) >= 100 and all(side is Side.STABLE for side in after)
    assert all(side is Side.CANARY for at, side in decisions if at < flipped_at[0])
    assert await canary.drained("chat", timeout=10)


async def test_decision_listener_sees_reasons() -> None:
    router = _router()
    canary = _attach(router)
    reasons: list[Decision] = []
    canary.on_decision(lambda group, decision, deployment_id: reasons.append(decision))
    canary.set_side("chat", "canary")
    await _answers(router, 1)
    canary.rollback("chat", reason="x")
    await _answers(router, 1)
    assert [d.reason.value for d in reasons] == ["flag", "rolled_back"]


@pytest.mark.parametrize("num_retries", [2])
async def test_mocked_failures_retry_on_the_same_side_and_close_every_attempt(num_retries: int) -> None:
    router = _router(num_retries=num_retries)
    canary = _attach(router)
    outcomes = OutcomeWaiter(canary)
    canary.set_side("chat", "canary")
    with pytest.raises(Exception):  # noqa: B017 - the mocked upstream fails every attempt
        await router.acompletion(model="chat", messages=MESSAGES, mock_response=Exception("boom"))
    await outcomes.wait(num_retries + 1)
    status = canary.status()["groups"]["chat"]
    assert status["in_flight"] == {"stable": 0, "canary": 0}
    failures = sum(
        n for key, n in status["attempts"].items() if key.startswith("canary:") and key != "canary:success"
    )
    assert failures == num_retries + 1


async def test_a_metadata_dict_reused_across_requests_keeps_them_apart() -> None:
    router = _router()
    canary = _attach(router)
    outcomes = OutcomeWaiter(canary)
    shared: dict[str, Any] = {"team": "search"}
    canary.set_side("chat", "stable")
    await router.acompletion(model="chat", messages=MESSAGES, metadata=shared)
    canary.set_side("chat", "canary")  # a later request is not a retry of the first one
    response = await router.acompletion(model="chat", messages=MESSAGES, metadata=shared)
    assert response.choices[0].message.content == "canary"
    concurrent = await asyncio.gather(
        *(router.acompletion(model="chat", messages=MESSAGES, metadata=shared) for _ in range(20))
    )
    assert {r.choices[0].message.content for r in concurrent} == {"canary"}
    seen = await outcomes.wait(22)
    assert all(o.ok for o in seen)  # no request mistaken for another's retry
    assert canary.status()["groups"]["chat"]["in_flight"] == {"stable": 0, "canary": 0}


async def test_a_failing_decision_never_reaches_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    router = _router()
    canary = _attach(router)
    canary.set_side("chat", "canary")

    def broken_listener(group: str, decision: Decision, deployment_id: str) -> None:
        raise RuntimeError("a listener bug")

    canary.on_decision(broken_listener)  # an observer's bug changes nothing
    assert await _answers(router, 2) == {"canary": 2}

    def broken_open(side: Side, deployment_id: str) -> None:
        raise RuntimeError("an internal bug")

    monkeypatch.setattr(canary.runtimes["chat"].pins, "open", broken_open)
    assert await _answers(router, 2) == {"stable": 2}  # an internal failure routes to stable
    assert canary._routing.pick_errors == 2

"""In-flight attempts across a flip, against fault-injecting OpenAI-compatible upstreams on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litellm import Router

import litellm_canary
from litellm_canary import Side
from litellm_canary.core.outcomes import Outcome
from litellm_canary.testing.fake_upstream import FakeUpstream
from tests.support.helpers import FakeClock, OutcomeWaiter, chat_rollout, started_upstreams, upstream_router

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, FakeUpstream]]:
    servers = started_upstreams(
        {
            "chat-stable": "stable says hello there",
            "canary-1": "canary one says hello there",
            "canary-2": "canary two says hello there",
        }
    )
    yield servers
    for server in servers.values():
        server.stop()


def _router(upstreams: dict[str, FakeUpstream], **kwargs: Any) -> Router:
    return upstream_router(upstreams, **kwargs)  # type: ignore[no-any-return]


def _canary(router: Router, clock: FakeClock | None = None, **rollout: Any) -> litellm_canary.Canary:
    rollout.setdefault("canary", ["canary-1", "canary-2"])
    config = {"rollouts": [chat_rollout(**rollout)], "flag_store": {"kind": "memory"}}
    return (
        litellm_canary.attach(router, config, clock=clock) if clock else litellm_canary.attach(router, config)
    )


async def test_a_stream_on_the_canary_finishes_there_across_a_rollback(
    upstreams: dict[str, FakeUpstream],
) -> None:
    router = _router(upstreams)
    canary = _canary(router, canary=["canary-1"])
    upstreams.pop("canary-2").stop()
    canary.set_side("chat", "canary")
    upstreams["canary-1"].set_faults(hold_stream=True, hold_after_chunks=1)

    stream = await router.acompletion(model="chat", messages=MESSAGES, stream=True)
    chunks = [await anext(aiter(stream))]  # the stream has started on the canary and is held there
    assert await upstreams["canary-1"].async_wait_until(lambda s: s["streams_held"] == 1)

    record = canary.rollback("chat", reason="mid-stream")
    assert record["in_flight_at_flip"]["canary"] == 1
    follow_up = await router.acompletion(model="chat", messages=MESSAGES)
    assert follow_up.choices[0].message.content == "stable says hello there"
    assert canary.status()["groups"]["chat"]["in_flight"]["canary"] == 1  # not interrupted

    upstreams["canary-1"].release_streams()
    chunks += [chunk async for chunk in stream]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == "canary one says hello there"  # every chunk came from the canary

    assert await canary.drained("chat", timeout=10)
    status = canary.status()["groups"]["chat"]
    assert status["in_flight"] == {"stable": 0, "canary": 0} and status["pins"]["canary"] == 0
    assert status["last_rollback"]["canary_attempts"] == {
        "at_flip": 1,
        "completed": 1,
        "failed": 0,
        "expired": 0,
        "pending": 0,
    }


async def test_retries_keep_their_side(upstreams: dict[str, FakeUpstream]) -> None:
    router = _router(upstreams, num_retries=2)
    canary = _canary(router)
    outcomes = OutcomeWaiter(canary)
    canary.set_side("chat", "canary")
    for server in upstreams.values():
        server.set_faults(fail_nth={1}, error_status=503)
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert response.choices[0].message.content.startswith("canary")
    # LiteLLM picks the retry's deployment within the canary side: the same one (its second request
    # succeeds) or the other one (whose first request fails too, then a third attempt).
    seen = await outcomes.wait(2)
    if seen[-1].ok is False:
        seen = await outcomes.wait(3)
    assert [o.side for o in seen] == [Side.CANARY] * len(seen)
    assert [o.ok for o in seen] == [False] * (len(seen) - 1) + [True]
    assert seen[0].status_class == "5xx"


async def test_a_rollback_between_attempts_sends_the_retry_to_stable(
    upstreams: dict[str, FakeUpstream],
) -> None:
    router = _router(upstreams, num_retries=2)
    canary = _canary(router)
    canary.set_side("chat", "canary")
    for name in ("canary-1", "canary-2"):
        upstreams[name].set_faults(error_rate=1.0, error_status=500)

    def roll_back_on_first_canary_failure(outcome: Outcome) -> None:
        if outcome.side is Side.CANARY and not outcome.ok:
            canary.rollback("chat", reason="canary failed")

    canary.on_outcome(roll_back_on_first_canary_failure)
    outcomes = OutcomeWaiter(canary)
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert response.choices[0].message.content == "stable says hello there"
    seen = await outcomes.wait(2)
    assert [(o.side, o.ok) for o in seen] == [(Side.CANARY, False), (Side.STABLE, True)]
    assert upstreams["canary-1"].stats()["requests"] + upstreams["canary-2"].stats()["requests"] == 1


async def test_responses_continuations_stay_on_their_deployment(upstreams: dict[str, FakeUpstream]) -> None:
    router = _router(upstreams)
    canary = _canary(router)
    canary.set_side("chat", "canary")
    first = await router.aresponses(model="chat", input="hello")
    origin = "canary-1" if "one" in first.output[0].content[0].text else "canary-2"
    for _ in range(8):
        follow = await router.aresponses(model="chat", input="more", previous_response_id=first.id)
        assert follow.output[0].content[0].text == first.output[0].content[0].text
    assert upstreams[origin].stats()["requests"] == 9
    canary.rollback("chat", reason="x")
    after = await router.aresponses(model="chat", input="more", previous_response_id=first.id)
    assert after.output[0].content[0].text == "stable says hello there"


async def test_conversations_may_drain_on_the_canary_for_a_bounded_time(
    upstreams: dict[str, FakeUpstream],
) -> None:
    clock = FakeClock()
    router = _router(upstreams)
    canary = _canary(router, clock=clock, conversation_drain_s=30)
    canary.set_side("chat", "canary")
    first = await router.aresponses(model="chat", input="hello", metadata={"session_id": "s1"})
    assert "canary" in first.output[0].content[0].text
    canary.rollback("chat", reason="x")

    new = await router.aresponses(model="chat", input="hello")
    assert new.output[0].content[0].text == "stable says hello there"  # new conversations: stable
    draining = await router.aresponses(model="chat", input="more", previous_response_id=first.id)
    assert draining.output[0].content[0].text == first.output[0].content[0].text
    assert canary.status()["groups"]["chat"]["conversation_drain_remaining_s"] == 30

    clock.now += 10
    assert canary.status()["groups"]["chat"]["conversation_drain_remaining_s"] == 20
    clock.now += 20
    assert canary.status()["groups"]["chat"]["conversation_drain_remaining_s"] == 0
    after = await router.aresponses(model="chat", input="more", previous_response_id=first.id)
    assert after.output[0].content[0].text == "stable says hello there"
    assert canary.status()["groups"]["chat"]["pins"]["canary"] == 0
    assert await canary.drained("chat", timeout=10)

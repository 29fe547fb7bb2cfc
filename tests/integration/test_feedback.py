"""User feedback: attributed to the side and deployment that served the response; API and HTTP."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litellm import Router

import litellm_canary
from litellm_canary import Canary, ConfigError
from litellm_canary.core.probe import call_deployment
from litellm_canary.detection.feedback import UnknownResponse
from litellm_canary.integrations.admin_api import create_app
from litellm_canary.integrations.metrics import CanaryMetrics
from tests.support.helpers import FakeClock, chat_rollout, deployment

TOKEN = "feedback-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Served:
    """Awaits the success callback that fills the feedback map (LiteLLM runs it after returning)."""

    def __init__(self, canary: Canary) -> None:
        self.ids: list[str] = []
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        # Runs after the feedback book's own listener, which was registered at attach.
        canary._callbacks.successes.connect(self._served)

    def _served(self, outcome: Any, kwargs: Any, response: Any) -> None:
        self.ids.append(response.id)
        self._loop.call_soon_threadsafe(self._changed.set)

    async def wait_for(self, response_id: str) -> None:
        async with asyncio.timeout(10):
            while response_id not in self.ids:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def canary(clock: FakeClock) -> Iterator[Canary]:
    router = Router(
        model_list=[
            deployment("chat", "chat-stable", "stable"),
            deployment("chat", "chat-canary", "canary"),
            deployment("chat", "chat-canary-2", "canary 2"),
        ]
    )
    config = {
        "rollouts": [chat_rollout(canary=["chat-canary", "chat-canary-2"])],
        "flag_store": {"kind": "memory"},
        "feedback": {"max_responses": 3, "ttl_s": 60},
    }
    canary = litellm_canary.attach(router, config, clock=clock, background=False)
    yield canary
    canary.detach()


async def _serve(canary: Canary, served: Served, side: str) -> tuple[str, str]:
    """One routed request served by ``side``: (response id, answer)."""
    canary.set_side("chat", side)
    response = await canary._router.acompletion(model="chat", messages=[{"role": "user", "content": "hi"}])
    await served.wait_for(response.id)
    return response.id, response.choices[0].message.content


async def test_feedback_is_attributed_to_the_serving_side_and_deployment(canary: Canary) -> None:
    served = Served(canary)
    stable_id, _ = await _serve(canary, served, "stable")
    canary_id, answer = await _serve(canary, served, "canary")
    canary_deployment = "chat-canary" if answer == "canary" else "chat-canary-2"

    assert canary.record_feedback(stable_id, 1) == {
        "response_id": stable_id,
        "model_group": "chat",
        "side": "stable",
        "deployment": "chat-stable",
        "score": 1.0,
        "replaced": False,
    }
    assert canary.record_feedback(canary_id, 0.25)["deployment"] == canary_deployment
    assert canary.record_feedback(canary_id, 0.5)["replaced"] is True  # one score per response

    feedback = canary.status()["groups"]["chat"]["feedback"]
    assert feedback["sides"] == {"stable": {"count": 1, "mean": 1.0}, "canary": {"count": 1, "mean": 0.5}}
    assert feedback["deployments"][canary_deployment] == {"side": "canary", "count": 1, "mean": 0.5}

    scores = canary.feedback_scores("chat")
    assert scores is not None and scores.source == "feedback"
    assert (scores.canary_mean, scores.canary_samples, scores.stable_mean, scores.stable_samples) == (
        0.5,
        1,
        1.0,
        1,
    )

    text = CanaryMetrics(canary).exposition().decode()
    assert 'litellm_canary_feedback_total{model_group="chat",side="canary"} 1.0' in text
    assert 'litellm_canary_feedback_score_mean{model_group="chat",side="stable"} 1.0' in text

    canary.rollback("chat", "test")
    canary.rearm("chat")  # a re-armed canary is judged on new feedback
    assert canary.status()["groups"]["chat"]["feedback"]["sides"]["canary"] == {"count": 0, "mean": None}
    assert canary.feedback_scores("chat") is None


async def test_unknown_expired_and_evicted_ids_are_clear_errors(canary: Canary, clock: FakeClock) -> None:
    served = Served(canary)
    with pytest.raises(UnknownResponse, match="no recent response with id 'chatcmpl-nope'") as raised:
        canary.record_feedback("chatcmpl-nope", 1.0)
    assert isinstance(raised.value, KeyError)

    first, _ = await _serve(canary, served, "stable")
    clock.now += 61  # past the TTL
    with pytest.raises(UnknownResponse):
        canary.record_feedback(first, 1.0)

    ids = [(await _serve(canary, served, "stable"))[0] for _ in range(4)]  # the map holds 3
    with pytest.raises(UnknownResponse):
        canary.record_feedback(ids[0], 1.0)
    assert canary.record_feedback(ids[-1], 1.0)["side"] == "stable"
    assert canary.lifecycle.feedback.unknown == 3


@pytest.mark.parametrize("score", [-0.01, 1.01, math.nan, math.inf, True, "0.5", None])
async def test_bad_scores_are_refused_and_change_nothing(canary: Canary, score: Any) -> None:
    served = Served(canary)
    response_id, _ = await _serve(canary, served, "stable")
    with pytest.raises(ValueError, match="score must be"):
        canary.record_feedback(response_id, score)
    assert canary.status()["groups"]["chat"]["feedback"]["sides"]["stable"]["count"] == 0


async def test_probe_responses_get_no_feedback(canary: Canary) -> None:
    served = Served(canary)
    result = await call_deployment(canary._router, "chat-stable", [{"role": "user", "content": "x"}])
    routed, _ = await _serve(canary, served, "stable")  # LiteLLM logs in order: the probe came first
    assert result.ok and result.response.id != routed
    with pytest.raises(UnknownResponse):
        canary.record_feedback(result.response.id, 1.0)


def test_feedback_config_is_validated() -> None:
    router = Router(
        model_list=[deployment("chat", "chat-stable", "s"), deployment("chat", "chat-canary", "c")]
    )
    with pytest.raises(
        ConfigError, match=r"feedback\.max_responses: Input should be greater than or equal to 1"
    ):
        litellm_canary.attach(router, {"rollouts": [chat_rollout()], "feedback": {"max_responses": 0}})


# -- POST /canary/feedback -----------------------------------------------------------------------


@pytest.fixture
async def client(canary: Canary) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(canary, token=TOKEN, max_body_bytes=256)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers=AUTH
    ) as client:
        yield client


async def test_http_feedback(canary: Canary, client: httpx.AsyncClient) -> None:
    served = Served(canary)
    response_id, _ = await _serve(canary, served, "canary")

    ok = await client.post("/canary/feedback", json={"response_id": response_id, "score": 0})
    assert ok.status_code == 200 and ok.json()["side"] == "canary" and ok.json()["score"] == 0.0

    unknown = await client.post("/canary/feedback", json={"response_id": "chatcmpl-gone", "score": 1})
    assert unknown.status_code == 404
    assert unknown.json()["error"].startswith("response_id: no recent response with id 'chatcmpl-gone'")

    for body, message in [
        ({"response_id": response_id, "score": 2}, "score: Input should be less than or equal to 1"),
        ({"response_id": response_id, "score": "1"}, "score: Input should be a valid number"),
        ({"response_id": response_id, "score": True}, "score: Input should be a valid number"),
        ({"response_id": "", "score": 1}, "response_id: String should have at least 1 character"),
        ({"score": 1}, "response_id: Field required"),
        ({"response_id": response_id, "score": 1, "x": 1}, "x: Extra inputs are not permitted"),
    ]:
        refused = await client.post("/canary/feedback", json=body)
        assert refused.status_code == 400 and message in refused.json()["error"], refused.json()
    nan = await client.post(
        "/canary/feedback", content=f'{{"response_id": "{response_id}", "score": NaN}}'.encode()
    )
    assert nan.status_code == 400 and "score" in nan.json()["error"]
    too_large = await client.post("/canary/feedback", json={"response_id": "x" * 300, "score": 1})
    assert too_large.status_code == 413
    no_token = await client.post(
        "/canary/feedback", json={"response_id": response_id, "score": 1}, headers={"Authorization": ""}
    )
    assert no_token.status_code == 401

    # Only the first, valid score counted.
    assert canary.status()["groups"]["chat"]["feedback"]["sides"]["canary"] == {"count": 1, "mean": 0.0}


async def test_streams_and_responses_api_ids_take_feedback(canary: Canary) -> None:
    served = Served(canary)
    canary.set_side("chat", "canary")
    stream = await canary._router.acompletion(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunk_ids = {chunk.id async for chunk in stream}
    assert len(chunk_ids) == 1
    (stream_id,) = chunk_ids
    await served.wait_for(stream_id)
    assert canary.record_feedback(stream_id, 0.75)["side"] == "canary"

    canary.set_side("chat", "stable")
    response = await canary._router.aresponses(model="chat", input="hi")
    await served.wait_for(response.id)
    assert canary.record_feedback(response.id, 1.0)["deployment"] == "chat-stable"

"""An attempt's outcome event that reaches the canary a second time changes nothing.

Inside the LiteLLM proxy every success event arrives twice (the canary's own logger and the proxy
entry that forwards events); the second must not count an outcome, emit ``successes`` or repin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger
from litellm.router import Router

import litellm_canary
from litellm_canary import Canary
from tests.support.helpers import OutcomeWaiter, chat_rollout, deployment


class Captured(CustomLogger):
    """Keeps the arguments of LiteLLM's success events (to replay one)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[Any, Any, Any, Any]] = []

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.events.append((kwargs, response_obj, start_time, end_time))


@pytest.fixture
async def routed() -> AsyncIterator[tuple[Router, Canary]]:
    router = Router(
        model_list=[
            deployment("chat", "once-stable", answer="s"),
            deployment("chat", "once-canary", answer="c"),
        ]
    )
    attached = litellm_canary.attach(
        router, {"rollouts": [chat_rollout(stable=["once-stable"], canary=["once-canary"])]}
    )
    try:
        yield router, attached
    finally:
        attached.detach()


async def test_a_second_success_event_for_a_closed_attempt_counts_nothing(
    routed: tuple[Router, Canary],
) -> None:
    router, canary = routed

    captured = Captured()
    litellm.callbacks.append(captured)
    try:
        waiter = OutcomeWaiter(canary)
        successes: list[Any] = []
        canary._callbacks.successes.connect(lambda outcome, kwargs, response: successes.append(outcome))
        await router.acompletion(model="chat", messages=[{"role": "user", "content": "hi"}])
        await waiter.wait(1)
        assert captured.events, "LiteLLM reported no success event"
        before = canary.status()["groups"]["chat"]["attempts"]
        assert before == {"stable:success": 1} and len(successes) == 1

        await canary._callbacks.async_log_success_event(*captured.events[-1])  # the same event again

        assert canary.status()["groups"]["chat"]["attempts"] == before
        assert len(waiter.outcomes) == 1 and len(successes) == 1
    finally:
        litellm.callbacks.remove(captured)

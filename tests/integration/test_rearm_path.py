"""The controller is the one re-arm path: a re-arm through it does everything ``Canary.rearm`` does."""

from __future__ import annotations

from typing import Any

from litellm import Router

import litellm_canary
from tests.support.helpers import chat_rollout, deployment

MESSAGES = [{"role": "user", "content": "hi"}]


def _router() -> Router:
    return Router(
        model_list=[deployment("chat", "chat-stable", "stable"), deployment("chat", "chat-canary", "c")]
    )


async def test_a_controller_rearm_clears_the_tallies_and_resets_the_triggers() -> None:
    config: dict[str, Any] = {"rollouts": [chat_rollout()], "flag_store": {"kind": "memory"}}
    canary = litellm_canary.attach(_router(), config, background=False)
    try:
        router = canary._router
        for i in range(3):
            await router.acompletion(model="chat", messages=MESSAGES, user=f"u{i}")
        canary.auto_rollback.evaluate()
        before = canary.status()["groups"]["chat"]
        assert before["attempts"] and before["triggers"] is not None
        canary.rollback("chat", "test")
        rearms: list[tuple[str, str | None]] = []
        canary.controller.on_rearm(lambda group, origin: rearms.append((group, origin)))
        assert canary.controller.rearm("chat", origin="replica-2")  # not through Canary.rearm
        status = canary.status()["groups"]["chat"]
        assert status["state"] == "armed" and status["attempts"] == {}
        assert status["triggers"] is None and rearms == [("chat", "replica-2")]
        assert not canary.rearm("chat")  # nothing latched: no second re-arm
    finally:
        canary.detach()

"""Issue 13 §3 item 1: after a rollback, ``status --url`` said ``chat: rolled_back, flag 'canary'``
while the flag file served stable. On-call reads this line to confirm recovery: it must say that
new requests go to stable and what the flag store was written."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from litellm.router import Router
from openfeature import api
from openfeature.event import ProviderEvent

import litellm_canary
from litellm_canary.cli.status import status_lines
from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagdFileStore

MESSAGES = [{"role": "user", "content": "hi"}]


def _deployment(group: str, deployment_id: str) -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": {"model": "openai/gpt-4o-mini", "mock_response": f"from {deployment_id}"},
        "model_info": {"id": deployment_id},
    }


async def test_status_after_a_rollback_says_stable_not_the_stale_flag_value(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    router = Router(model_list=[_deployment("chat", "chat-stable"), _deployment("chat", "chat-canary")])
    canary = litellm_canary.attach(
        router,
        {
            "rollouts": [
                {
                    "model_group": "chat",
                    "stable": ["chat-stable"],
                    "canary": ["chat-canary"],
                    "flag_key": "chat",
                }
            ],
            "flag_store": {"kind": "flagd_file", "path": str(flags), "poll_ms": 10},
        },
        background=False,
    )
    try:
        changed = threading.Event()
        api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, lambda _details: changed.set())
        canary.set_canary_percent("chat", 100.0)
        # the flag file's provider reports the new flags when its poll reads them
        assert await asyncio.to_thread(changed.wait, 10)
        response = await router.acompletion(model="chat", messages=MESSAGES, user="u1")
        assert response.choices[0].message.content == "from chat-canary"
        before = status_lines(canary.status())[0]
        assert before.startswith("chat: armed, flag 'canary'")

        canary.rollback("chat", reason="bad canary")
        for user in ("u2", "u3"):  # new requests after the rollback
            response = await router.acompletion(model="chat", messages=MESSAGES, user=user)
            assert response.choices[0].message.content == "from chat-stable"
        assert FlagdFileStore(flags).read()["flags"]["chat"]["defaultVariant"] == Side.STABLE.value

        line = status_lines(canary.status())[0]
        assert line.startswith(
            "chat: rolled_back: new requests go to stable (latched); flag store written stable"
        )
        assert "'canary'" not in line
    finally:
        canary.detach()

"""probe.call_deployment: one named deployment, outside the canary, never counted as user traffic."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger

import litellm_canary
from litellm_canary.core.probe import PROBE_MARKER, UnknownDeployment, call_deployment, is_probe
from tests.support.helpers import OutcomeWaiter, chat_rollout, started_upstreams, upstream_router


@pytest.fixture
def upstreams() -> Iterator[dict[str, Any]]:
    running = started_upstreams({"chat-stable": "from stable", "chat-canary": "from canary"})
    yield running
    for upstream in running.values():
        upstream.stop()


class _Seen(CustomLogger):
    """Records every success callback's kwargs; a test awaits a count (LiteLLM logs after returning)."""

    def __init__(self) -> None:
        super().__init__()
        self.kwargs: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.kwargs.append(kwargs)
        self.changed.set()

    def by_content(self) -> dict[str, dict[str, Any]]:
        return {k["messages"][0]["content"]: k for k in self.kwargs if k.get("messages")}

    async def wait_for(self, *contents: str) -> dict[str, dict[str, Any]]:
        async with asyncio.timeout(10):
            while not all(content in self.by_content() for content in contents):
                self.changed.clear()
                await self.changed.wait()
        return self.by_content()


async def test_probe_reaches_the_named_deployment_even_when_the_flag_says_otherwise(
    upstreams: dict[str, Any],
) -> None:
    router = upstream_router(upstreams)
    canary = litellm_canary.attach(
        router, {"rollouts": [chat_rollout()], "flag_store": {"kind": "memory"}}, background=False
    )
    canary.set_side("chat", "canary")  # every routed request goes to the canary
    waiter = OutcomeWaiter(canary)

    result = await call_deployment(router, "chat-stable", [{"role": "user", "content": "ping"}], max_tokens=1)

    assert result.ok, result.error
    assert result.text == "from stable"
    assert result.latency_s > 0
    assert upstreams["chat-stable"].stats()["requests"] == 1
    assert upstreams["chat-canary"].stats()["requests"] == 0
    body = upstreams["chat-stable"].recorded_requests()[-1].body
    assert body["max_tokens"] == 1

    # A routed request afterwards is the only outcome the canary sees.
    await router.acompletion(model="chat", messages=[{"role": "user", "content": "hi"}])
    outcomes = await waiter.wait(1)
    assert [(o.side.value, o.deployment_id) for o in outcomes] == [("canary", "chat-canary")]
    assert canary.outcomes.summary("chat") == {"canary:success": 1}
    canary.detach()


async def test_probe_failure_is_reported_not_raised(upstreams: dict[str, Any]) -> None:
    router = upstream_router(upstreams)
    upstreams["chat-stable"].set_faults(error_rate=1.0, error_status=503)

    result = await call_deployment(router, "chat-stable", [{"role": "user", "content": "ping"}], timeout_s=5)

    assert not result.ok
    assert result.error is not None and ("503" in result.error or "ServiceUnavailable" in result.error)
    assert result.text is None
    assert upstreams["chat-stable"].stats()["requests"] == 1  # no retries


async def test_probe_times_out(upstreams: dict[str, Any]) -> None:
    router = upstream_router(upstreams)
    upstreams["chat-stable"].set_faults(hang=True)

    result = await call_deployment(
        router, "chat-stable", [{"role": "user", "content": "ping"}], timeout_s=0.5
    )

    assert not result.ok
    assert "timeout" in (result.error or "").lower()


async def test_unknown_deployment_and_bad_timeout(upstreams: dict[str, Any]) -> None:
    router = upstream_router(upstreams)
    with pytest.raises(UnknownDeployment, match=r"no deployment with model_info\.id 'ghost'"):
        await call_deployment(router, "ghost", [{"role": "user", "content": "x"}])
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        await call_deployment(router, "chat-stable", [{"role": "user", "content": "x"}], timeout_s=0)


async def test_other_callbacks_can_tell_a_probe_apart(upstreams: dict[str, Any]) -> None:
    router = upstream_router(upstreams)
    seen = _Seen()
    litellm.logging_callback_manager.add_litellm_callback(seen)

    await call_deployment(router, "chat-canary", [{"role": "user", "content": "probe-7f3"}], purpose="golden")
    await router.acompletion(model="chat", messages=[{"role": "user", "content": "user-7f3"}])
    # LiteLLM's logging worker may still deliver an earlier test's event: look at ours only.
    ours = await seen.wait_for("probe-7f3", "user-7f3")
    assert is_probe(ours["probe-7f3"]) and not is_probe(ours["user-7f3"])
    probe_metadata = ours["probe-7f3"]["litellm_params"]["metadata"]
    assert probe_metadata[PROBE_MARKER] == "golden"

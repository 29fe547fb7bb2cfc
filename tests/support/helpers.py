"""Small builders shared by the tests."""

from __future__ import annotations

from typing import Any


def deployment(group: str, deployment_id: str, answer: str | None = None, **params: Any) -> dict[str, Any]:
    litellm_params: dict[str, Any] = {"model": "openai/fake-model", "api_key": "sk-test", **params}
    if answer is not None:
        litellm_params["mock_response"] = answer
    return {"model_name": group, "litellm_params": litellm_params, "model_info": {"id": deployment_id}}


def chat_rollout(**overrides: Any) -> dict[str, Any]:
    rollout: dict[str, Any] = {
        "model_group": "chat",
        "stable": ["chat-stable"],
        "canary": ["chat-canary"],
        "flag_key": "chat-canary",
    }
    rollout.update(overrides)
    return rollout


class OutcomeWaiter:
    """Counts attempt outcomes reported by a canary and lets a test await a count (no sleeping).

    LiteLLM reports some outcomes from its logging threads after the call has returned.
    """

    def __init__(self, canary: Any) -> None:
        import asyncio

        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self.outcomes: list[Any] = []
        canary.on_outcome(self._record)

    def _record(self, outcome: Any) -> None:
        self.outcomes.append(outcome)
        self._loop.call_soon_threadsafe(self._changed.set)

    async def wait(self, count: int, timeout: float = 10.0) -> list[Any]:
        import asyncio

        async with asyncio.timeout(timeout):
            while len(self.outcomes) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.outcomes


class FakeClock:
    """An injectable monotonic clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def started_upstreams(answers: dict[str, str]) -> dict[str, Any]:
    """One running FakeUpstream per deployment id, answering the given text."""
    from litellm_canary.testing.fake_upstream import FakeUpstream

    return {
        deployment_id: FakeUpstream(deployment_id, answer=answer).start()
        for deployment_id, answer in answers.items()
    }


def upstream_router(upstreams: dict[str, Any], group: str = "chat", **kwargs: Any) -> Any:
    """A real Router whose group ``group`` has one deployment per upstream (id = the dict key)."""
    from litellm.router import Router

    return Router(model_list=[u.deployment(group, d) for d, u in upstreams.items()], **kwargs)


def missing_tool(reason: str) -> None:
    """A test's external binary is missing: skip locally, fail in CI (``CI=true``), which installs it."""
    import os

    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class LoggedCalls:
    """A LiteLLM callback (added after the canary's) that lets a test await N logged calls.

    LiteLLM runs callbacks in list order, so once this one has seen a call, the canary's callbacks
    have processed it too."""

    def __init__(self) -> None:
        import asyncio

        import litellm
        from litellm.integrations.custom_logger import CustomLogger

        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self.count = 0
        waiter = self

        class _Logger(CustomLogger):
            def log_success_event(
                self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
            ) -> None:
                waiter._seen()

            async def async_log_success_event(
                self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
            ) -> None:
                waiter._seen()

            def log_failure_event(
                self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
            ) -> None:
                waiter._seen()

            async def async_log_failure_event(
                self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
            ) -> None:
                waiter._seen()

        self.logger = _Logger()
        litellm.callbacks.append(self.logger)

    def _seen(self) -> None:
        self.count += 1
        self._loop.call_soon_threadsafe(self._changed.set)

    async def wait(self, count: int, timeout: float = 10.0) -> None:
        import asyncio

        async with asyncio.timeout(timeout):
            while self.count < count:
                self._changed.clear()
                await self._changed.wait()

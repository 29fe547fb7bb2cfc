"""Automatic rollback on a real Router with fault-injecting upstreams and sub-second windows."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litellm import Router

import litellm_canary
from litellm_canary import Side
from litellm_canary.core.rollback_record import RollbackRecord
from litellm_canary.testing.fake_upstream import FakeUpstream
from tests.support.helpers import FakeClock, OutcomeWaiter, chat_rollout, started_upstreams, upstream_router

MESSAGES = [{"role": "user", "content": "hi"}]
REQUESTS_PER_STEP = 10
STEP_S = 0.1
QUIET = {"error_rate": False, "ttft_p99": False, "fast_fail": False, "eval_score": False, "cooldown": False}


_users = itertools.count()


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, FakeUpstream]]:
    servers = started_upstreams({"chat-stable": "stable answer", "chat-canary": "canary answer"})
    yield servers
    for server in servers.values():
        server.stop()


def _router(upstreams: dict[str, FakeUpstream], **kwargs: Any) -> Router:
    return upstream_router(upstreams, num_retries=0, **{"disable_cooldowns": True, **kwargs})  # type: ignore[no-any-return]


def _attach(router: Router, triggers: dict[str, Any], **kwargs: Any) -> litellm_canary.Canary:
    config = {
        "rollouts": [chat_rollout(triggers={**QUIET, **triggers})],
        "flag_store": {"kind": "memory"},
        "evaluation_step_s": STEP_S,
    }
    canary = litellm_canary.attach(router, config, **kwargs)
    canary.set_canary_percent("chat", 50)
    return canary


async def _traffic(router: Router, n: int, *, stream: bool = False) -> list[str]:
    async def one(i: int) -> str:
        try:
            response = await router.acompletion(
                model="chat", messages=MESSAGES, user=f"user-{i}-{next(_users)}", stream=stream
            )
            if stream:
                return "".join([c.choices[0].delta.content or "" async for c in response])
            return str(response.choices[0].message.content)
        except Exception:
            return "error"

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def _steps_until_rollback(
    canary: litellm_canary.Canary, router: Router, clock: FakeClock, max_steps: int, *, stream: bool = False
) -> int | None:
    """Traffic, then one evaluation step per clock step; the step at which a rollback happened."""
    outcomes = OutcomeWaiter(canary)
    sent = 0
    for n in range(1, max_steps + 1):
        sent += len(await _traffic(router, REQUESTS_PER_STEP, stream=stream))
        await outcomes.wait(sent)  # LiteLLM reports outcomes from its logging workers
        clock.now += canary.auto_rollback.step_s
        canary.auto_rollback.evaluate()
        if canary.status()["groups"]["chat"]["state"] == "rolled_back":
            return n
    return None


async def test_error_rate_rolls_back_after_its_window_and_not_before(
    upstreams: dict[str, FakeUpstream],
) -> None:
    clock = FakeClock()
    router = _router(upstreams)
    canary = _attach(
        router, {"error_rate": {"window_s": 0.5, "min_requests": 5}}, clock=clock, background=False
    )
    step = canary.auto_rollback.step_s
    upstreams["chat-canary"].set_faults(error_rate=1.0, error_status=500)
    fired_at = await _steps_until_rollback(canary, router, clock, max_steps=12)
    assert fired_at is not None
    # breaching from the first step (all canary requests fail), firing once breaching lasted 0.5 s:
    assert 0.5 / step <= fired_at <= 0.5 / step + 2
    record = canary.status()["groups"]["chat"]["last_rollback"]
    assert record["kind"] == "automatic"
    assert record["cause"]["rule"] == "error_rate"
    assert record["cause"]["canary_error_rate"] == 1.0
    assert record["cause"]["window_s"] == 0.5
    assert record["cause"]["canary_requests"] >= 5
    upstreams["chat-canary"].reset()
    before = upstreams["chat-canary"].stats()["requests"]
    assert set(await _traffic(router, 30)) == {"stable answer"}
    assert upstreams["chat-canary"].stats()["requests"] == before


async def test_a_healthy_canary_is_never_rolled_back(upstreams: dict[str, FakeUpstream]) -> None:
    clock = FakeClock()
    router = _router(upstreams)
    canary = _attach(
        router,
        {
            "error_rate": {"window_s": 0.5, "min_requests": 5},
            "fast_fail": {"window_s": 0.5, "min_requests": 5},
        },
        clock=clock,
        background=False,
    )
    assert await _steps_until_rollback(canary, router, clock, max_steps=15) is None
    rules = {r["rule"]: r["state"] for r in canary.status()["groups"]["chat"]["triggers"]["rules"]}
    assert rules == {"fast_fail": "ok", "error_rate": "ok", "ttft_p99": "disabled", "eval_score": "disabled"}


async def test_fast_fail_rolls_back_at_once(upstreams: dict[str, FakeUpstream]) -> None:
    clock = FakeClock()
    router = _router(upstreams)
    canary = _attach(
        router, {"fast_fail": {"window_s": 0.5, "min_requests": 5}}, clock=clock, background=False
    )
    upstreams["chat-canary"].set_faults(error_rate=1.0, error_status=503)
    assert (
        await _steps_until_rollback(canary, router, clock, max_steps=5) or 99
    ) <= 3  # ~5 canary requests a step
    assert canary.status()["groups"]["chat"]["last_rollback"]["cause"]["rule"] == "fast_fail"


async def test_slow_time_to_first_token_rolls_back(upstreams: dict[str, FakeUpstream]) -> None:
    clock = FakeClock()
    router = _router(upstreams)
    canary = _attach(
        router,
        {"ttft_p99": {"slo_ms": 40, "ratio": 2, "window_s": 0.5, "min_requests": 5}},
        clock=clock,
        background=False,
    )
    upstreams["chat-canary"].set_faults(first_token_delay_s=0.25)
    fired_at = await _steps_until_rollback(canary, router, clock, max_steps=12, stream=True)
    assert fired_at is not None
    cause = canary.status()["groups"]["chat"]["last_rollback"]["cause"]
    assert cause["rule"] == "ttft_p99" and cause["canary_ttft_p99_ms"] > 200


async def test_once_rolled_back_it_stays_until_rearmed_and_rearm_starts_fresh(
    upstreams: dict[str, FakeUpstream],
) -> None:
    clock = FakeClock()
    router = _router(upstreams)
    canary = _attach(
        router, {"fast_fail": {"window_s": 0.5, "min_requests": 5}}, clock=clock, background=False
    )
    upstreams["chat-canary"].set_faults(error_rate=1.0)
    assert (
        await _steps_until_rollback(canary, router, clock, max_steps=5) or 99
    ) <= 3  # ~5 canary requests a step
    upstreams["chat-canary"].clear_faults()
    for _ in range(10):  # the metrics recover; the rollout stays rolled back
        clock.now += canary.auto_rollback.step_s
        canary.auto_rollback.evaluate()
    assert canary.status()["groups"]["chat"]["state"] == "rolled_back"
    canary.rearm("chat")
    canary.set_canary_percent("chat", 50)
    assert canary.status()["groups"]["chat"]["triggers"] is None  # fresh windows
    assert await _steps_until_rollback(canary, router, clock, max_steps=5) is None


async def test_background_loop_rolls_back_in_real_time(upstreams: dict[str, FakeUpstream]) -> None:
    router = _router(upstreams)
    canary = _attach(router, {"fast_fail": {"window_s": 0.5, "min_requests": 5}})
    rolled_back = threading.Event()
    records: list[RollbackRecord] = []
    canary.controller.on_rollback(lambda record: (records.append(record), rolled_back.set()))
    upstreams["chat-canary"].set_faults(error_rate=1.0)
    while not rolled_back.is_set():
        await _traffic(router, 10)
    assert records[0].kind == "automatic"
    decisions: list[Side] = []
    canary.on_decision(lambda group, decision, deployment_id: decisions.append(decision.side))
    await _traffic(router, 20)
    assert decisions and set(decisions) == {Side.STABLE}
    canary.detach()


async def test_a_canary_in_litellm_cooldown_is_rolled_back(upstreams: dict[str, FakeUpstream]) -> None:
    clock = FakeClock()
    router = _router(upstreams, disable_cooldowns=False, allowed_fails=1)
    canary = _attach(router, {"cooldown": True}, clock=clock, background=False)
    upstreams["chat-canary"].set_faults(error_rate=1.0)
    assert await _steps_until_rollback(canary, router, clock, max_steps=5) is not None
    cause = canary.status()["groups"]["chat"]["last_rollback"]["cause"]
    assert cause["rule"] == "cooldown" and cause["cooling_down"] == ["chat-canary"]

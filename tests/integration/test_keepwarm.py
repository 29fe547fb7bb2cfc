"""Keep-warm prober: real Router + FakeUpstreams; fires only below the floor, tracks stable health."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import litellm_canary
from litellm_canary import ConfigError
from litellm_canary.integrations.metrics import CanaryMetrics
from tests.support.helpers import FakeClock, OutcomeWaiter, chat_rollout, started_upstreams, upstream_router

STABLE = ("chat-stable", "chat-stable-2")
KEEP_WARM = {"floor": 0.5, "interval_s": 30, "prompt": "warm-up ping", "timeout_s": 5}


@pytest.fixture
def upstreams() -> Iterator[dict[str, Any]]:
    running = started_upstreams({"chat-stable": "s1", "chat-stable-2": "s2", "chat-canary": "c"})
    yield running
    for upstream in running.values():
        upstream.stop()


def _attach(upstreams: dict[str, Any], clock: Any = None, **keep_warm: Any) -> Any:
    rollout = chat_rollout(stable=list(STABLE), keep_warm={**KEEP_WARM, **keep_warm})
    extra: dict[str, Any] = {} if clock is None else {"clock": clock, "background": False}
    return litellm_canary.attach(
        upstream_router(upstreams), {"rollouts": [rollout], "flag_store": {"kind": "memory"}}, **extra
    )


async def _send(canary: Any, n: int) -> None:
    for _ in range(n):
        await canary._router.acompletion(model="chat", messages=[{"role": "user", "content": "real"}])


def _probes(upstream: Any) -> list[dict[str, Any]]:
    return [
        r.body for r in upstream.recorded_requests() if r.body["messages"][0]["content"] == "warm-up ping"
    ]


async def test_probes_fire_only_below_the_floor_and_never_count_as_traffic(upstreams: dict[str, Any]) -> None:
    clock = FakeClock()
    canary = _attach(upstreams, clock)
    waiter = OutcomeWaiter(canary)
    prober = canary.lifecycle.keep_warm

    canary.set_side("chat", "stable")
    await _send(canary, 4)
    await waiter.wait(4)
    assert await prober.step() == {}  # stable has 100 % of the traffic: no probes
    assert canary.status()["groups"]["chat"]["keep_warm"]["probing"] is False

    canary.set_side("chat", "canary")
    await _send(canary, 10)
    await waiter.wait(14)  # stable share 4/14 < 0.5
    results = await prober.step()
    assert sorted(r.deployment_id for r in results["chat"]) == sorted(STABLE)
    assert all(r.ok for r in results["chat"])
    for deployment_id in STABLE:  # each stable deployment got exactly one tiny request
        assert [(b["max_tokens"], b["messages"]) for b in _probes(upstreams[deployment_id])] == [
            (1, [{"role": "user", "content": "warm-up ping"}])
        ]
    assert _probes(upstreams["chat-canary"]) == []

    assert await prober.step() == {}  # the interval has not passed
    clock.now += 30
    assert len((await prober.step())["chat"]) == 2
    assert canary.status()["groups"]["chat"]["keep_warm"]["rounds"] == 2

    # Four probes later, one more real request: the outcome windows hold the 15 real attempts only.
    await _send(canary, 1)
    await waiter.wait(15)
    assert canary.outcomes.summary("chat") == {"canary:success": 11, "stable:success": 4}
    assert len(waiter.outcomes) == 15
    canary.detach()


async def test_failure_marks_unhealthy_rollback_says_so_and_recovery_heals(
    upstreams: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    canary = _attach(upstreams, clock)
    metrics = CanaryMetrics(canary)
    prober = canary.lifecycle.keep_warm
    canary.set_side("chat", "canary")
    upstreams["chat-stable-2"].set_faults(error_rate=1.0, error_status=503)

    with caplog.at_level(logging.WARNING, logger="litellm_canary.keepwarm"):
        await prober.step()  # an idle group: stable's share is 0, below the floor
    warm = canary.status()["groups"]["chat"]["keep_warm"]
    assert warm["stable_unhealthy"] == ["chat-stable-2"]
    assert warm["deployments"]["chat-stable"]["healthy"] is True
    broken = warm["deployments"]["chat-stable-2"]
    assert broken["healthy"] is False and broken["consecutive_failures"] == 1
    assert "503" in broken["last_error"] or "ServiceUnavailable" in broken["last_error"]
    assert "stable deployment 'chat-stable-2' of 'chat' is unhealthy" in caplog.text
    text = metrics.exposition().decode()
    assert 'litellm_canary_stable_healthy{deployment="chat-stable-2",model_group="chat"} 0.0' in text
    assert 'litellm_canary_stable_healthy{deployment="chat-stable",model_group="chat"} 1.0' in text
    assert (
        'litellm_canary_keep_warm_probes_total{deployment="chat-stable-2",'
        'model_group="chat",result="failed"} 1.0' in text
    )
    # ... and the probe is no attempt: the attempt counters (and alert rules on them) never saw it.
    assert (
        'litellm_canary_attempts_total{deployment="chat-stable-2",model_group="chat",'
        'outcome="5xx",side="stable"} 0.0' in text
    )

    # The rollback onto an unhealthy stable still happens, and its record says so.
    record = canary.rollback("chat", "canary broke")
    assert canary.status()["groups"]["chat"]["state"] == "rolled_back"
    assert record["stable_unhealthy_at_rollback"] == ["chat-stable-2"]
    assert canary.status()["groups"]["chat"]["last_rollback"]["stable_unhealthy_at_rollback"] == [
        "chat-stable-2"
    ]
    clock.now += 30
    assert await prober.step() == {}  # rolled back: stable takes all traffic, no probing

    canary.rearm("chat")
    upstreams["chat-stable-2"].clear_faults()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="litellm_canary.keepwarm"):
        await prober.step()
    warm = canary.status()["groups"]["chat"]["keep_warm"]
    assert warm["stable_unhealthy"] == [] and warm["deployments"]["chat-stable-2"]["healthy"] is True
    assert "'chat-stable-2' of 'chat' is healthy again" in caplog.text
    assert 'litellm_canary_stable_healthy{deployment="chat-stable-2",model_group="chat"} 1.0' in (
        metrics.exposition().decode()
    )
    assert canary.rollback("chat", "again")["stable_unhealthy_at_rollback"] == []
    canary.detach()


async def test_promoted_rollout_is_not_probed(upstreams: dict[str, Any]) -> None:
    canary = _attach(upstreams, FakeClock())
    canary.set_canary_percent("chat", 50)
    canary.promote("chat", force=True)
    assert await canary.lifecycle.keep_warm.step() == {}
    canary.detach()


async def test_background_prober_runs_on_its_own(upstreams: dict[str, Any]) -> None:
    canary = _attach(upstreams, interval_s=0.05)  # real clock, background thread
    try:
        for deployment_id in STABLE:
            assert await upstreams[deployment_id].async_wait_until(lambda s: s["requests"] >= 2, timeout_s=20)
    finally:
        canary.detach()
    assert canary.status()["groups"]["chat"]["keep_warm"]["rounds"] >= 2


@pytest.mark.parametrize(
    ("keep_warm", "message"),
    [
        ({"floor": 1.5}, r"rollouts\[0\]\.keep_warm\.floor: Input should be less than or equal to 1"),
        ({"interval_s": 0}, r"rollouts\[0\]\.keep_warm\.interval_s: Input should be greater than 0"),
        ({"prompt": ""}, r"rollouts\[0\]\.keep_warm\.prompt: String should have at least 1 character"),
        ({"timeout": 3}, r"rollouts\[0\]\.keep_warm\.timeout: Extra inputs are not permitted"),
    ],
)
def test_keep_warm_config_is_validated(
    upstreams: dict[str, Any], keep_warm: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _attach(upstreams, FakeClock(), **keep_warm)

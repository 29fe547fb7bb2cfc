"""Prometheus metrics of a canary attached to a real litellm.Router (mocked upstreams)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from litellm import Router
from openfeature import api
from openfeature.provider.in_memory_provider import InMemoryProvider
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Mount

import litellm_canary
from litellm_canary import Side
from litellm_canary.core.outcomes import Outcome
from litellm_canary.integrations import alert_rules
from litellm_canary.integrations.metrics import LATENCY_BUCKETS, OUTCOMES, CanaryMetrics, serve_metrics
from tests.support.helpers import OutcomeWaiter, chat_rollout, deployment

MESSAGES = [{"role": "user", "content": "a secret prompt"}]

#: Every label name the exposition may carry: all from config- or code-bounded sets.
BOUNDED_LABELS = {
    "model_group",
    "side",
    "deployment",
    "outcome",
    "reason",
    "kind",
    "stage",
    "variant",
    "cause",
    "verdict",  # litellm_canary_verification_total: recovered / not_recovered / insufficient_data
}


def _router(canary_answer: str = "canary") -> Router:
    return Router(
        model_list=[
            deployment("chat", "chat-stable", "stable"),
            deployment("chat", "chat-canary", canary_answer),
            deployment("other", "other-a", "other-a"),
        ],
        num_retries=0,
    )


def _attach(router: Router, **config: Any) -> litellm_canary.Canary:
    config.setdefault("rollouts", [chat_rollout()])
    config.setdefault("flag_store", {"kind": "memory"})
    return litellm_canary.attach(router, config)


class Scrape:
    """One scrape of a registry, parsed: ``value(name, **labels)`` and the raw text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def series(self, prefix: str = "litellm_canary_") -> list[tuple[str, dict[str, str]]]:
        return [(name, dict(labels)) for name, labels in self.samples if name.startswith(prefix)]


def scrape(metrics: CanaryMetrics) -> Scrape:
    return Scrape(metrics.exposition().decode())


async def _call(router: Router, n: int, *, user: str = "user", **kwargs: Any) -> int:
    failures = 0
    for i in range(n):
        try:
            await router.acompletion(model="chat", messages=MESSAGES, user=f"{user}-{i}", **kwargs)
        except Exception:
            failures += 1
    return failures


async def test_attempts_latency_and_decisions_from_real_traffic() -> None:
    router = _router(canary_answer="litellm.InternalServerError")  # LiteLLM's mock raises a 500
    canary = _attach(router)
    metrics = CanaryMetrics(canary)
    waiter = OutcomeWaiter(canary)

    assert await _call(router, 7) == 0  # the flag says stable
    canary.set_side("chat", "canary")
    assert await _call(router, 4) == 4
    canary.set_side("chat", "stable")
    stream = await router.acompletion(model="chat", messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    await waiter.wait(12)

    s = scrape(metrics)
    chat = {"model_group": "chat"}
    stable = {**chat, "side": "stable", "deployment": "chat-stable"}
    canary_side = {**chat, "side": "canary", "deployment": "chat-canary"}
    assert s.value("litellm_canary_attempts_total", **stable, outcome="success") == 8
    assert s.value("litellm_canary_attempts_total", **canary_side, outcome="5xx") == 4
    # Every configured series exists from the start, at 0 (increase() then sees the first failure).
    for outcome in OUTCOMES:
        assert s.has("litellm_canary_attempts_total", **canary_side, outcome=outcome)
    assert s.value("litellm_canary_attempts_total", **canary_side, outcome="timeout") == 0
    assert s.value("litellm_canary_attempts_total", **stable, outcome="5xx") == 0

    # TTFT: 7 calls + the stream, whose TTFT is left out (the process's first stream pays a warm-up).
    assert s.value("litellm_canary_ttft_seconds_count", **stable) == 7
    assert s.value("litellm_canary_ttft_seconds_bucket", **stable, le="+Inf") == 7
    assert s.value("litellm_canary_ttft_seconds_bucket", **stable, le="60.0") == 7
    assert 0 < s.value("litellm_canary_ttft_seconds_sum", **stable) < 7 * 5
    assert s.value("litellm_canary_ttft_seconds_count", **canary_side) == 0  # failures have none
    assert s.value("litellm_canary_attempt_duration_seconds_count", **stable) == 8

    # The buckets: ~15 for LLM latencies plus one at the ttft_p99 threshold (2 x 2000 ms = 4 s), so the
    # generated p99 alert decides exactly like the in-process rule.
    def bounds(histogram: str) -> set[str]:
        series = s.series(f"{histogram}_bucket")
        return {labels["le"] for _, labels in series if labels.items() >= stable.items()}

    ttft_bounds = bounds("litellm_canary_ttft_seconds")
    duration_bounds = bounds("litellm_canary_attempt_duration_seconds")
    assert len(LATENCY_BUCKETS) == 16 and LATENCY_BUCKETS[0] == 0.025 and LATENCY_BUCKETS[-1] == 60
    assert duration_bounds == {repr(b) for b in LATENCY_BUCKETS} | {"+Inf"}
    assert ttft_bounds == duration_bounds | {"4.0"}

    assert s.value("litellm_canary_decisions_total", **chat, side="stable", reason="flag") == 8
    assert s.value("litellm_canary_decisions_total", **chat, side="canary", reason="flag") == 4
    assert s.value("litellm_canary_flag_evaluations_total", variant="stable") == 8
    assert s.value("litellm_canary_flag_evaluations_total", variant="canary") == 4
    for side in ("stable", "canary"):
        assert s.value("litellm_canary_in_flight_attempts", **chat, side=side) == 0
        assert s.value("litellm_canary_conversation_pins", **chat, side=side) == 0
    assert s.value("litellm_canary_rollout_state", **chat) == 0
    assert s.value("litellm_canary_flag_write_pending", **chat) == 0
    assert not s.has("litellm_canary_last_rollback_timestamp_seconds", **chat)
    # The unmanaged group is not measured.
    assert not any(labels.get("model_group") == "other" for _, labels in s.series())
    # What the generated alert rules read is what is exposed.
    assert s.has(alert_rules.ATTEMPTS_METRIC, **stable, outcome="success")
    assert s.has(f"{alert_rules.TTFT_METRIC}_bucket", **stable, le="4.0")
    assert s.has(f"{alert_rules.TTFT_METRIC}_count", **stable)


async def test_in_flight_attempts_are_read_at_scrape_time() -> None:
    router = _router()
    canary = _attach(router)
    metrics = CanaryMetrics(canary)
    canary.set_side("chat", "canary")
    waiter = OutcomeWaiter(canary)
    # Scrape while a stream is open on the canary: one attempt in flight.
    stream = await router.acompletion(model="chat", messages=MESSAGES, stream=True)
    s = scrape(metrics)
    assert s.value("litellm_canary_in_flight_attempts", model_group="chat", side="canary") == 1
    assert s.value("litellm_canary_in_flight_attempts", model_group="chat", side="stable") == 0
    async for _ in stream:
        pass
    await waiter.wait(1)
    assert scrape(metrics).value("litellm_canary_in_flight_attempts", model_group="chat", side="canary") == 0


async def test_rollback_counts_kind_timings_and_state() -> None:
    router = _router()
    canary = _attach(router)
    metrics = CanaryMetrics(canary)
    canary.set_side("chat", "canary")
    canary.rollback("chat", reason="drill", kind="drill")
    canary.rollback("chat", reason="again")  # a repeat changes nothing and is not counted
    await _call(router, 3)

    s = scrape(metrics)
    chat = {"model_group": "chat"}
    assert s.value("litellm_canary_rollbacks_total", **chat, kind="drill") == 1
    assert s.value("litellm_canary_rollbacks_total", **chat, kind="manual") == 0
    assert s.value("litellm_canary_rollout_state", **chat) == 1
    assert s.value("litellm_canary_decisions_total", **chat, side="stable", reason="rolled_back") == 3
    for stage in ("latched", "flag_written"):
        assert s.value("litellm_canary_rollback_duration_seconds_count", **chat, stage=stage) == 1
        # The memory store is written synchronously: both stages take microseconds (a slow CI: < 1 s).
        assert s.value("litellm_canary_rollback_duration_seconds_bucket", **chat, stage=stage, le="1.0") == 1
    assert s.value("litellm_canary_rollback_duration_seconds_bucket", **chat, stage="latched", le="0.01") == 1
    decided = s.value("litellm_canary_last_rollback_timestamp_seconds", **chat)
    assert abs(decided - time.time()) < 60

    assert canary.rearm("chat")
    assert scrape(metrics).value("litellm_canary_rollout_state", **chat) == 0


async def test_a_late_flag_write_is_timed_when_it_lands(monkeypatch: pytest.MonkeyPatch) -> None:
    router = _router()
    canary = _attach(router)
    metrics = CanaryMetrics(canary)
    store = canary.store
    assert store is not None
    real_set_side = store.set_side
    down = True

    def flaky_set_side(flag_key: str, side: Side) -> None:
        if down:
            raise OSError("flag store unreachable")
        real_set_side(flag_key, side)

    monkeypatch.setattr(store, "set_side", flaky_set_side)
    monkeypatch.setattr(canary.controller, "_retry_initial_s", 0.01)
    canary.rollback("chat", reason="store down")

    s = scrape(metrics)
    chat = {"model_group": "chat"}
    assert s.value("litellm_canary_flag_write_pending", **chat) == 1
    assert s.value("litellm_canary_rollback_duration_seconds_count", **chat, stage="latched") == 1
    assert s.value("litellm_canary_rollback_duration_seconds_count", **chat, stage="flag_written") == 0

    down = False
    assert await asyncio.to_thread(canary.controller.runtime("chat").flag_written.wait, 10)
    s = scrape(metrics)
    assert s.value("litellm_canary_flag_write_pending", **chat) == 0
    assert s.value("litellm_canary_rollback_duration_seconds_count", **chat, stage="flag_written") == 1
    assert s.value("litellm_canary_rollback_duration_seconds_sum", **chat, stage="flag_written") > 0
    # Observed once, not again on the next scrape.
    assert (
        scrape(metrics).value("litellm_canary_rollback_duration_seconds_count", **chat, stage="flag_written")
        == 1
    )
    canary.detach()


async def test_flag_errors_are_counted_by_cause() -> None:
    api.set_provider_and_wait(InMemoryProvider({}))
    router = _router()
    canary = litellm_canary.attach(router, {"rollouts": [chat_rollout()]})
    metrics = CanaryMetrics(canary)
    await _call(router, 3)
    s = scrape(metrics)
    assert s.value("litellm_canary_flag_errors_total", cause="FLAG_NOT_FOUND") == 3
    assert (
        s.value("litellm_canary_decisions_total", model_group="chat", side="stable", reason="flag_error") == 3
    )


async def test_labels_stay_bounded_whatever_the_traffic() -> None:
    router = _router()
    canary = _attach(router)
    metrics = CanaryMetrics(canary)
    canary.set_canary_percent("chat", 50)
    waiter = OutcomeWaiter(canary)
    await _call(router, 10, user="first")
    await waiter.wait(10)
    before = scrape(metrics)

    for i in range(40):  # new users, sessions and prompts: no new series
        await router.acompletion(
            model="chat",
            messages=[{"role": "user", "content": f"prompt number {i}"}],
            user=f"another-user-{i}",
            metadata={"session_id": f"session-{i}"},
        )
    # An outcome from a deployment or with a status class outside the config: folded into "other".
    canary.outcomes.record(Outcome("chat", Side.CANARY, "rogue-deployment-1234", False, "weird-class"))
    await waiter.wait(51)
    after = scrape(metrics)

    names = {labels_name for _, labels in after.series() for labels_name in labels}
    assert names <= BOUNDED_LABELS | {"le"}

    def keys(scrape: Scrape) -> set[tuple[str, frozenset[tuple[str, str]]]]:
        # `_created` timestamps come and go with prometheus_client settings: not counted here.
        return {(n, frozenset(labels.items())) for n, labels in scrape.series() if not n.endswith("_created")}

    other = {"model_group": "chat", "side": "canary", "deployment": "other", "outcome": "other"}
    assert keys(after) - keys(before) == {("litellm_canary_attempts_total", frozenset(other.items()))}
    for leak in ("user-", "session-", "prompt", "secret", "rogue", "weird"):
        assert leak not in after.text
    assert (
        after.value(
            "litellm_canary_attempts_total",
            model_group="chat",
            side="canary",
            deployment="other",
            outcome="other",
        )
        == 1
    )


async def test_registries_are_dedicated() -> None:
    router = _router()
    canary = _attach(router)
    first = CanaryMetrics(canary)
    second = CanaryMetrics(canary)  # no clash: each has its own registry
    assert first.registry is not second.registry
    assert not any(name.startswith("litellm_canary") for name in _global_names())

    mine = CollectorRegistry()
    third = CanaryMetrics(canary, registry=mine)
    assert third.registry is mine
    assert "litellm_canary_attempts_total" in scrape(third).text


def _global_names() -> Iterator[str]:
    for family in REGISTRY.collect():
        yield family.name


async def test_asgi_app_serves_the_registry_when_mounted() -> None:
    router = _router()
    canary = _attach(router)
    metrics = CanaryMetrics(canary)
    waiter = OutcomeWaiter(canary)
    await _call(router, 2)
    await waiter.wait(2)
    app = Starlette(routes=[Mount("/metrics", app=metrics.asgi_app())])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.get("/metrics/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    s = Scrape(response.text)
    assert (
        s.value(
            "litellm_canary_attempts_total",
            model_group="chat",
            side="stable",
            deployment="chat-stable",
            outcome="success",
        )
        == 2
    )


async def test_serve_metrics_on_loopback_any_port() -> None:
    router = _router()
    canary = _attach(router)
    metrics = CanaryMetrics(canary)
    waiter = OutcomeWaiter(canary)
    await _call(router, 1)
    await waiter.wait(1)
    server, port = serve_metrics(metrics, host="127.0.0.1", port=0)
    try:
        assert port > 0 and server.server_address[0] == "127.0.0.1"
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        assert re.search(
            r'^litellm_canary_attempts_total\{[^}]*"chat-stable"[^}]*outcome="success"[^}]*\} 1\.0$',
            response.text,
            re.MULTILINE,
        )
    finally:
        server.shutdown()
        server.server_close()

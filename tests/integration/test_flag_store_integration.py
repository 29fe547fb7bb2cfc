"""attach() with each flag store; rollback reaches other readers through the store; OTel records."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from litellm import Router
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import litellm_canary
from litellm_canary import Side
from litellm_canary.core.flags import FlagdFileStore, FlagReader, flagd_file_provider
from tests.support.helpers import chat_rollout, deployment

MESSAGES = [{"role": "user", "content": "hi"}]


def _router() -> Router:
    return Router(
        model_list=[deployment("chat", "chat-stable", "stable"), deployment("chat", "chat-canary", "canary")]
    )


async def test_flagd_file_store_rollback_reaches_another_reader(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    flags.write_text(
        json.dumps(
            {"flags": {"unrelated": {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "on"}}}
        )
    )
    router = _router()
    canary = litellm_canary.attach(
        router,
        {
            "rollouts": [chat_rollout()],
            "openfeature_domain": "gateway-1",
            "flag_store": {"kind": "flagd_file", "path": str(flags), "poll_ms": 20},
        },
    )
    assert json.loads(flags.read_text())["flags"]["chat-canary"]["defaultVariant"] == "stable"  # created safe

    # Another gateway process would run its own flagd provider on the same file.
    api.set_provider_and_wait(flagd_file_provider(flags, poll_ms=20), "gateway-2")
    other = FlagReader("gateway-2")
    changed = threading.Event()
    api.get_client("gateway-2").add_handler(
        ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, lambda _: changed.set()
    )

    FlagdFileStore(flags).set_side("chat-canary", Side.CANARY)
    assert changed.wait(5)
    assert other.read("chat-canary", EvaluationContext("u")).side is Side.CANARY
    changed.clear()

    record = canary.rollback("chat", reason="bad canary")
    assert record["flag_store"] == f"flagd_file:{flags}" and record["flag_error"] is None
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert response.choices[0].message.content == "stable"  # the local latch, at once
    assert changed.wait(5)
    assert other.read("chat-canary", EvaluationContext("u")).side is Side.STABLE  # the other reader followed
    assert json.loads(flags.read_text())["flags"]["unrelated"]["defaultVariant"] == "on"


async def test_a_failing_flag_store_keeps_the_latch_and_retries(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    router = _router()
    canary = litellm_canary.attach(
        router, {"rollouts": [chat_rollout()], "flag_store": {"kind": "flagd_file", "path": str(flags)}}
    )
    canary.set_side("chat", "canary")
    store = canary.store
    assert isinstance(store, FlagdFileStore)
    real_path = store.path
    store.path = tmp_path / "missing-dir" / "sub" / "flags.json"
    (tmp_path / "missing-dir").write_text("a file where a directory should be")
    canary.controller._retry_initial_s = 0.01

    record = canary.rollback("chat", reason="store down")
    assert record["flag_error"] is not None
    response = await router.acompletion(model="chat", messages=MESSAGES)
    assert response.choices[0].message.content == "stable"
    status = canary.status()["groups"]["chat"]["flag_store"]
    assert status["write_pending"] is True and status["last_error"]

    store.path = real_path  # the store comes back; the background retry writes the flag
    assert canary.controller.runtime("chat").flag_written.wait(10)
    assert canary.status()["groups"]["chat"]["flag_store"]["write_pending"] is False
    assert json.loads(real_path.read_text())["flags"]["chat-canary"]["defaultVariant"] == "stable"
    assert canary.status()["groups"]["chat"]["last_rollback"]["flag_error"] is None
    canary.detach()


async def test_decisions_and_rollbacks_are_recorded_on_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    router = _router()
    canary = litellm_canary.attach(router, {"rollouts": [chat_rollout()], "flag_store": {"kind": "memory"}})
    canary.set_side("chat", "canary")
    with tracer.start_as_current_span("request"):
        await router.acompletion(model="chat", messages=MESSAGES)
    attributes = exporter.get_finished_spans()[0].attributes or {}
    assert attributes["litellm_canary.side"] == "canary"
    assert attributes["litellm_canary.deployment"] == "chat-canary"
    assert attributes["litellm_canary.flag_variant"] == "canary"
    assert attributes["litellm_canary.reason"] == "flag"
    assert attributes["litellm_canary.pinned"] is False
    assert trace.get_current_span().is_recording() is False

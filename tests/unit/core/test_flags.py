"""Reading the flag through the real OpenFeature SDK, and the two flag stores."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.provider import AbstractProvider, Metadata
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from litellm_canary.core.decision import Side
from litellm_canary.core.flags import (
    FlagdFileStore,
    FlagReader,
    MemoryFlagProvider,
    MemoryFlagStore,
    flag_definition,
    flagd_file_provider,
    targeting_key,
)


def _in_memory(flags: dict[str, InMemoryFlag[Any]], domain: str | None = None) -> FlagReader:
    provider = InMemoryProvider(flags)
    if domain:
        api.set_provider_and_wait(provider, domain)
    else:
        api.set_provider_and_wait(provider)
    return FlagReader(domain)


def test_string_and_boolean_variants_map_to_sides() -> None:
    reader = _in_memory(
        {
            "s-canary": InMemoryFlag("c", {"c": "canary"}),
            "s-stable": InMemoryFlag("s", {"s": "stable"}),
            "b-on": InMemoryFlag("on", {"on": True}),
            "b-off": InMemoryFlag("off", {"off": False}),
        }
    )
    ctx = EvaluationContext("user-1")
    assert reader.read("s-canary", ctx).side is Side.CANARY
    assert reader.read("s-stable", ctx).side is Side.STABLE
    for _ in range(2):  # the second read takes the remembered boolean path
        assert reader.read("b-on", ctx).side is Side.CANARY
        assert reader.read("b-off", ctx).side is Side.STABLE
    assert reader.errors == {}


@pytest.mark.parametrize(
    ("flags", "cause"),
    [
        ({}, "FLAG_NOT_FOUND"),
        ({"f": InMemoryFlag("x", {"x": "blue"})}, "UNKNOWN_VARIANT"),
        ({"f": InMemoryFlag("x", {"x": 42})}, "TYPE_MISMATCH"),
    ],
)
def test_unusable_answers_route_stable_and_are_counted(flags: dict[str, Any], cause: str) -> None:
    reader = _in_memory(flags)
    read = reader.read("f", EvaluationContext("k"))
    assert read.side is None and read.error == cause
    assert reader.errors[cause] == 1


class _BrokenProvider(AbstractProvider):
    def get_metadata(self) -> Metadata:
        return Metadata(name="broken")

    def _boom(self, *args: object, **kwargs: object) -> FlagResolutionDetails[Any]:
        raise RuntimeError("backend down")

    resolve_boolean_details = resolve_string_details = _boom  # type: ignore[assignment]
    resolve_integer_details = resolve_float_details = resolve_object_details = _boom  # type: ignore[assignment]


def test_provider_errors_route_stable() -> None:
    api.set_provider_and_wait(_BrokenProvider())
    reader = FlagReader()
    assert reader.read("f", EvaluationContext("k")).side is None
    assert sum(reader.errors.values()) == 1


def test_provider_not_ready_routes_stable() -> None:
    release = threading.Event()

    class _SlowStart(InMemoryProvider):
        def initialize(self, evaluation_context: EvaluationContext) -> None:
            release.wait(10)

    api.set_provider(_SlowStart({"f": InMemoryFlag("c", {"c": "canary"})}))  # initialises in the background
    try:
        reader = FlagReader()
        read = reader.read("f", EvaluationContext("k"))
        assert read.side is None and read.error == "PROVIDER_NOT_READY"
    finally:
        release.set()


def test_error_is_logged_once_per_cause(caplog: pytest.LogCaptureFixture) -> None:
    reader = _in_memory({})
    for _ in range(50):
        reader.read("missing", EvaluationContext("k"))
    assert reader.errors["FLAG_NOT_FOUND"] == 50
    assert len([r for r in caplog.records if "missing" in r.getMessage()]) == 1


def test_domain_is_respected() -> None:
    _in_memory({"f": InMemoryFlag("s", {"s": "stable"})})
    reader = _in_memory({"f": InMemoryFlag("c", {"c": "canary"})}, domain="gateway")
    assert reader.read("f", EvaluationContext("k")).side is Side.CANARY
    assert FlagReader().read("f", EvaluationContext("k")).side is Side.STABLE


def test_targeting_key_order() -> None:
    assert targeting_key(session_id="s", user="u", api_key_hash="h", trace_id="t") == "s"
    assert targeting_key(session_id=None, user="u", api_key_hash="h", trace_id="t") == "u"
    assert targeting_key(user="", api_key_hash="h", trace_id="t") == "h"
    assert targeting_key(trace_id="t") == "t"
    assert targeting_key() is None


def test_memory_store_flips_on_the_next_evaluation_and_emits_change() -> None:
    provider = MemoryFlagProvider()
    store = MemoryFlagStore(provider)
    store.set_side("f", Side.CANARY)
    api.set_provider_and_wait(provider)
    changes: list[object] = []
    api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, changes.append)
    reader = FlagReader()
    ctx = EvaluationContext("k")
    for i in range(200):
        side = Side.STABLE if i % 2 else Side.CANARY
        store.set_side("f", side)
        assert reader.read("f", ctx).side is side
    api.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, changes.append)
    assert changes  # handlers run on an SDK thread pool; at least some have arrived by now


def _canary_share(reader: FlagReader, keys: int = 10_000) -> float:
    hits = sum(reader.read("f", EvaluationContext(f"user-{i}")).side is Side.CANARY for i in range(keys))
    return hits / keys


def test_percentage_is_sticky_and_accurate_in_memory() -> None:
    provider = MemoryFlagProvider()
    store = MemoryFlagStore(provider)
    store.set_canary_percent("f", 10)
    api.set_provider_and_wait(provider)
    reader = FlagReader()
    assert 0.08 <= _canary_share(reader) <= 0.12
    first = [reader.read("f", EvaluationContext(f"u{i}")).side for i in range(500)]
    assert first == [reader.read("f", EvaluationContext(f"u{i}")).side for i in range(500)]
    store.set_canary_percent("f", 20)  # a ramp-up moves no canary user back to stable
    after = [reader.read("f", EvaluationContext(f"u{i}")).side for i in range(500)]
    assert all(a is Side.CANARY for b, a in zip(first, after, strict=True) if b is Side.CANARY)


def test_percentage_edges_and_validation() -> None:
    assert flag_definition(canary_percent=0)["defaultVariant"] == "stable"
    assert flag_definition(canary_percent=100)["defaultVariant"] == "canary"
    assert "targeting" not in flag_definition(canary_percent=100)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        flag_definition(canary_percent=101)


def test_flagd_file_store_keeps_other_flags_and_writes_atomically(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(
        json.dumps(
            {
                "$schema": "x",
                "flags": {"other": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}},
            }
        )
    )
    store = FlagdFileStore(path)
    store.set_side("f", Side.CANARY)
    store.set_canary_percent("g", 5)
    document = json.loads(path.read_text())
    assert document["$schema"] == "x"
    assert document["flags"]["other"]["defaultVariant"] == "a"
    assert document["flags"]["f"]["defaultVariant"] == "canary"
    assert document["flags"]["g"]["targeting"]["fractional"][0] == ["canary", 500]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_flagd_file_store_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    threads = [
        threading.Thread(target=FlagdFileStore(path).set_side, args=(f"flag-{i}", Side.STABLE))
        for i in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(json.loads(path.read_text())["flags"]) == 20


def test_flagd_file_store_refuses_a_foreign_document(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text('{"flags": [1, 2]}')
    with pytest.raises(ValueError, match="not a flagd flag-definition document"):
        FlagdFileStore(path).set_side("f", Side.STABLE)
    assert path.read_text() == '{"flags": [1, 2]}'


def test_flagd_provider_in_file_mode_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    store = FlagdFileStore(path)
    store.set_canary_percent("f", 10)
    api.set_provider_and_wait(flagd_file_provider(path, poll_ms=20))
    reader = FlagReader()
    assert 0.08 <= _canary_share(reader) <= 0.12

    changed = threading.Event()
    api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, lambda _: changed.set())
    store.set_side("f", Side.STABLE)
    assert changed.wait(5)
    assert _canary_share(reader, 1000) == 0.0

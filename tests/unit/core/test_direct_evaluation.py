"""Contract: the direct flag evaluation answers exactly what the OpenFeature SDK answers, and steps
aside (every read through the SDK) as soon as a hook or an evaluation context could see a difference.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode, FlagNotFoundError
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagResolutionDetails, FlagType
from openfeature.hook import Hook, HookContext
from openfeature.provider import AbstractProvider, Metadata
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from litellm_canary.core.flags import MemoryFlagProvider, flag_definition, flagd_file_provider
from litellm_canary.core.flags.direct_evaluation import evaluate

DOMAIN = "direct-evaluation-contract"
CONTEXTS = [EvaluationContext(f"user-{n}", {"model_group": "chat"}) for n in range(40)] + [
    EvaluationContext()
]
# (flag key, type, default): present, boolean, wrong type, missing
READS = [
    ("half", FlagType.STRING, "stable"),
    ("all-canary", FlagType.STRING, "stable"),
    ("all-canary", FlagType.BOOLEAN, False),
    ("on", FlagType.BOOLEAN, False),
    ("on", FlagType.STRING, "stable"),
    ("number", FlagType.STRING, "stable"),
    ("missing", FlagType.STRING, "stable"),
]


def _flagd_document() -> dict[str, Any]:
    flags = {
        "half": flag_definition(canary_percent=50.0),
        "all-canary": flag_definition(canary_percent=100.0),
        "on": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"},
        "number": {"state": "ENABLED", "variants": {"one": 1}, "defaultVariant": "one"},
    }
    return {"flags": flags}


def _providers(tmp_path: Path) -> Iterator[tuple[str, AbstractProvider]]:
    document = _flagd_document()
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(document))
    yield "flagd file", flagd_file_provider(path, poll_ms=1000)
    yield "ours, in memory", MemoryFlagProvider(document["flags"])
    yield (
        "SDK in memory",
        InMemoryProvider(
            {
                "half": InMemoryFlag("c", {"c": "canary"}),
                "all-canary": InMemoryFlag("c", {"c": "canary"}),
                "on": InMemoryFlag("on", {"on": True}),
                "number": InMemoryFlag("one", {"one": 1}),
            }
        ),
    )


def _same(direct: FlagEvaluationDetails[Any], sdk: FlagEvaluationDetails[Any]) -> None:
    assert (direct.value, direct.variant, direct.reason, direct.error_code) == (
        sdk.value,
        sdk.variant,
        sdk.reason,
        sdk.error_code,
    )
    assert direct.error_message == sdk.error_message


def test_the_direct_answer_is_the_sdk_answer_for_every_provider_we_ship(tmp_path: Path) -> None:
    for name, provider in _providers(tmp_path):
        api.set_provider_and_wait(provider, DOMAIN)
        client = api.get_client(DOMAIN)
        try:
            for flag_key, flag_type, default in READS:
                for context in CONTEXTS:
                    direct = evaluate(client, flag_type, flag_key, default, context)
                    sdk = client.evaluate_flag_details(flag_type, flag_key, default, context)
                    _same(direct, sdk)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None
        finally:
            api.clear_providers()


def test_our_flagd_file_provider_read_directly_answers_as_the_stock_flagd_provider(tmp_path: Path) -> None:
    """Ours drops flagd's sync-metadata hook (a file sends no sync metadata): no provider hook, so
    reads take the direct path, and their answers are those of the stock provider with its hook."""
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType

    path = tmp_path / "flags.json"
    path.write_text(json.dumps(_flagd_document()))
    ours = flagd_file_provider(path, poll_ms=1000)
    stock = FlagdProvider(resolver_type=ResolverType.IN_PROCESS, offline_flag_source_path=str(path))
    assert stock.get_provider_hooks(), "the stock provider has its hook (else this test proves nothing)"
    api.set_provider_and_wait(ours, DOMAIN)
    api.set_provider_and_wait(stock, "stock-flagd")
    try:
        assert ours.get_provider_hooks() == []
        stock_client = api.get_client("stock-flagd")
        for flag_key, flag_type, default in READS:
            for context in CONTEXTS:
                direct = evaluate(api.get_client(DOMAIN), flag_type, flag_key, default, context)
                sdk = stock_client.evaluate_flag_details(flag_type, flag_key, default, context)
                _same(direct, sdk)
    finally:
        api.clear_providers()


class _Raising(AbstractProvider):
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_metadata(self) -> Metadata:
        return Metadata("raising")

    def resolve_string_details(self, *args: Any, **kwargs: Any) -> FlagResolutionDetails[str]:
        raise self.error

    resolve_boolean_details = resolve_string_details  # type: ignore[assignment]
    resolve_integer_details = resolve_string_details  # type: ignore[assignment]
    resolve_float_details = resolve_string_details  # type: ignore[assignment]
    resolve_object_details = resolve_string_details  # type: ignore[assignment]


@pytest.mark.parametrize("error", [FlagNotFoundError("gone"), RuntimeError("boom")])
def test_a_raising_provider_gets_the_sdk_answer(error: Exception) -> None:
    api.set_provider_and_wait(_Raising(error), DOMAIN)
    client = api.get_client(DOMAIN)
    try:
        direct = evaluate(client, FlagType.STRING, "f", "stable", CONTEXTS[0])
        sdk = client.evaluate_flag_details(FlagType.STRING, "f", "stable", CONTEXTS[0])
        _same(direct, sdk)
        assert direct.error_code in (ErrorCode.FLAG_NOT_FOUND, ErrorCode.GENERAL)
    finally:
        api.clear_providers()


class _ErrorWithValue(_Raising):
    def __init__(self) -> None:
        super().__init__(RuntimeError("unused"))

    def resolve_string_details(self, *args: Any, **kwargs: Any) -> FlagResolutionDetails[str]:
        return FlagResolutionDetails("canary", error_code=ErrorCode.PARSE_ERROR, error_message="bad file")


def test_an_error_answer_carries_the_default_value_not_the_providers() -> None:
    api.set_provider_and_wait(_ErrorWithValue(), DOMAIN)
    client = api.get_client(DOMAIN)
    try:
        direct = evaluate(client, FlagType.STRING, "f", "stable", CONTEXTS[0])
        _same(direct, client.evaluate_flag_details(FlagType.STRING, "f", "stable", CONTEXTS[0]))
        assert (direct.value, direct.error_code) == ("stable", ErrorCode.PARSE_ERROR)
    finally:
        api.clear_providers()


def test_a_provider_not_ready_gets_the_sdk_answer() -> None:
    class NeverReady(InMemoryProvider):
        def initialize(self, evaluation_context: EvaluationContext) -> None:
            raise RuntimeError("not yet")

    api.set_provider(NeverReady({}), DOMAIN)
    client = api.get_client(DOMAIN)
    try:
        direct = evaluate(client, FlagType.STRING, "f", "stable", CONTEXTS[0])
        sdk = client.evaluate_flag_details(FlagType.STRING, "f", "stable", CONTEXTS[0])
        _same(direct, sdk)
        assert direct.error_code is not None
    finally:
        api.clear_providers()


class _Recording(Hook):
    def __init__(self) -> None:
        self.flags: list[str] = []

    def before(self, hook_context: HookContext, hints: Any) -> None:
        self.flags.append(hook_context.flag_key)


def test_a_hook_or_a_context_anywhere_sends_every_read_through_the_sdk() -> None:
    provider = InMemoryProvider({"f": InMemoryFlag("c", {"c": "canary"})})
    api.set_provider_and_wait(provider, DOMAIN)
    client = api.get_client(DOMAIN)
    hook = _Recording()
    try:
        api.add_hooks([hook])
        evaluate(client, FlagType.STRING, "f", "stable", CONTEXTS[0])
        assert hook.flags == ["f"]
        api.clear_hooks()
        client.add_hooks([hook])
        evaluate(client, FlagType.STRING, "f", "stable", CONTEXTS[0])
        assert hook.flags == ["f", "f"]
        client.hooks.clear()
        evaluate(client, FlagType.STRING, "f", "stable", CONTEXTS[0])
        assert hook.flags == ["f", "f"]  # nothing to see: the direct path
        # A global context that targets: the provider must see the merged context.
        api.set_evaluation_context(EvaluationContext(attributes={"region": "eu"}))
        seen: list[EvaluationContext | None] = []
        original = provider.resolve_string_details

        def spy(flag_key: str, default_value: str, evaluation_context: Any = None) -> Any:
            seen.append(evaluation_context)
            return original(flag_key, default_value, evaluation_context)

        provider.resolve_string_details = spy  # type: ignore[method-assign]
        evaluate(client, FlagType.STRING, "f", "stable", CONTEXTS[0])
        assert seen[-1] is not None and seen[-1].attributes.get("region") == "eu"
    finally:
        api.clear_hooks()
        api.set_evaluation_context(EvaluationContext())
        api.clear_providers()


def test_a_provider_whose_hook_list_fails_reads_as_stable_and_is_counted() -> None:
    """The direct path asks the provider for its hooks on every read: a fault there is a read error."""
    from litellm_canary.core.flags import FlagReader

    class BrokenHooks(InMemoryProvider):
        def get_provider_hooks(self) -> list[Hook]:
            raise RuntimeError("hooks unavailable")

    api.set_provider_and_wait(BrokenHooks({"f": InMemoryFlag("c", {"c": "canary"})}), DOMAIN)
    try:
        reader = FlagReader(DOMAIN)
        read = reader.read("f", CONTEXTS[0])
        assert read.side is None and reader.errors == {"EXCEPTION:RuntimeError": 1}
        reader.close()
    finally:
        api.clear_providers()

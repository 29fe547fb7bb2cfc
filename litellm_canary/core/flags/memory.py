"""``flag_store: {kind: memory}``: the library's own writable in-process OpenFeature provider
(:class:`MemoryFlagProvider`, evaluating flagd flag definitions) and its store (:class:`MemoryFlagStore`)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.provider import AbstractProvider, Metadata

from litellm_canary.core.decision import Side
from litellm_canary.core.flags.definitions import flag_definition


class MemoryFlagProvider(AbstractProvider):
    """A writable in-process OpenFeature provider evaluating flagd flag definitions.

    Every write replaces one flag atomically (a dict swap) and emits the configuration-changed
    event, so the very next evaluation sees it.
    """

    def __init__(self, flags: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        from openfeature.contrib.tools.flagd.core import FlagdCore

        self._core = FlagdCore()
        self._flags: dict[str, Any] = {key: dict(value) for key, value in (flags or {}).items()}
        self._write_lock = threading.Lock()
        self._core.set_flags({"flags": self._flags})

    def get_metadata(self) -> Metadata:
        return Metadata(name="litellm-canary memory store")

    def set_flag(self, flag_key: str, definition: Mapping[str, Any]) -> None:
        with self._write_lock:
            self._flags = {**self._flags, flag_key: dict(definition)}
            self._core.set_flags({"flags": self._flags})
        self.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=[flag_key]))

    def flag(self, flag_key: str) -> Mapping[str, Any] | None:
        value: Mapping[str, Any] | None = self._flags.get(flag_key)
        return value

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        return self._core.resolve_boolean_value(flag_key, default_value, evaluation_context)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._core.resolve_string_value(flag_key, default_value, evaluation_context)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._core.resolve_integer_value(flag_key, default_value, evaluation_context)

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        return self._core.resolve_float_value(flag_key, default_value, evaluation_context)

    def resolve_object_details(  # type: ignore[override]
        self, flag_key: str, default_value: Any, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[Any]:
        return self._core.resolve_object_value(flag_key, default_value, evaluation_context)


class MemoryFlagStore:
    """``flag_store: {kind: memory}``: the library's own provider, installed for the domain."""

    def __init__(self, provider: MemoryFlagProvider | None = None) -> None:
        self.provider = provider or MemoryFlagProvider()

    def set_side(self, flag_key: str, side: Side) -> None:
        self.provider.set_flag(flag_key, flag_definition(variant=side))

    def set_canary_percent(self, flag_key: str, percent: float) -> None:
        self.provider.set_flag(flag_key, flag_definition(canary_percent=percent))

    def describe(self) -> str:
        return "memory"

    def definition(self, flag_key: str) -> Mapping[str, Any] | None:
        """The flag's current definition (``None``: no such flag)."""
        return self.provider.flag(flag_key)

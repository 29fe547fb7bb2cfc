"""Reading the canary flag per request, and the flag stores that write it.

Reading goes through the OpenFeature API only (the provider the application set, in the configured
domain). A flag answers ``"canary"``/``"stable"`` (string) or ``true``/``false`` (boolean); anything
else — unknown variant, missing flag, provider error, provider not ready — reads as "no answer",
which the decision turns into stable. Evaluations never raise into a request; each failure cause is
counted and logged once per cause per minute.

The stores write the flag in flagd's flag-definition format, so a percentage rollout means the same
thing in the in-process memory store and in a flagd file shared by several processes: flagd's
``fractional`` operator, sticky per targeting key, canary listed first so a ramp-up moves no canary
user back to stable.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.provider import AbstractProvider, Metadata

from litellm_canary.decision import Side

logger = logging.getLogger("litellm_canary.flags")

_LOG_EVERY_S = 60.0
_VARIANT_SIDES: Mapping[object, Side] = {"canary": Side.CANARY, "stable": Side.STABLE}


@dataclass(frozen=True, slots=True)
class FlagRead:
    side: Side | None  # None: no usable answer (routes to stable)
    value: str  # what the flag said, or the error cause
    error: str | None = None


class FlagReader:
    """Evaluates canary flags through one OpenFeature client; never raises."""

    def __init__(self, domain: str | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._client: OpenFeatureClient = api.get_client(domain)
        self._boolean_flags: set[str] = set()
        self._clock = clock
        self.errors: Counter[str] = Counter()
        self.variants: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}

    def read(self, flag_key: str, context: EvaluationContext) -> FlagRead:
        try:
            if flag_key in self._boolean_flags:
                boolean = self._client.get_boolean_details(flag_key, False, context)
                return self._boolean_read(flag_key, boolean)
            details = self._client.get_string_details(flag_key, "stable", context)
            if details.error_code is ErrorCode.TYPE_MISMATCH:
                boolean = self._client.get_boolean_details(flag_key, False, context)
                if boolean.error_code is None:
                    self._boolean_flags.add(flag_key)
                return self._boolean_read(flag_key, boolean)
        except Exception as error:  # a misbehaving provider or hook must not reach the request
            return self._failed(flag_key, f"EXCEPTION:{type(error).__name__}")
        if details.error_code is not None:
            return self._failed(flag_key, str(details.error_code.value))
        side = _VARIANT_SIDES.get(details.value)
        if side is None:
            return self._failed(flag_key, "UNKNOWN_VARIANT", repr(details.value))
        self.variants[details.value] += 1
        return FlagRead(side, details.value)

    def _boolean_read(self, flag_key: str, details: FlagResolutionDetails[bool] | Any) -> FlagRead:
        if details.error_code is not None:
            return self._failed(flag_key, str(details.error_code.value))
        side = Side.CANARY if details.value is True else Side.STABLE
        self.variants[str(details.value).lower()] += 1
        return FlagRead(side, str(details.value).lower())

    def _failed(self, flag_key: str, cause: str, detail: str = "") -> FlagRead:
        self.errors[cause] += 1
        now = self._clock()
        key = f"{flag_key}:{cause}"
        if now - self._last_logged.get(key, -_LOG_EVERY_S) >= _LOG_EVERY_S:
            self._last_logged[key] = now
            logger.warning(
                "canary flag %r unreadable (%s%s): routing to stable; %d such reads so far",
                flag_key,
                cause,
                f" {detail}" if detail else "",
                self.errors[cause],
            )
        return FlagRead(None, cause, cause)


def targeting_key(
    *,
    session_id: object = None,
    user: object = None,
    api_key_hash: object = None,
    trace_id: object = None,
) -> str | None:
    """The request's stickiness key: session id, then end user, then API-key hash, then trace id."""
    for candidate in (session_id, user, api_key_hash, trace_id):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


# -- flag documents and stores -------------------------------------------------------------------


def flag_definition(variant: Side | None = None, canary_percent: float | None = None) -> dict[str, Any]:
    """A flagd flag definition that serves one side, or a sticky percentage to the canary."""
    definition: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {"stable": "stable", "canary": "canary"},
        "defaultVariant": "stable",
    }
    if canary_percent is not None:
        if not 0 <= canary_percent <= 100:
            raise ValueError(f"canary percent must be within 0..100, got {canary_percent!r}")
        if canary_percent in (0, 100):
            definition["defaultVariant"] = "canary" if canary_percent == 100 else "stable"
            return definition
        # Weights in hundredths of a percent; canary first so that a ramp-up keeps its users.
        canary_weight = round(canary_percent * 100)
        definition["targeting"] = {
            "fractional": [["canary", canary_weight], ["stable", 10_000 - canary_weight]]
        }
    elif variant is not None:
        definition["defaultVariant"] = variant.value
    return definition


class FlagStore(Protocol):
    """Writes canary flags where every process reading them will see the change."""

    def set_side(self, flag_key: str, side: Side) -> None: ...

    def set_canary_percent(self, flag_key: str, percent: float) -> None: ...

    def describe(self) -> str: ...


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


class FlagdFileStore:
    """``flag_store: {kind: flagd_file, path}``: a flagd flag-definition JSON file.

    Each write is a locked read-modify-write that keeps every other flag (and any top-level key such
    as ``$schema`` or ``$evaluators``) intact, then replaces the file atomically (temp file in the
    same directory, fsync, rename), so a reader never sees a half-written file and concurrent
    writers from several processes lose nothing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def set_side(
        self,
        flag_key: str,
        side: Side,
        *,
        metadata: Mapping[str, float | int | str | bool | None] | None = None,
    ) -> None:
        """Serve ``side``; ``metadata`` changes (None removes a key) go into the same atomic write."""
        self.write_flag(flag_key, flag_definition(variant=side), metadata=metadata)

    def set_canary_percent(self, flag_key: str, percent: float) -> None:
        self.write_flag(flag_key, flag_definition(canary_percent=percent))

    def describe(self) -> str:
        return f"flagd_file:{self.path}"

    def read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {"flags": {}}
        document = json.loads(text)
        if not isinstance(document, dict) or not isinstance(document.get("flags", {}), dict):
            raise ValueError(f"{self.path} is not a flagd flag-definition document (no 'flags' object)")
        document.setdefault("flags", {})
        return document

    def write_flag(
        self,
        flag_key: str,
        definition: Mapping[str, Any],
        *,
        metadata: Mapping[str, float | int | str | bool | None] | None = None,
    ) -> None:
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock", timeout=10):
            document = self.read()
            new = dict(definition)
            # The flag's metadata (e.g. the canary window, see litellm_canary.window) outlives a re-write.
            old_metadata = (document["flags"].get(flag_key) or {}).get("metadata")
            if "metadata" not in new and old_metadata:
                new["metadata"] = old_metadata
            if metadata:
                merged = {**(new.get("metadata") or {}), **metadata}
                new["metadata"] = {key: value for key, value in merged.items() if value is not None}
            document["flags"][flag_key] = new
            self._replace(json.dumps(document, indent=2, sort_keys=True) + "\n")

    def update_metadata(self, flag_key: str, changes: Mapping[str, float | int | str | bool | None]) -> None:
        """Set (or, for ``None``, remove) keys of a flag's ``metadata``; the flag must exist."""
        from filelock import FileLock

        with FileLock(str(self.path) + ".lock", timeout=10):
            document = self.read()
            flag = document["flags"].get(flag_key)
            if not isinstance(flag, dict):
                raise KeyError(f"flag {flag_key!r} is not in {self.path}")
            metadata = {**(flag.get("metadata") or {}), **changes}
            flag["metadata"] = {key: value for key, value in metadata.items() if value is not None}
            self._replace(json.dumps(document, indent=2, sort_keys=True) + "\n")

    def _replace(self, text: str) -> None:
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        # flagd's file watcher compares mtimes; make sure a write within the same tick still moves it.
        stat = self.path.stat()
        os.utime(self.path, ns=(stat.st_atime_ns, max(stat.st_mtime_ns, time.time_ns())))


def flagd_file_provider(path: str | Path, poll_ms: int = 100) -> AbstractProvider:
    """The flagd provider in in-process file mode (no flagd daemon needed), polling ``path``."""
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType

    provider: AbstractProvider = FlagdProvider(
        resolver_type=ResolverType.IN_PROCESS, offline_flag_source_path=str(path), deadline_ms=poll_ms
    )
    return provider

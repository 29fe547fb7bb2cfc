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

import contextlib
import functools
import json
import logging
import os
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent, ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.provider import AbstractProvider, Metadata, ProviderStatus

from litellm_canary.core.config import ConfigError, FlagReadConfig
from litellm_canary.core.decision import Side

logger = logging.getLogger("litellm_canary.flags")

_LOG_EVERY_S = 60.0
_VARIANT_SIDES: Mapping[object, Side] = {"canary": Side.CANARY, "stable": Side.STABLE}


@dataclass(frozen=True, slots=True)
class FlagRead:
    side: Side | None  # None: no usable answer (routes to stable)
    value: str  # what the flag said, or the error cause
    error: str | None = None


# Causes of a read that did not ask the provider (the provider's own error codes are counted as-is).
PROVIDER_ERROR = "PROVIDER_ERROR"  # the provider reported ERROR (e.g. flagd cannot read its file)
PROVIDER_STALE = "PROVIDER_STALE"  # the provider reported STALE (its flags may be out of date)
BREAKER_OPEN = "BREAKER_OPEN"  # reads of this flag were over budget: not read during the back-off
_UNHEALTHY = {ProviderStatus.ERROR: PROVIDER_ERROR, ProviderStatus.STALE: PROVIDER_STALE}
_PROBE_CONTEXT = EvaluationContext(targeting_key="litellm-canary-probe")


class _Breaker:
    """The read-time breaker of one flag: over-budget reads among the last ``of_last`` open it.

    Open, the flag is not read (stable) until ``open_until``; then one probe read, paid by the
    reader's probe thread (never a request), closes it when within budget or doubles the back-off.
    """

    def __init__(self, config: FlagReadConfig) -> None:
        self.config = config
        self.budget_s = config.budget_ms / 1000
        self.recent: deque[bool] = deque(maxlen=config.of_last)
        self.over = 0  # over-budget reads in ``recent``
        self.open_until: float | None = None
        self.backoff_s = config.backoff_s
        self.over_budget_reads = 0
        self.trips = 0
        self.probes = 0
        self.failed_probes = 0
        self.last_read_ms: float | None = None
        self.lock = threading.Lock()

    def record(self, seconds: float, now: float) -> bool:
        """Count one read's duration; True when this read opened the breaker."""
        slow = seconds > self.budget_s
        with self.lock:
            self.last_read_ms = seconds * 1000
            if len(self.recent) == self.recent.maxlen and self.recent[0]:
                self.over -= 1
            self.recent.append(slow)
            if not slow:
                return False
            self.over += 1
            self.over_budget_reads += 1
            if self.open_until is not None or self.over < self.config.trip_after:
                return False
            self.trips += 1
            self.open_until = now + self.backoff_s
            return True

    def probed(self, seconds: float, now: float) -> bool:
        """Record a probe's duration; True when it closed the breaker."""
        with self.lock:
            self.probes += 1
            self.last_read_ms = seconds * 1000
            if seconds <= self.budget_s:
                self.open_until = None
                self.recent.clear()
                self.over = 0
                self.backoff_s = self.config.backoff_s
                return True
            self.failed_probes += 1
            self.backoff_s = min(self.backoff_s * 2, self.config.max_backoff_s)
            self.open_until = now + self.backoff_s
            return False

    def view(self, now: float) -> dict[str, Any]:
        with self.lock:
            return {
                "state": "closed" if self.open_until is None else "open",
                "budget_ms": self.config.budget_ms,
                "probe_in_s": None if self.open_until is None else round(max(0.0, self.open_until - now), 3),
                "backoff_s": self.backoff_s,
                "over_budget_reads": self.over_budget_reads,
                "trips": self.trips,
                "probes": self.probes,
                "failed_probes": self.failed_probes,
                "last_read_ms": None if self.last_read_ms is None else round(self.last_read_ms, 3),
            }


class FlagReader:
    """Evaluates canary flags through one OpenFeature client; never raises.

    A read routes to stable, counted per cause in :attr:`errors`, when the provider answers with an
    error, when the provider's status is ERROR or STALE (a flagd provider whose file is broken keeps
    serving its last flags while in ERROR: those answers are not trusted), or while the flag's
    read-time breaker is open. Routing returns to the flag by itself once the provider reports
    READY again, and once a probe read is back within budget.
    """

    def __init__(
        self,
        domain: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        budgets: Mapping[str, FlagReadConfig] | None = None,
        probe_in_background: bool = True,
    ) -> None:
        self._client: OpenFeatureClient = api.get_client(domain)
        self._boolean_flags: set[str] = set()
        self._clock = clock
        self.errors: Counter[str] = Counter()
        self.variants: Counter[str] = Counter()
        self.provider_events: Counter[str] = Counter()
        self.last_provider_error: str | None = None
        self._last_logged: dict[str, float] = {}
        self._breakers: dict[str, _Breaker] = {
            key: _Breaker(config) for key, config in (budgets or {}).items()
        }
        self._probe_in_background = probe_in_background
        self._probe_wake = threading.Condition()
        self._probe_thread: threading.Thread | None = None
        self._closed = False
        self._handlers: list[tuple[ProviderEvent, Callable[[EventDetails], None]]] = [
            (ProviderEvent.PROVIDER_ERROR, functools.partial(self._on_unhealthy, ProviderStatus.ERROR)),
            (ProviderEvent.PROVIDER_STALE, functools.partial(self._on_unhealthy, ProviderStatus.STALE)),
            (ProviderEvent.PROVIDER_READY, self._on_ready),
        ]
        for event, handler in self._handlers:
            self._client.add_handler(event, handler)

    # -- the request path --------------------------------------------------------------------------

    def read(self, flag_key: str, context: EvaluationContext) -> FlagRead:
        breaker = self._breakers.get(flag_key)
        if breaker is not None and breaker.open_until is not None:
            return self._failed(flag_key, BREAKER_OPEN, f"reads over {breaker.config.budget_ms:g} ms")
        try:
            unhealthy = _UNHEALTHY.get(self._client.get_provider_status())
        except Exception as error:  # a broken registry must not reach the request either
            return self._failed(flag_key, f"EXCEPTION:{type(error).__name__}")
        if unhealthy is not None:
            return self._failed(flag_key, unhealthy, self.last_provider_error or "")
        if breaker is None:
            read, detail = self._resolve(flag_key, context)
        else:
            start = self._clock()
            read, detail = self._resolve(flag_key, context)
            now = self._clock()
            if breaker.record(now - start, now):
                self._tripped(flag_key, breaker)
        if read.error is not None:
            return self._failed(flag_key, read.error, detail)
        self.variants[read.value] += 1
        return read

    def _resolve(self, flag_key: str, context: EvaluationContext) -> tuple[FlagRead, str]:
        """One evaluation, nothing counted: the read and a detail for the log."""
        try:
            if flag_key in self._boolean_flags:
                return _boolean_read(self._client.get_boolean_details(flag_key, False, context)), ""
            details = self._client.get_string_details(flag_key, "stable", context)
            if details.error_code is ErrorCode.TYPE_MISMATCH:
                boolean = self._client.get_boolean_details(flag_key, False, context)
                if boolean.error_code is None:
                    self._boolean_flags.add(flag_key)
                return _boolean_read(boolean), ""
        except Exception as error:  # a misbehaving provider or hook must not reach the request
            cause = f"EXCEPTION:{type(error).__name__}"
            return FlagRead(None, cause, cause), ""
        if details.error_code is not None:
            cause = str(details.error_code.value)
            return FlagRead(None, cause, cause), details.error_message or ""
        side = _VARIANT_SIDES.get(details.value)
        if side is None:
            return FlagRead(None, "UNKNOWN_VARIANT", "UNKNOWN_VARIANT"), repr(details.value)
        return FlagRead(side, details.value), ""

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

    # -- the provider's health (OpenFeature events, on the SDK's handler threads) ------------------

    def _on_unhealthy(self, event_status: ProviderStatus, details: EventDetails) -> None:
        # Handlers run on a thread pool, possibly after a later READY: the registry's status decides
        # routing; this only records and logs the event.
        status = event_status
        if details.error_code is ErrorCode.PROVIDER_FATAL:
            status = ProviderStatus.FATAL
        cause = _UNHEALTHY.get(status, f"PROVIDER_{status.value}")
        self.provider_events[cause] += 1
        message = details.message or (details.error_code.value if details.error_code else "no message")
        if self._client.get_provider_status() is not ProviderStatus.READY:
            self.last_provider_error = f"{details.provider_name or 'provider'}: {message}"
        now = self._clock()
        key = f"event:{cause}"
        if now - self._last_logged.get(key, -_LOG_EVERY_S) >= _LOG_EVERY_S:
            self._last_logged[key] = now
            logger.warning(
                "flag provider is %s (%s): every managed group routes to stable until it is READY; "
                "%d such events so far",
                status.value,
                f"{details.provider_name or 'provider'}: {message}",
                self.provider_events[cause],
            )

    def _on_ready(self, details: EventDetails) -> None:
        self.provider_events["READY"] += 1
        if self.last_provider_error is not None:
            logger.warning("flag provider is READY again: managed groups follow their flags")
            self.last_provider_error = None

    def provider_status(self) -> str:
        try:
            return str(self._client.get_provider_status().value)
        except Exception as error:
            return f"UNKNOWN ({type(error).__name__})"

    def source_status(self) -> dict[str, Any]:
        """The flag source's health for ``status()``."""
        return {
            "provider_status": self.provider_status(),
            "last_error": self.last_provider_error,
            "events": dict(self.provider_events),
            "provider_log_suppressed": provider_log_filter.suppressed,
        }

    # -- the read-time breaker ---------------------------------------------------------------------

    def breaker_status(self, flag_key: str) -> dict[str, Any] | None:
        breaker = self._breakers.get(flag_key)
        return None if breaker is None else breaker.view(self._clock())

    def _tripped(self, flag_key: str, breaker: _Breaker) -> None:
        logger.warning(
            "canary flag %r: %d of the last %d reads took over %g ms (last %.1f ms): routing to stable "
            "without reading for %g s, then a probe read",
            flag_key,
            breaker.over,
            len(breaker.recent),
            breaker.config.budget_ms,
            breaker.last_read_ms or 0.0,
            breaker.backoff_s,
        )
        if self._probe_in_background:
            self._ensure_probe_thread()
        with self._probe_wake:
            self._probe_wake.notify_all()

    def run_due_probes(self) -> float | None:
        """Probe every open breaker whose back-off has ended; seconds until the next is due (or None).

        The probe thread calls this; without it (``probe_in_background=False``) the caller does.
        """
        next_due: float | None = None
        for flag_key, breaker in list(self._breakers.items()):
            open_until = breaker.open_until
            if open_until is None:
                continue
            now = self._clock()
            if now < open_until:
                wait = open_until - now
            else:
                start = self._clock()
                self._resolve(flag_key, _PROBE_CONTEXT)
                end = self._clock()
                if breaker.probed(end - start, end):
                    logger.warning(
                        "canary flag %r: probe read took %.1f ms, within budget: reading the flag again",
                        flag_key,
                        (end - start) * 1000,
                    )
                    continue
                logger.warning(
                    "canary flag %r: probe read took %.1f ms, over the %g ms budget: stable for %g s more",
                    flag_key,
                    (end - start) * 1000,
                    breaker.config.budget_ms,
                    breaker.backoff_s,
                )
                wait = breaker.backoff_s
            next_due = wait if next_due is None else min(next_due, wait)
        return next_due

    def _ensure_probe_thread(self) -> None:
        with self._probe_wake:
            if self._probe_thread is not None or self._closed:
                return
            self._probe_thread = threading.Thread(
                target=self._probe_loop, name="litellm-canary-flag-probe", daemon=True
            )
            self._probe_thread.start()

    def _probe_loop(self) -> None:
        while True:
            try:
                wait = self.run_due_probes()
            except Exception:  # the prober's own bug: keep the breakers open, try again later
                logger.exception("flag probe failed")
                wait = 1.0
            with self._probe_wake:
                if self._closed:
                    return
                self._probe_wake.wait(wait)
                if self._closed:
                    return

    def close(self) -> None:
        """Stop the probe thread and remove the provider event handlers."""
        with self._probe_wake:
            self._closed = True
            self._probe_wake.notify_all()
            thread = self._probe_thread
        for event, handler in self._handlers:
            with contextlib.suppress(Exception):
                self._client.remove_handler(event, handler)
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)


def _boolean_read(details: FlagResolutionDetails[bool] | Any) -> FlagRead:
    if details.error_code is not None:
        cause = str(details.error_code.value)
        return FlagRead(None, cause, cause)
    value = str(details.value).lower()
    return FlagRead(Side.CANARY if details.value is True else Side.STABLE, value)


class RateLimitedLogFilter(logging.Filter):
    """Passes each distinct message of a logger once per ``every_s``; counts what it suppresses.

    Installed on the flagd provider's logger, whose file watcher logs a traceback on every poll
    (10 a second) while its file is broken; the flag reader's own log says what that means.
    """

    def __init__(self, every_s: float = _LOG_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s = every_s
        self._clock = clock
        self._last: dict[tuple[str, int, str], float] = {}
        self._lock = threading.Lock()
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            if now - self._last.get(key, -self.every_s) < self.every_s:
                self.suppressed += 1
                return False
            if len(self._last) > 1000:
                self._last.clear()
            self._last[key] = now
        if self.suppressed:
            record.msg = f"{record.msg} (similar records suppressed so far: {self.suppressed})"
        return True


provider_log_filter = RateLimitedLogFilter()
_FLAGD_LOGGER = "openfeature.contrib"


def quiet_flagd_logs() -> None:
    """Rate-limit the flagd provider's log (idempotent)."""
    flagd_logger = logging.getLogger(_FLAGD_LOGGER)
    if provider_log_filter not in flagd_logger.filters:
        flagd_logger.addFilter(provider_log_filter)


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


def validate_flagd_file(path: str | Path) -> None:
    """Raise :class:`ConfigError` naming ``path`` and the problem when it is not a usable flagd flag
    file (unreadable, not JSON — with line and column —, not a flagd document, a flag flagd rejects).
    A missing file is fine: the store creates it."""
    file = Path(path)
    where = f"flag_store.path {file}"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if file.is_symlink():
            raise ConfigError(f"{where}: a symbolic link to a missing file ({os.readlink(file)})") from None
        return
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a directory, not a flagd flag file") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{where}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"{where}: cannot be read: {error.strerror or error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{where}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("flags", {}), dict):
        raise ConfigError(f"{where}: not a flagd flag-definition document (no 'flags' object)")
    from openfeature.contrib.tools.flagd.core.model.flag_store import FlagStore as FlagdDocument

    try:
        FlagdDocument().update(document)
    except Exception as error:  # flagd's ParseError, or whatever its parser trips on
        message = getattr(error, "error_message", None) or str(error) or type(error).__name__
        raise ConfigError(f"{where}: flagd rejects it: {message}") from None


def flagd_file_provider(path: str | Path, poll_ms: int = 100) -> AbstractProvider:
    """The flagd provider in in-process file mode (no flagd daemon needed), polling ``path``."""
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType

    quiet_flagd_logs()
    provider: AbstractProvider = FlagdProvider(
        resolver_type=ResolverType.IN_PROCESS, offline_flag_source_path=str(path), deadline_ms=poll_ms
    )
    return provider

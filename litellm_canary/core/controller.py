"""The rollback controller: the single place a rollback (or re-arm) happens.

A rollback, whoever asks for it (an operator, a trigger, an alert, a drill), runs the same steps in
the same order: latch the rollout locally (the very next decision goes to stable), start following
the canary attempts that are still running, release canary conversation pins, tell the latch
listeners (the broadcast), then write the flag store so that other processes follow. A flag-store
failure keeps the latch and is retried with backoff in the background; it shows in ``status()`` and
the log. Every rollback produces one :class:`RollbackRecord` and one structured event (a log record
and an OpenTelemetry span).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from opentelemetry import trace

from litellm_canary.core.config import Rollout
from litellm_canary.core.decision import Side
from litellm_canary.core.events import Signal
from litellm_canary.core.flags import FlagdFileStore, FlagStore
from litellm_canary.core.flags.definitions import canary_share, describe_definition
from litellm_canary.core.pins import RolloutPins
from litellm_canary.core.redact import clean_text, clean_value, scrub, scrub_value
from litellm_canary.core.rollback_record import (
    KINDS,
    NO_MARK,
    RollbackKind,
    RollbackRecord,
    iso_time,
    rearm_metadata,
    rearmed_after,
    restored_record,
    rollback_mark,
)

logger = logging.getLogger("litellm_canary.controller")
_tracer = trace.get_tracer("litellm_canary")


class RolledBackError(Exception):
    """An operation that would serve the canary was refused because the group is rolled back."""


class UnknownModelGroup(KeyError):
    """A model group that no rollout manages."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown model group"


@dataclass
class RolloutRuntime:
    """The live state of one rollout; ``rolled_back`` is read by every decision."""

    config: Rollout
    pins: RolloutPins
    rolled_back: bool = False
    last_flag_value: str | None = None
    last_rollback: RollbackRecord | None = None
    flag_write_pending: bool = False
    flag_write_attempts: int = 0
    flag_write_error: str | None = None
    generation: int = field(default=0)  # bumped by rearm: stale background flag writes stop
    flag_written: threading.Event = field(default_factory=threading.Event)  # set once the store has it


class RollbackController:
    def __init__(
        self,
        runtimes: Mapping[str, RolloutRuntime],
        store: FlagStore | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        self._runtimes = runtimes
        self._store = store
        self._clock = clock
        self._wall_clock = wall_clock
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._lock = threading.Lock()
        self._follow_lock = threading.Lock()
        # Per group, from the flag file: the last rollback mark seen (each latches once) and its generation
        self._seen_marks: dict[str, Any] = {}
        self._marked_generation: dict[str, int] = {}
        self._rearmed_at: dict[str, float] = {}  # wall time of each group's last re-arm
        self.rollbacks: Signal[[RollbackRecord]] = Signal("rollback")
        self.latched: Signal[[RollbackRecord]] = Signal("latched")  # before the flag store write
        self.rearms: Signal[[str, str | None]] = Signal("rearm")  # (model_group, origin)
        self._closed = threading.Event()
        # Which stable deployments are known unhealthy (set by the keep-warm prober).
        self.unhealthy_stable: Callable[[str], list[str]] = lambda model_group: []

    def runtime(self, model_group: str) -> RolloutRuntime:
        try:
            return self._runtimes[model_group]
        except KeyError:
            raise UnknownModelGroup(
                f"no rollout manages model group {model_group!r} (managed: {sorted(self._runtimes)})"
            ) from None

    def restore(self) -> list[str]:
        """Latch every group whose flag metadata says it is rolled back (at attach: a restart or a new
        replica); returns those groups. Only the flagd file store keeps this; the memory store cannot."""
        if not isinstance(self._store, FlagdFileStore):
            return []
        return self._restore_from(self._store.read()["flags"])

    def follow_store(self) -> None:
        """Follow what other processes wrote into the flagd flag file (another ``--num_workers``
        worker, a replica, the command line): latch every group whose flag carries a rollback mark
        this process has not seen yet, and release a latch whose mark this process saw and that is
        now gone (a re-arm elsewhere). A mark already seen does not latch again: a newer re-arm
        (e.g. over Redis) superseded it. Called whenever the flag provider reports changed flags;
        a no-op for other stores."""
        if not isinstance(self._store, FlagdFileStore):
            return
        with self._follow_lock:  # handler threads run concurrently: reads are applied in order
            try:
                flags = self._store.read()["flags"]
            except (OSError, ValueError):  # unreadable: routing goes to stable anyway; keep latches
                return
            self._restore_from(flags)
            for group, runtime in self._runtimes.items():
                if not runtime.rolled_back:
                    continue
                flag = flags.get(runtime.config.flag_key)
                if rollback_mark(flag) is not NO_MARK:
                    self._marked_generation[group] = runtime.generation
                elif self._marked_generation.get(group) == runtime.generation and rearmed_after(
                    flag, self._seen_marks.get(group)
                ):
                    self.rearm(group, origin=f"{self._store.describe()} (re-armed elsewhere)")

    def _restore_from(self, flags: Mapping[str, Any]) -> list[str]:
        restored = []
        for group, runtime in self._runtimes.items():
            flag = flags.get(runtime.config.flag_key)
            mark = rollback_mark(flag)
            if mark is NO_MARK or mark == self._seen_marks.get(group, NO_MARK):
                continue
            self._seen_marks[group] = mark
            if isinstance(mark, int | float) and mark <= self._rearmed_at.get(group, -math.inf):
                continue  # a re-arm here (or adopted over Redis) came after that rollback
            record = restored_record(group, (flag or {}).get("metadata"), self._clock())
            if record is None or runtime.rolled_back:
                continue
            record.flag_store = self._store.describe() if self._store else None
            with self._lock:
                runtime.rolled_back = True
                record.latched_wall = self._wall_clock()
                runtime.last_rollback = record
                runtime.flag_written.set()
                self._marked_generation[group] = runtime.generation
            restored.append(group)
            logger.warning(
                "canary rollout %r is rolled back since %s (%s: %s), as recorded in %s: it stays on "
                "stable until re-armed",
                group,
                record.decided_at,
                record.kind,
                scrub(record.reason),
                record.flag_store,
            )
        return restored

    def refuse_if_rolled_back(self, model_group: str, action: str) -> RolloutRuntime:
        """The group's runtime; raises :class:`RolledBackError` while it is rolled back, here or (for
        the flagd file store) as recorded in the file by another replica or the command line, in
        which case this process latches too."""
        runtime = self.runtime(model_group)
        if not runtime.rolled_back and isinstance(self._store, FlagdFileStore):
            with contextlib.suppress(OSError, ValueError):  # unreadable: the write that follows says so
                self.restore()
        if runtime.rolled_back:
            last = runtime.last_rollback
            since = f" since {last.decided_at} ({last.kind}: {scrub(last.reason)[:200]})" if last else ""
            raise RolledBackError(
                f"cannot {action} {model_group!r}: it is rolled back{since}; re-arm it first "
                "(Canary.rearm, POST /canary/rearm or litellm-canary rearm)"
            )
        return runtime

    def status(self, model_group: str) -> dict[str, Any]:
        """The latch's slice of ``Canary.status()`` for one group, with its pins' slice."""
        runtime = self.runtime(model_group)
        return {
            "state": "rolled_back" if runtime.rolled_back else "armed",
            "flag_key": runtime.config.flag_key,
            "last_flag_value": runtime.last_flag_value,
            # the deployment ids of each side, and the canary share the flag store serves now
            # (None: no store, or not readable back), e.g. for `bench switch --url`
            "stable": list(runtime.config.stable),
            "canary": list(runtime.config.canary),
            "canary_percent": self._stored_flag(runtime.config.flag_key)[1],
            **runtime.pins.status(),  # in_flight, pins, conversation_drain_remaining_s
        }

    def flag_store_status(self, model_group: str) -> dict[str, Any]:
        """The flag store's slice for one group: its kind, what the group's flag serves there now
        (``serves``; ``None`` when the store cannot say), and the rollback's flag write."""
        runtime = self.runtime(model_group)
        return {
            "kind": self._store.describe() if self._store else None,
            "serves": self._stored_flag(runtime.config.flag_key)[0],
            "write_pending": runtime.flag_write_pending,
            "last_error": runtime.flag_write_error,
        }

    def _stored_flag(self, flag_key: str) -> tuple[str | None, float | None]:
        """What the store's flag serves now, in words and as the canary's share of users (``None``
        where the store cannot be read back)."""
        definition = getattr(self._store, "definition", None)  # not part of the FlagStore protocol
        if definition is None:
            return None, None
        try:
            found = definition(flag_key)
        except (OSError, ValueError) as error:  # an unreadable flag file: say so, never fail status()
            return f"unreadable: {clean_text(str(error), 200)}", None
        return describe_definition(found), canary_share(found)

    def on_rollback(self, listener: Callable[[RollbackRecord], None]) -> None:
        """Call ``listener(record)`` after every rollback that latched (a repeat emits nothing)."""
        self.rollbacks.connect(listener)

    def on_latched(self, listener: Callable[[RollbackRecord], None]) -> None:
        """Call ``listener(record)`` as soon as a rollback latched, before the flag store write."""
        self.latched.connect(listener)

    def on_rearm(self, listener: Callable[[str, str | None], None]) -> None:
        """Call ``listener(model_group, origin)`` after every re-arm that released a latch: the one
        re-arm path, so every re-arm side effect (fresh tallies, windows, triggers) is such a listener."""
        self.rearms.connect(listener)

    def rollback(
        self,
        model_group: str,
        reason: str,
        *,
        kind: RollbackKind = "manual",
        cause: Mapping[str, Any] | None = None,
        origin: str | None = None,
    ) -> RollbackRecord:
        """Force ``model_group`` to stable now; idempotent (a repeat returns the first record, marked).

        ``origin`` names the replica a broadcast rollback came from: such a rollback only latches;
        the flag store is written by the process where the rollback was decided.
        """
        decided, decided_wall = self._clock(), self._wall_clock()
        # Kept in the record, status() and the incident: sanitised and capped (redact.clean_text).
        reason, cause = clean_text(reason), cast("Mapping[str, Any] | None", clean_value(cause))
        if kind not in KINDS:
            raise ValueError(f"rollback kind must be one of {KINDS}, got {kind!r}")
        runtime = self.runtime(model_group)
        with self._lock:
            if runtime.rolled_back and (previous := runtime.last_rollback) is not None:
                return RollbackRecord(**{**previous.__dict__, "repeated": True})
            runtime.rolled_back = True
            latched, latched_wall = self._clock(), self._wall_clock()
            runtime.flag_written.clear()
            canary_attempts = runtime.pins.watch_canary_in_flight()
        runtime.pins.release_canary(runtime.config.conversation_drain_s)
        record = RollbackRecord(
            model_group=model_group,
            kind=kind,
            reason=reason,
            cause=cause,
            decided_at=iso_time(decided_wall),
            decided_wall=decided_wall,
            decided_mono=decided,
            latched_mono=latched,
            latched_wall=latched_wall,
            in_flight_at_flip={
                Side.CANARY.value: len(canary_attempts.attempt_ids),
                Side.STABLE.value: runtime.pins.in_flight(Side.STABLE),
            },
            canary_attempts=canary_attempts,
            flag_store=self._store.describe() if self._store and origin is None else None,
            origin=origin,
            stable_unhealthy_at_rollback=self._unhealthy_stable(model_group),
        )
        runtime.last_rollback = record
        self.latched.emit(record)
        if origin is None:
            self._write_flag(runtime, record)
        self._emit(record)
        return record

    def rearm(self, model_group: str, *, origin: str | None = None) -> bool:
        """Release the latch; returns False when the group was not rolled back. ``origin``: as for
        :meth:`rollback`, the replica a broadcast re-arm came from."""
        runtime = self.runtime(model_group)
        if origin is None and not runtime.rolled_back and isinstance(self._store, FlagdFileStore):
            with contextlib.suppress(OSError, ValueError):  # rolled back in another process: re-arm it
                self.restore()
        if not runtime.rolled_back:
            return False
        if origin is None and isinstance(self._store, FlagdFileStore):
            # Clear the persisted mark first: a re-arm that cannot be recorded is not done (a restart
            # would otherwise come back rolled back while this process serves the canary).
            try:
                self._store.update_metadata(runtime.config.flag_key, rearm_metadata(self._wall_clock()))
            except Exception as error:
                raise RuntimeError(
                    f"re-arm of {model_group!r} not done: cannot clear the rollback mark in "
                    f"{self._store.describe()}: {type(error).__name__}: {error}"
                ) from error
        with self._lock:
            if not runtime.rolled_back:
                return False
            runtime.generation += 1
            runtime.rolled_back = False
            self._rearmed_at[model_group] = self._wall_clock()
            runtime.flag_write_pending = False
            runtime.pins.rearm()
        logger.info("canary rollout %r re-armed%s", model_group, f" (from {origin})" if origin else "")
        self.rearms.emit(model_group, origin)
        return True

    def close(self) -> None:
        self._closed.set()

    def _unhealthy_stable(self, model_group: str) -> list[str]:
        try:
            return list(self.unhealthy_stable(model_group))
        except Exception:  # never let a health lookup stop a rollback
            logger.exception("stable health lookup failed for %r", model_group)
            return []

    # -- flag store ------------------------------------------------------------------------------

    def _write_flag(self, runtime: RolloutRuntime, record: RollbackRecord) -> None:
        if self._store is None:
            return
        if self._try_write(runtime, record):
            return
        runtime.flag_write_pending = True
        threading.Thread(
            target=self._retry_write,
            args=(runtime, record, runtime.generation),
            name=f"litellm-canary-flag-retry-{runtime.config.model_group}",
            daemon=True,
        ).start()

    def _try_write(self, runtime: RolloutRuntime, record: RollbackRecord) -> bool:
        assert self._store is not None
        runtime.flag_write_attempts += 1
        try:
            if isinstance(self._store, FlagdFileStore):  # the flag and the rollback mark, in one write
                self._store.set_side(runtime.config.flag_key, Side.STABLE, metadata=record.persisted())
            else:
                self._store.set_side(runtime.config.flag_key, Side.STABLE)
        except Exception as error:  # any store failure: keep the latch, retry, make it visible
            record.flag_error = runtime.flag_write_error = f"{type(error).__name__}: {error}"
            logger.error(
                "rollback of %r latched locally but writing flag %r to %s failed (attempt %d): %s",
                runtime.config.model_group,
                runtime.config.flag_key,
                self._store.describe(),
                runtime.flag_write_attempts,
                record.flag_error,
            )
            return False
        record.flag_written_mono = self._clock()
        record.flag_error = runtime.flag_write_error = None
        runtime.flag_write_pending = False
        runtime.flag_written.set()
        return True

    def _retry_write(self, runtime: RolloutRuntime, record: RollbackRecord, generation: int) -> None:
        delay = self._retry_initial_s
        while not self._closed.wait(delay):
            if runtime.generation != generation or not runtime.rolled_back:
                return
            if self._try_write(runtime, record):
                logger.warning(
                    "flag %r written after %d attempts", runtime.config.flag_key, runtime.flag_write_attempts
                )
                return
            delay = min(delay * 2, self._retry_max_s)

    # -- events ----------------------------------------------------------------------------------

    def _emit(self, record: RollbackRecord) -> None:
        # Reason and cause come from outside (operators, alerts): no secret reaches a log or a span.
        reason = scrub(record.reason)
        event = {**record.as_dict(), "reason": reason, "cause": scrub_value(record.as_dict()["cause"])}
        logger.warning(
            "canary rollback of %r (%s%s): %s",
            record.model_group,
            record.kind,
            f", broadcast from {record.origin}" if record.origin else "",
            reason,
            extra={"litellm_canary_rollback": event},
        )
        attributes: dict[str, str | int | float | bool] = {
            "litellm_canary.model_group": record.model_group,
            "litellm_canary.kind": record.kind,
            "litellm_canary.reason": reason,
            "litellm_canary.in_flight_canary": record.in_flight_at_flip[Side.CANARY.value],
        }
        for key, value in (record.cause or {}).items():
            if isinstance(value, str):
                attributes[f"litellm_canary.cause.{key}"] = scrub(value)
            elif isinstance(value, int | float | bool):
                attributes[f"litellm_canary.cause.{key}"] = value
        with _tracer.start_as_current_span("litellm_canary.rollback", attributes=attributes) as span:
            span.add_event("rollback", attributes=attributes)
        self.rollbacks.emit(record)

"""Turning rollbacks into incidents: :class:`IncidentRecorder` and :func:`incident_from_record`.

The recorder writes an incident per rollback it is handed (:meth:`IncidentRecorder.record`, on the
rollback path: two small files), later records the drain, the verification and the picture, and
keeps what the directory could not take in memory, retried with backoff. It receives narrow callables
(``drained``, the ``connect`` functions of the rollback and decision signals), never the canary.

Safety: incidents are built only from whitelisted fields of a :class:`RollbackRecord` — never from a
request — and every string taken from ``cause`` or ``reason`` is scrubbed.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litellm_canary.core.decision import Decision, Reason, Side
from litellm_canary.core.redact import scrub
from litellm_canary.response.incidents.model import (
    TIMELINE_ORDER,
    Incident,
    IncidentNotFound,
    TimelineEvent,
    TimelineSeries,
    Traffic,
    Trigger,
    new_incident_id,
    parse_wall,
    safe_mapping,
    timeline_event,
    verify_change,
    with_event,
)
from litellm_canary.response.incidents.store import IncidentStore

if TYPE_CHECKING:
    from litellm_canary.core.controller import RollbackRecord

logger = logging.getLogger("litellm_canary.incidents")

__all__ = ["DecisionListener", "Drained", "IncidentRecorder", "RollbackListener", "incident_from_record"]

_MAX_KNOWN = 64  # incidents whose last version the recorder keeps (the base of a change that fails)

#: ``await drained(model_group, timeout)``: True once the canary has nothing in flight (False on timeout).
Drained = Callable[[str, float | None], Awaitable[bool]]
RollbackListener = Callable[["RollbackRecord"], None]
DecisionListener = Callable[[str, Decision, str], None]


# -- building an incident from a rollback ----------------------------------------------------------


def _trigger(record: RollbackRecord) -> Trigger:
    cause = safe_mapping(record.cause or {})
    rule = cause.pop("rule", None)
    summary = cause.pop("summary", None)
    threshold = cause.pop("threshold", None)
    window_s = cause.pop("window_s", None)
    min_samples = cause.pop("min_samples", None)
    for key in ("breaching_since", "state"):  # in the timeline; always "firing"
        cause.pop(key, None)
    if rule is None and "alertname" in cause:
        rule = cause.pop("alertname")
    return Trigger(
        rule=None if rule is None else str(rule),
        summary=None if summary is None else str(summary),
        reason=scrub(record.reason),
        threshold=threshold
        if isinstance(threshold, int | float) and not isinstance(threshold, bool)
        else None,
        window_s=window_s if isinstance(window_s, int | float) and not isinstance(window_s, bool) else None,
        min_samples=min_samples
        if isinstance(min_samples, int) and not isinstance(min_samples, bool)
        else None,
        observed=cause,
    )


def incident_from_record(record: RollbackRecord, *, incident_id: str | None = None) -> Incident:
    """An :class:`Incident` from whitelisted fields of ``record`` (monotonic times become wall times)."""
    decided_wall = parse_wall(record.decided_at)
    timeline: list[TimelineEvent] = [timeline_event("decision", decided_wall, 0.0, scrub(record.kind))]
    breaching_since = (record.cause or {}).get("breaching_since")
    if isinstance(breaching_since, int | float) and not isinstance(breaching_since, bool):
        offset = float(breaching_since) - record.decided_mono
        if math.isfinite(offset):
            timeline.append(timeline_event("first_breach", decided_wall, offset, "rule first breached"))
    latch_s = record.latched_mono - record.decided_mono
    timeline.append(timeline_event("latch", decided_wall, latch_s, "new requests go to stable"))
    if record.flag_written_mono is not None:
        timeline.append(
            timeline_event(
                "flag_written",
                decided_wall,
                record.flag_written_mono - record.decided_mono,
                record.flag_store,
            )
        )
    order = {name: i for i, name in enumerate(TIMELINE_ORDER)}
    timeline.sort(key=lambda e: (e.offset_ms, order[e.event]))
    return Incident(
        id=incident_id or new_incident_id(record.decided_at),
        model_group=record.model_group,
        kind=record.kind,
        decided_at=record.decided_at,
        trigger=_trigger(record),
        timeline=timeline,
        restored_after_ms=round(latch_s * 1e3, 3),
        flag_store=record.flag_store,
        flag_error=None if record.flag_error is None else scrub(record.flag_error),
        traffic=Traffic(
            canary_decisions_after_flip=0,
            draining_decisions_after_flip=0,
            in_flight_at_flip={str(k): int(v) for k, v in record.in_flight_at_flip.items()},
            canary_attempts=record.canary_attempts.as_dict(),
        ),
    )


# -- the recorder ----------------------------------------------------------------------------------


@dataclass
class _Unwritten:
    """An incident (or changes to one) the directory could not take yet: kept here, retried."""

    model_group: str
    incident: Incident  # the latest version, every change applied (written whole if the file is gone)
    on_disk: bool  # an earlier version is on disk: the changes are merged into it (keeps annotations)
    changes: list[Callable[[Incident], Incident]]
    series: TimelineSeries | None
    error: str
    attempts: int = 1
    due: float = 0.0


class IncidentRecorder:
    """Writes an incident for every rollback it is handed (on the rollback path: two small files).

    Hand it rollbacks either by calling :meth:`record` (the post-rollback follow-up does, so the
    incident exists before the follow-up starts) or by giving ``on_rollback``, the ``connect`` of a
    rollback signal. ``on_decision`` (the ``connect`` of the decision signal) lets it count the
    decisions still sent to the canary after the flip; without it the caller hands those counts to
    :meth:`complete`. ``drained`` is awaited by :meth:`complete` unless the caller awaited the drain.

    A write that fails (disk full, directory gone or read-only) never costs the record: the incident
    is kept in memory, counted (:meth:`status`), and written by :meth:`retry_unwritten` with backoff
    (``retry_initial_s`` doubling up to ``retry_max_s``) once the directory works again. At most
    ``max_unwritten`` incidents wait; beyond that the oldest is dropped, logged and counted.
    """

    def __init__(
        self,
        store: IncidentStore,
        *,
        drained: Drained | None = None,
        on_rollback: Callable[[RollbackListener], object] | None = None,
        on_decision: Callable[[DecisionListener], object] | None = None,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        max_unwritten: int = 100,
    ) -> None:
        self.store = store
        self._drained = drained
        self._wall_clock = wall_clock
        self._clock = clock
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._max_unwritten = max_unwritten
        self._open: dict[str, tuple[str, RollbackRecord]] = {}
        self._known: dict[str, Incident] = {}  # the latest incidents, as last written (oldest first)
        self._after_flip: dict[str, list[int]] = {}  # group -> [canary, draining] decisions since the flip
        self._unwritten: dict[str, _Unwritten] = {}  # incident id -> what waits (oldest first)
        self._lock = threading.RLock()
        self._all_written = threading.Condition(self._lock)  # notified when nothing waits any more
        self._flush_lock = threading.Lock()
        self.write_errors: collections.Counter[str] = collections.Counter()  # per model group
        self.dropped: collections.Counter[str] = collections.Counter()  # per model group
        self.last_write_error: dict[str, str] = {}
        #: Called (with no argument) when an incident starts waiting: schedule :meth:`retry_unwritten`.
        self.on_unwritten: Callable[[], None] | None = None
        if on_decision is not None:
            on_decision(self._on_decision)
        if on_rollback is not None:
            on_rollback(self._on_rollback)

    def incident_id(self, model_group: str) -> str | None:
        """The id of the latest incident of ``model_group`` this recorder wrote (or keeps to write)."""
        entry = self._open.get(model_group)
        return None if entry is None else entry[0]

    def status(self, model_group: str) -> dict[str, Any]:
        """Incident writes of ``model_group``: failures so far, what still waits, the last error."""
        with self._lock:
            waiting = [u for u in self._unwritten.values() if u.model_group == model_group]
            entry = self._open.get(model_group)
            return {
                "incident_written": None if entry is None else entry[0] not in self._unwritten,
                "incident_write_errors": self.write_errors[model_group],
                "incident_write_error": self.last_write_error.get(model_group) if waiting else None,
                "incidents_unwritten": len(waiting),
                "incidents_dropped": self.dropped[model_group],
            }

    def _on_decision(self, model_group: str, decision: Decision, deployment_id: str) -> None:
        counts = self._after_flip.get(model_group)
        if counts is not None and decision.side is Side.CANARY:
            counts[1 if decision.reason is Reason.DRAINING else 0] += 1

    def _on_rollback(self, record: RollbackRecord) -> None:
        self.record(record)

    def record(self, record: RollbackRecord) -> str | None:
        """Write the incident of ``record`` now; its id (``None``: a repeat, or a rollback mirrored
        from the replica that decided it, and records it)."""
        if record.repeated or record.origin is not None:
            return None
        self._after_flip[record.model_group] = [0, 0]
        incident = incident_from_record(record)
        with self._lock:
            self._open[record.model_group] = (incident.id, record)
            self._known[incident.id] = incident
            while len(self._known) > _MAX_KNOWN:  # a late change to an older one still has its base
                del self._known[next(iter(self._known))]
        try:
            self._known[incident.id] = self.store.write(incident)
        except Exception as error:
            self._keep(record.model_group, incident, on_disk=False, change=None, series=None, error=error)
        return incident.id

    # -- writes that may fail --------------------------------------------------------------------

    def _keep(
        self,
        model_group: str,
        incident: Incident,
        *,
        on_disk: bool,
        change: Callable[[Incident], Incident] | None,
        series: TimelineSeries | None,
        error: BaseException,
    ) -> None:
        text = f"{type(error).__name__}: {error}"
        logger.error(
            "could not write incident %s of %r (kept in memory, retried): %s", incident.id, model_group, text
        )
        with self._lock:
            self.write_errors[model_group] += 1
            self.last_write_error[model_group] = text
            self._unwritten[incident.id] = _Unwritten(
                model_group,
                incident,
                on_disk,
                [] if change is None else [change],
                series,
                text,
                due=self._clock() + self.retry_initial_s,
            )
            while len(self._unwritten) > self._max_unwritten:
                oldest = next(iter(self._unwritten))
                dropped = self._unwritten.pop(oldest)
                self.dropped[dropped.model_group] += 1
                logger.error("incident %s dropped unwritten: too many incidents wait", oldest)
        if self.on_unwritten is not None:
            try:
                self.on_unwritten()
            except Exception:
                logger.exception("could not schedule the incident retry")

    def _apply(
        self,
        incident_id: str,
        *,
        change: Callable[[Incident], Incident] | None = None,
        series: TimelineSeries | None = None,
    ) -> Incident:
        """Apply ``change`` to the incident (and its picture with ``series``); kept in memory and
        retried if the directory fails. Returns the incident as written, or as kept in memory."""
        with self._lock:
            waiting = self._unwritten.get(incident_id)
            if waiting is not None:
                if change is not None:
                    waiting.changes.append(change)
                    waiting.incident = change(waiting.incident)
                waiting.series = series or waiting.series
                waiting.due = min(waiting.due, self._clock())  # try now: the directory may be back
        if waiting is not None:
            self.retry_unwritten()
            unwritten = incident_id in self._unwritten
            return waiting.incident if unwritten else self._known.get(incident_id, waiting.incident)
        try:
            written = self.store.update(incident_id, change=change, series=series)
        except Exception as error:
            base = self._known.get(incident_id)
            if base is None:
                raise
            kept = base if change is None else change(base)
            self._keep(base.model_group, kept, on_disk=True, change=change, series=series, error=error)
            return kept
        with self._lock:
            if incident_id in self._known:
                self._known[incident_id] = written
        return written

    def retry_unwritten(self) -> float | None:
        """Write every waiting incident that is due; seconds until the next is due (``None``: none wait)."""
        with self._flush_lock:  # one flush at a time (the worker's retries, a change arriving)
            now = self._clock()
            with self._lock:
                due = [(key, u) for key, u in self._unwritten.items() if u.due <= now]
            for incident_id, waiting in due:
                self._flush(incident_id, waiting)
        with self._lock:
            if not self._unwritten:
                self._all_written.notify_all()
                return None
            return max(min(u.due for u in self._unwritten.values()) - self._clock(), 0.0)

    def _flush(self, incident_id: str, waiting: _Unwritten) -> None:
        with self._lock:  # a snapshot: changes may keep arriving while the files are written
            changes, incident, series = list(waiting.changes), waiting.incident, waiting.series
            on_disk = waiting.on_disk
        try:
            if on_disk and self.store._path(incident_id, ".json").is_file():

                def merged(current: Incident) -> Incident:
                    for change in changes:
                        current = change(current)
                    return current

                written = self.store.update(incident_id, change=merged, series=series)
            else:
                written = self.store.write(incident, series=series)
        except Exception as error:
            with self._lock:
                waiting.attempts += 1
                waiting.error = f"{type(error).__name__}: {error}"
                self.last_write_error[waiting.model_group] = waiting.error
                backoff = self.retry_initial_s * 2 ** (waiting.attempts - 1)
                waiting.due = self._clock() + min(backoff, self.retry_max_s)
            return
        with self._lock:
            if incident_id in self._known:
                self._known[incident_id] = written
            if len(waiting.changes) > len(changes) or waiting.series is not series:
                # changed meanwhile: the rest is merged into what is now on disk, at once
                waiting.changes = waiting.changes[len(changes) :]
                waiting.on_disk, waiting.due = True, self._clock()
                return
            if self._unwritten.get(incident_id) is waiting:
                del self._unwritten[incident_id]
        logger.warning("incident %s written after %d failed attempt(s)", incident_id, waiting.attempts)

    def wait_written(self, timeout: float | None = None) -> bool:
        """Block until no incident waits to be written (False on timeout)."""
        with self._lock:
            return self._all_written.wait_for(lambda: not self._unwritten, timeout)

    # -- changes after the rollback --------------------------------------------------------------

    def verify(
        self,
        incident_id: str,
        verdict: str,
        results: Mapping[str, Any] | None = None,
        *,
        detail: str | None = None,
    ) -> Incident:
        """Record the verification verdict (see :meth:`IncidentStore.verify`); retried if it fails."""
        return self._apply(incident_id, change=verify_change(verdict, results, detail))

    def add_picture(self, incident_id: str, series: TimelineSeries) -> Incident:
        """Add the timeline picture drawn from ``series``; retried if the write fails."""
        return self._apply(incident_id, series=series)

    async def complete(
        self,
        model_group: str,
        *,
        drain_timeout: float | None,
        series: TimelineSeries | None = None,
        drained: bool | None = None,
        decisions_after_flip: tuple[int, int] | None = None,
    ) -> Incident:
        """Await the canary's drain, then record it with the final traffic facts (and the flag write,
        if the store was only written by a background retry). ``drained`` given: the caller has
        already awaited the drain (``drain_timeout`` is then only reported). ``decisions_after_flip``
        (canary, conversation-drain) given: the caller's counts instead of this recorder's.
        If the directory fails, the incident is kept in memory (and returned) and retried."""
        entry = self._open.get(model_group)
        if entry is None:
            raise IncidentNotFound(f"no incident recorded for model group {model_group!r}")
        incident_id, record = entry
        if drained is None:
            if self._drained is None:
                raise ValueError("complete() needs drained=... when the recorder was given no drained()")
            drained = await self._drained(model_group, drain_timeout)
        drained_wall = self._wall_clock()
        counts = decisions_after_flip or tuple(self._after_flip.get(model_group, (0, 0)))

        def change(incident: Incident) -> Incident:
            decided_wall = parse_wall(incident.decided_at)
            timeline = incident.timeline
            if record.flag_written_mono is not None:
                offset = record.flag_written_mono - record.decided_mono
                timeline = with_event(
                    timeline, timeline_event("flag_written", decided_wall, offset, record.flag_store)
                )
            detail = "no canary attempt or pin left" if drained else f"not drained after {drain_timeout} s"
            name = "canary_drained" if drained else "drain_timeout"
            timeline = with_event(
                timeline, timeline_event(name, decided_wall, drained_wall - decided_wall, detail)
            )
            traffic = incident.traffic.model_copy(
                update={
                    "canary_decisions_after_flip": counts[0],
                    "draining_decisions_after_flip": counts[1],
                    "canary_attempts": record.canary_attempts.as_dict(),
                }
            )
            flag_error = None if record.flag_error is None else scrub(record.flag_error)
            return incident.model_copy(
                update={"timeline": timeline, "traffic": traffic, "flag_error": flag_error}
            )

        return self._apply(incident_id, change=change, series=series)

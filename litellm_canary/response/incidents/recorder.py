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
import time
from collections.abc import Awaitable, Callable, Mapping
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
from litellm_canary.response.incidents.pending_writes import PendingWrites
from litellm_canary.response.incidents.store import IncidentStore

if TYPE_CHECKING:
    from litellm_canary.core.rollback_record import RollbackRecord

logger = logging.getLogger("litellm_canary.incidents")

__all__ = ["DecisionListener", "Drained", "IncidentRecorder", "RollbackListener", "incident_from_record"]


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


class IncidentRecorder:
    """Writes an incident for every rollback it is handed (on the rollback path: two small files).

    Hand it rollbacks either by calling :meth:`record` (the post-rollback follow-up does, so the
    incident exists before the follow-up starts) or by giving ``on_rollback``, the ``connect`` of a
    rollback signal. ``on_decision`` (the ``connect`` of the decision signal) lets it count the
    decisions still sent to the canary after the flip; without it the caller hands those counts to
    :meth:`complete`. ``drained`` is awaited by :meth:`complete` unless the caller awaited the drain.

    A write that fails (disk full, directory gone or read-only) never costs the record: ``pending``
    (:class:`PendingWrites`) keeps it in memory, counts it (:meth:`status`) and writes it with backoff
    (:meth:`retry_unwritten`) once the directory works again.
    """

    def __init__(
        self,
        store: IncidentStore,
        *,
        drained: Drained | None = None,
        on_rollback: Callable[[RollbackListener], object] | None = None,
        on_decision: Callable[[DecisionListener], object] | None = None,
        wall_clock: Callable[[], float] = time.time,
        pending: PendingWrites | None = None,
    ) -> None:
        self.store = store
        #: The writes: what the directory cannot take waits here (``PendingWrites(store)`` by default).
        self.pending = PendingWrites(store) if pending is None else pending
        self._drained = drained
        self._wall_clock = wall_clock
        self._open: dict[str, tuple[str, RollbackRecord]] = {}
        self._after_flip: dict[str, list[int]] = {}  # group -> [canary, draining] decisions since the flip
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
        return self.pending.status(model_group, self.incident_id(model_group))

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
        self._open[record.model_group] = (incident.id, record)
        self.pending.write(record.model_group, incident)
        return incident.id

    # -- pending writes (kept in memory and retried: :class:`PendingWrites`) -------------------------

    @property
    def write_errors(self) -> collections.Counter[str]:
        """Failed incident writes per model group."""
        return self.pending.write_errors

    def retry_unwritten(self) -> float | None:
        """Write every waiting incident that is due; seconds until the next is due (``None``: none wait)."""
        return self.pending.retry_unwritten()

    def wait_written(self, timeout: float | None = None) -> bool:
        """Block until no incident waits to be written (False on timeout)."""
        return self.pending.wait_written(timeout)

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
        return self.pending.apply(incident_id, change=verify_change(verdict, results, detail))

    def add_picture(self, incident_id: str, series: TimelineSeries) -> Incident:
        """Add the timeline picture drawn from ``series``; retried if the write fails."""
        return self.pending.apply(incident_id, series=series)

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

        return self.pending.apply(incident_id, change=change, series=series)

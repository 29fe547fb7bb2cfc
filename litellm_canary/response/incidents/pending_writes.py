"""Incident writes that never cost the record: what the directory cannot take waits in memory, retried.

:class:`PendingWrites` sits in front of an :class:`~litellm_canary.response.incidents.store.IncidentStore`:
a write or change that fails (disk full, directory gone or read-only) is kept, counted, and written
with backoff once the directory works again (:meth:`PendingWrites.retry_unwritten`).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litellm_canary.response.incidents.model import Incident, TimelineSeries
from litellm_canary.response.incidents.store import IncidentStore

logger = logging.getLogger("litellm_canary.incidents")

__all__ = ["PendingWrites"]

_MAX_KNOWN = 64  # incidents whose last version is kept (the base of a change that fails)


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


class PendingWrites:
    """Writes to ``store`` that never cost the record: an incident (or a change to one) the directory
    cannot take (disk full, directory gone or read-only) is kept in memory, counted (:meth:`status`),
    and written by :meth:`retry_unwritten` with backoff (``retry_initial_s`` doubling up to
    ``retry_max_s``) once the directory works again. At most ``max_unwritten`` incidents wait; beyond
    that the oldest is dropped, logged and counted."""

    def __init__(
        self,
        store: IncidentStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        max_unwritten: int = 100,
    ) -> None:
        self.store = store
        self._clock = clock
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._max_unwritten = max_unwritten
        self._known: dict[str, Incident] = {}  # the latest incidents, as last written (oldest first)
        self._unwritten: dict[str, _Unwritten] = {}  # incident id -> what waits (oldest first)
        self._lock = threading.RLock()
        self._all_written = threading.Condition(self._lock)  # notified when nothing waits any more
        self._flush_lock = threading.Lock()
        self.write_errors: collections.Counter[str] = collections.Counter()  # per model group
        self.dropped: collections.Counter[str] = collections.Counter()  # per model group
        self.last_write_error: dict[str, str] = {}
        #: Called (with no argument) when an incident starts waiting: schedule :meth:`retry_unwritten`.
        self.on_unwritten: Callable[[], None] | None = None

    def write(self, model_group: str, incident: Incident) -> None:
        """Write a new incident (kept and retried if the directory fails)."""
        with self._lock:
            self._known[incident.id] = incident
            while len(self._known) > _MAX_KNOWN:  # a late change to an older one still has its base
                del self._known[next(iter(self._known))]
        try:
            self._known[incident.id] = self.store.write(incident)
        except Exception as error:
            self._keep(model_group, incident, on_disk=False, change=None, series=None, error=error)

    def status(self, model_group: str, incident_id: str | None) -> dict[str, Any]:
        """Writes of ``model_group``: is ``incident_id`` written, failures so far, what still waits."""
        with self._lock:
            waiting = [u for u in self._unwritten.values() if u.model_group == model_group]
            return {
                "incident_written": None if incident_id is None else incident_id not in self._unwritten,
                "incident_write_errors": self.write_errors[model_group],
                "incident_write_error": self.last_write_error.get(model_group) if waiting else None,
                "incidents_unwritten": len(waiting),
                "incidents_dropped": self.dropped[model_group],
            }

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

    def apply(
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

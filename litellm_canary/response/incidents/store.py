"""The incident directory: ``<id>.json`` (the source of truth), ``<id>.md`` and maybe ``<id>.png``.

Each file is written atomically (:func:`atomic_write`: temp file in the same directory, fsync,
``os.replace``, fsync of the directory): a crash leaves the previous version, never half a file.
Read-modify-write (:meth:`IncidentStore.update`) holds a lock, also across processes. It imports no
LiteLLM: the command line can list and show incidents without loading the Router.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

from litellm_canary.core.redact import clean_text
from litellm_canary.response.incidents.model import (
    ID_RE,
    MAX_NOTE,
    Incident,
    IncidentNotFound,
    IncidentSummary,
    TimelineSeries,
    iso_time,
    parse_wall,
    timeline_event,
    verify_change,
    with_event,
)
from litellm_canary.response.incidents.report import matplotlib_available, render_markdown, render_picture

logger = logging.getLogger("litellm_canary.incidents")

__all__ = ["IncidentStore", "atomic_write"]

# The module's own references, so that tests can simulate a crash at exactly this step.
_replace = os.replace
_fsync = os.fsync

# ``<id>.series``: the data of ``<id>.png``, to redraw it when the drill or verification arrives
SERIES_SUFFIX = ".series"


# -- the store -------------------------------------------------------------------------------------


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform / filesystem can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            _fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a mix."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            _fsync(handle.fileno())
        _replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(path.parent)


class IncidentStore:
    """A directory of incidents: ``<id>.json`` (source of truth), ``<id>.md`` and maybe ``<id>.png``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()

    def _path(self, incident_id: str, suffix: str) -> Path:
        return self.directory / f"{incident_id}{suffix}"

    def _check_id(self, incident_id: str) -> None:
        if not isinstance(incident_id, str) or not ID_RE.match(incident_id):
            raise IncidentNotFound(
                f"no incident {incident_id!r}: not an incident id (like 20260101T120000000Z-a1b2c3)"
            )
        if not self._path(incident_id, ".json").is_file():
            raise IncidentNotFound(f"no incident {incident_id!r} in {self.directory}")

    def write(self, incident: Incident, *, series: TimelineSeries | None = None) -> Incident:
        """Write (or replace) ``incident``'s files; with ``series``, also the timeline picture if possible."""
        if not ID_RE.match(incident.id):
            raise ValueError(f"not an incident id: {incident.id!r}")
        self.directory.mkdir(parents=True, exist_ok=True)
        if series is not None:
            incident = self._with_picture(incident, series)
        data = json.dumps(incident.model_dump(mode="json"), indent=2, sort_keys=True, allow_nan=False)
        atomic_write(self._path(incident.id, ".json"), data.encode() + b"\n")
        # Every text was cleaned on its way in; "replace" is the last guard (a report is never lost
        # for one character that cannot be encoded).
        atomic_write(self._path(incident.id, ".md"), render_markdown(incident).encode(errors="replace"))
        return incident

    def _with_picture(self, incident: Incident, series: TimelineSeries) -> Incident:
        if not matplotlib_available():
            return incident.model_copy(
                update={
                    "picture": None,
                    "picture_note": "Timeline picture skipped: matplotlib is not installed.",
                }
            )
        try:
            png = render_picture(incident, series)
        except Exception as error:  # a picture must never cost the incident
            logger.exception("timeline picture of incident %s failed", incident.id)
            return incident.model_copy(
                update={"picture": None, "picture_note": f"Timeline picture failed: {type(error).__name__}."}
            )
        name = f"{incident.id}.png"
        atomic_write(self.directory / name, png)
        # kept so that the picture is redrawn when its title or lines change (drill, verification)
        atomic_write(self._series_path(incident.id), series.model_dump_json().encode())
        return incident.model_copy(update={"picture": name, "picture_note": None})

    def _series_path(self, incident_id: str) -> Path:
        return self.directory / f"{incident_id}{SERIES_SUFFIX}"

    def _saved_series(self, incident_id: str) -> TimelineSeries | None:
        try:
            return TimelineSeries.model_validate_json(self._series_path(incident_id).read_bytes())
        except (OSError, ValueError):
            return None

    def get(self, incident_id: str) -> Incident:
        self._check_id(incident_id)
        return Incident.model_validate_json(self._path(incident_id, ".json").read_bytes())

    def list(self) -> list[IncidentSummary]:
        """Every readable incident, newest first (an unreadable file is logged and skipped)."""
        if not self.directory.is_dir():
            return []
        summaries: list[IncidentSummary] = []
        for path in self.directory.glob("*.json"):
            if not ID_RE.match(path.stem):
                continue
            try:
                incident = Incident.model_validate_json(path.read_bytes())
            except (OSError, ValueError):
                logger.warning("skipping unreadable incident file %s", path)
                continue
            summaries.append(
                IncidentSummary(
                    id=incident.id,
                    model_group=incident.model_group,
                    kind=incident.kind,
                    decided_at=incident.decided_at,
                    rule=incident.trigger.rule,
                    summary=incident.trigger.summary or incident.trigger.reason,
                    annotated=bool(incident.actual_cause or incident.what_would_change),
                )
            )
        return sorted(summaries, key=lambda s: s.id, reverse=True)

    def update(
        self,
        incident_id: str,
        *,
        series: TimelineSeries | None = None,
        change: Callable[[Incident], Incident] | None = None,
        **fields: Any,
    ) -> Incident:
        """Read-modify-write one incident under a lock (also across processes): set ``fields``
        (validated), then apply ``change``; rewrite both files (and the picture with ``series``)."""
        unknown = set(fields) - set(Incident.model_fields) | ({"id"} & set(fields))
        if unknown:
            raise ValueError(f"cannot update incident field(s) {sorted(unknown)}")
        self._check_id(incident_id)
        with self._lock, FileLock(str(self.directory / ".incidents.lock"), timeout=10):
            current = self.get(incident_id)
            updated = Incident.model_validate({**current.model_dump(), **fields})
            if change is not None:
                updated = change(updated)
            redraw = (updated.drill, updated.verification) != (current.drill, current.verification)
            if series is None and updated.picture and redraw:
                series = self._saved_series(incident_id)
            return self.write(updated, series=series)

    def annotate(self, incident_id: str, cause: str, change: str) -> Incident:
        """Fill in the two human sections (both files are rewritten)."""
        return self.update(
            incident_id,
            actual_cause=clean_text(cause.strip(), MAX_NOTE),
            what_would_change=clean_text(change.strip(), MAX_NOTE),
            annotated_at=iso_time(time.time()),
        )

    def add_event(self, incident_id: str, name: str, wall: float, detail: str | None = None) -> Incident:
        """Add (or replace) the timeline event ``name`` at wall-clock time ``wall``."""

        def change(incident: Incident) -> Incident:
            decided_wall = parse_wall(incident.decided_at)
            event = timeline_event(name, decided_wall, wall - decided_wall, detail)
            return incident.model_copy(update={"timeline": with_event(incident.timeline, event)})

        return self.update(incident_id, change=change)

    def verify(
        self,
        incident_id: str,
        verdict: str,
        results: Mapping[str, Any] | None = None,
        *,
        detail: str | None = None,
    ) -> Incident:
        """Record the verification verdict (a timeline event, ``detail`` or the verdict) and its results."""
        return self.update(incident_id, change=verify_change(verdict, results, detail))

"""Incident records: one durable, human-readable record per rollback, written the moment it happens.

This module owns the incident file format and everything that reads or writes it:

* :class:`Incident` — what one rollback was (trigger, timeline, traffic facts, verification) plus two
  human sections (``actual_cause``, ``what_would_change``) filled in later by :meth:`IncidentStore.annotate`.
* :class:`IncidentStore` — a directory of ``<id>.json`` (the source of truth) and ``<id>.md`` (a
  report rendered from it), each written atomically (temp file in the same directory, fsync,
  ``os.replace``, fsync of the directory): a crash leaves the previous version, never half a file.
* :class:`IncidentRecorder` — registers on a canary's rollback path and writes an incident per
  rollback; :meth:`IncidentRecorder.complete` later records the drain.
* ``list_command`` / ``show_command`` / ``annotate_command`` — plain functions for the CLI.

Safety: incidents are built only from whitelisted fields of a :class:`RollbackRecord` — never from a
request — and every string taken from ``cause`` or ``reason`` is scrubbed of anything that looks like
a secret (``sk-…`` keys, ``Bearer …`` tokens, ``key=…`` pairs, long hex/base64 tokens). Keys that
name secrets, prompts or headers are dropped outright. Every stored text is cleaned (lone surrogates,
control characters) and capped (:func:`litellm_canary.redact.clean_text`; annotations at
:data:`MAX_NOTE` characters).

It imports no LiteLLM: the command line can list and show incidents without loading the Router.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import logging
import math
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field

from litellm_canary.core.decision import Decision, Reason, Side
from litellm_canary.core.redact import clean_text, scrub

if TYPE_CHECKING:
    from litellm_canary.canary import Canary
    from litellm_canary.core.rollback_record import RollbackRecord

logger = logging.getLogger("litellm_canary.incidents")

__all__ = [
    "Incident",
    "IncidentNotFound",
    "IncidentRecorder",
    "IncidentStore",
    "IncidentSummary",
    "TimelineEvent",
    "TimelineSeries",
    "Traffic",
    "Trigger",
    "annotate_command",
    "atomic_write",
    "incident_from_record",
    "list_command",
    "new_incident_id",
    "render_markdown",
    "scrub",
    "show_command",
]

# The module's own references, so that tests can simulate a crash at exactly this step.
_replace = os.replace
_fsync = os.fsync

IncidentKind = Literal["manual", "automatic", "alert", "drill"]

_ID_RE = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]{6}$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_SENSITIVE_KEY_RE = re.compile(
    r"(?i)(api[_-]?key|secret|token|passw|authori[sz]ation|bearer|cookie|header|credential|"
    r"prompt|message|content|^key$|_key$)"
)
_MAX_LIST = 50
_MAX_KNOWN = 64  # incidents whose last version the recorder keeps (the base of a change that fails)
MAX_NOTE = 10_000  # characters of each human section (actual cause, what would change)


def _safe_value(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, scrubbed copy of one cause value; ``...`` (Ellipsis) when it must be dropped."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return scrub(value)
    if depth >= 1:
        return ...
    if isinstance(value, Mapping):
        return _safe_mapping(value, depth + 1)
    if isinstance(value, list | tuple | set | frozenset):
        items = [_safe_value(v, depth + 1) for v in list(value)[:_MAX_LIST]]
        return [v for v in items if v is not ...]
    return ...


def _safe_mapping(mapping: Mapping[Any, Any], depth: int = 0) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not _KEY_RE.match(key) or _SENSITIVE_KEY_RE.search(key):
            continue
        cleaned = _safe_value(value, depth)
        if cleaned is not ...:
            safe[key] = cleaned
    return safe


# -- the model -------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Trigger(_Model):
    """What fired: the rule with its threshold, window and sample sizes, and the observed values."""

    rule: str | None = None
    summary: str | None = None
    reason: str = ""
    threshold: float | None = None
    window_s: float | None = None
    min_samples: int | None = None
    observed: dict[str, Any] = Field(default_factory=dict)


class TimelineEvent(_Model):
    """One step: ``at`` is ISO wall-clock time (UTC), ``offset_ms`` is relative to the decision."""

    event: str
    at: str
    offset_ms: float
    detail: str | None = None


class Traffic(_Model):
    """What traffic did around the flip."""

    canary_decisions_after_flip: int | None = None  # expected 0 (conversation drain counted apart)
    draining_decisions_after_flip: int | None = None
    in_flight_at_flip: dict[str, int] = Field(default_factory=dict)
    canary_attempts: dict[str, int] = Field(default_factory=dict)  # at_flip/completed/failed/expired/pending


class TimelineSeries(_Model):
    """Optional metric series for the timeline picture; ``t_s`` is seconds relative to the decision."""

    t_s: list[float]
    canary_error_rate: list[float | None] | None = None
    stable_error_rate: list[float | None] | None = None
    canary_ttft_p99_ms: list[float | None] | None = None
    stable_ttft_p99_ms: list[float | None] | None = None


class Incident(_Model):
    id: str
    model_group: str
    kind: IncidentKind
    decided_at: str
    trigger: Trigger
    timeline: list[TimelineEvent]
    restored_after_ms: float  # decision -> latch: from here on no new request is decided canary
    flag_store: str | None = None
    flag_error: str | None = None
    traffic: Traffic = Field(default_factory=Traffic)
    verification: dict[str, Any] | None = None
    drill: dict[str, Any] | None = None  # a drill's measurements and whether it met the standards
    picture: str | None = None  # file name of the timeline PNG, next to the incident
    picture_note: str | None = None  # why there is no picture
    actual_cause: str = ""
    what_would_change: str = ""
    annotated_at: str | None = None

    def event(self, name: str) -> TimelineEvent | None:
        return next((e for e in self.timeline if e.event == name), None)


class IncidentSummary(_Model):
    id: str
    model_group: str
    kind: IncidentKind
    decided_at: str
    rule: str | None
    summary: str
    annotated: bool


class IncidentNotFound(KeyError):
    """No incident with this id in the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown incident"


# -- building an incident from a rollback ----------------------------------------------------------

_TIMELINE_ORDER = ("first_breach", "decision", "latch", "flag_written", "canary_drained", "verification")


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")


def _parse_wall(iso: str) -> float:
    parsed = datetime.fromisoformat(iso)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def new_incident_id(decided_at: str) -> str:
    """A sortable id: the decision's UTC time to the millisecond plus a short random suffix."""
    moment = datetime.fromisoformat(decided_at).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def _event(name: str, decided_wall: float, offset_s: float, detail: str | None = None) -> TimelineEvent:
    return TimelineEvent(
        event=name,
        at=_iso(decided_wall + offset_s),
        offset_ms=round(offset_s * 1e3, 3),
        detail=None if detail is None else clean_text(detail),
    )


def _with_event(timeline: list[TimelineEvent], event: TimelineEvent) -> list[TimelineEvent]:
    events = [e for e in timeline if e.event != event.event] + [event]
    order = {name: i for i, name in enumerate(_TIMELINE_ORDER)}
    return sorted(events, key=lambda e: (e.offset_ms, order.get(e.event, len(order))))


def _trigger(record: RollbackRecord) -> Trigger:
    cause = _safe_mapping(record.cause or {})
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
    decided_wall = _parse_wall(record.decided_at)
    timeline: list[TimelineEvent] = [_event("decision", decided_wall, 0.0, scrub(record.kind))]
    breaching_since = (record.cause or {}).get("breaching_since")
    if isinstance(breaching_since, int | float) and not isinstance(breaching_since, bool):
        offset = float(breaching_since) - record.decided_mono
        if math.isfinite(offset):
            timeline.append(_event("first_breach", decided_wall, offset, "rule first breached"))
    latch_s = record.latched_mono - record.decided_mono
    timeline.append(_event("latch", decided_wall, latch_s, "new requests go to stable"))
    if record.flag_written_mono is not None:
        timeline.append(
            _event(
                "flag_written",
                decided_wall,
                record.flag_written_mono - record.decided_mono,
                record.flag_store,
            )
        )
    order = {name: i for i, name in enumerate(_TIMELINE_ORDER)}
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


# -- Markdown --------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, list | dict):
        text = json.dumps(value, sort_keys=True)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _summary_line(incident: Incident) -> str:
    what = incident.trigger.summary or incident.trigger.reason or "no reason given"
    return (
        f"**{incident.kind}** rollback of `{incident.model_group}` at {incident.decided_at}: {what}. "
        f"New requests went to stable {incident.restored_after_ms:.3f} ms after the decision."
    )


def render_markdown(incident: Incident) -> str:
    """The human report of ``incident`` (what ``<id>.md`` holds)."""
    t = incident.trigger
    lines = [f"# Incident {incident.id}: {incident.kind} rollback of `{incident.model_group}`", ""]
    lines += [_summary_line(incident), ""]
    lines += ["## Trigger", "", "| field | value |", "|---|---|"]
    rows: list[tuple[str, Any]] = [
        ("rule", t.rule),
        ("reason", t.reason),
        ("threshold", t.threshold),
        ("window (s)", t.window_s),
        ("min samples", t.min_samples),
    ]
    rows += [(key, value) for key, value in sorted(t.observed.items())]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows]
    lines += ["", "## Timeline", "", "| event | wall time (UTC) | offset from decision (ms) | detail |"]
    lines += ["|---|---|---:|---|"]
    lines += [f"| {e.event} | {e.at} | {e.offset_ms:+.3f} | {_cell(e.detail)} |" for e in incident.timeline]
    lines += ["", f"Decision → restored (latched): **{incident.restored_after_ms:.3f} ms**."]
    if incident.flag_error:
        lines += ["", f"Flag store write failed at first: `{_cell(incident.flag_error)}`."]
    if incident.picture:
        lines += ["", f"![timeline]({incident.picture})"]
    elif incident.picture_note:
        lines += ["", f"_{incident.picture_note}_"]
    tr = incident.traffic
    attempts = tr.canary_attempts
    lines += ["", "## Traffic", ""]
    lines += [
        f"- Requests decided canary after the flip: {_cell(tr.canary_decisions_after_flip)} (expected 0)",
        f"- Conversation-drain decisions to canary after the flip: {_cell(tr.draining_decisions_after_flip)}",
        "- In flight at the flip: "
        + (", ".join(f"{side} {n}" for side, n in sorted(tr.in_flight_at_flip.items())) or "—"),
        "- Canary attempts in flight at the flip: "
        + (", ".join(f"{k} {v}" for k, v in attempts.items()) if attempts else "—"),
    ]
    lines += ["", "## Verification", ""]
    if incident.verification and incident.verification.get("restored_service") is False:
        note = incident.verification.get("note") or "The rollback did not restore service."
        lines += [f"**{_cell(note)}**", ""]
    if incident.verification:
        lines += ["| check | result |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(incident.verification.items())]
    else:
        lines += ["_Not verified yet._"]
    if incident.drill:
        lines += ["", "## Drill", "", "| measure | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(incident.drill.items())]
    lines += ["", "## Actual cause", "", incident.actual_cause or "_To be filled in (`annotate`)._"]
    lines += ["", "## What would change", "", incident.what_would_change or "_To be filled in (`annotate`)._"]
    return "\n".join(lines) + "\n"


# -- the optional picture --------------------------------------------------------------------------


def _matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _render_picture(incident: Incident, series: TimelineSeries) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5))
    error_axes, ttft_axes = figure.subplots(2, 1, sharex=True)
    for axes, names, label in (
        (error_axes, ("canary_error_rate", "stable_error_rate"), "error rate"),
        (ttft_axes, ("canary_ttft_p99_ms", "stable_ttft_p99_ms"), "TTFT p99 (ms)"),
    ):
        for name in names:
            values = getattr(series, name)
            if values is not None:
                points = [(t, v) for t, v in zip(series.t_s, values, strict=False) if v is not None]
                axes.plot([p[0] for p in points], [p[1] for p in points], label=name.split("_")[0])
        axes.axvline(0.0, color="red", linestyle="--", label="flip")
        axes.set_ylabel(label)
        axes.legend(loc="upper left")
    ttft_axes.set_xlabel("seconds from the rollback decision")
    figure.suptitle(f"{incident.model_group}: {incident.kind} rollback {incident.id}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


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
        if not isinstance(incident_id, str) or not _ID_RE.match(incident_id):
            raise IncidentNotFound(
                f"no incident {incident_id!r}: not an incident id (like 20260101T120000000Z-a1b2c3)"
            )
        if not self._path(incident_id, ".json").is_file():
            raise IncidentNotFound(f"no incident {incident_id!r} in {self.directory}")

    def write(self, incident: Incident, *, series: TimelineSeries | None = None) -> Incident:
        """Write (or replace) ``incident``'s files; with ``series``, also the timeline picture if possible."""
        if not _ID_RE.match(incident.id):
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
        if not _matplotlib_available():
            return incident.model_copy(
                update={
                    "picture": None,
                    "picture_note": "Timeline picture skipped: matplotlib is not installed.",
                }
            )
        try:
            png = _render_picture(incident, series)
        except Exception as error:  # a picture must never cost the incident
            logger.exception("timeline picture of incident %s failed", incident.id)
            return incident.model_copy(
                update={"picture": None, "picture_note": f"Timeline picture failed: {type(error).__name__}."}
            )
        name = f"{incident.id}.png"
        atomic_write(self.directory / name, png)
        return incident.model_copy(update={"picture": name, "picture_note": None})

    def get(self, incident_id: str) -> Incident:
        self._check_id(incident_id)
        return Incident.model_validate_json(self._path(incident_id, ".json").read_bytes())

    def list(self) -> list[IncidentSummary]:
        """Every readable incident, newest first (an unreadable file is logged and skipped)."""
        if not self.directory.is_dir():
            return []
        summaries: list[IncidentSummary] = []
        for path in self.directory.glob("*.json"):
            if not _ID_RE.match(path.stem):
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
            return self.write(updated, series=series)

    def annotate(self, incident_id: str, cause: str, change: str) -> Incident:
        """Fill in the two human sections (both files are rewritten)."""
        return self.update(
            incident_id,
            actual_cause=clean_text(cause.strip(), MAX_NOTE),
            what_would_change=clean_text(change.strip(), MAX_NOTE),
            annotated_at=_iso(time.time()),
        )

    def add_event(self, incident_id: str, name: str, wall: float, detail: str | None = None) -> Incident:
        """Add (or replace) the timeline event ``name`` at wall-clock time ``wall``."""

        def change(incident: Incident) -> Incident:
            decided_wall = _parse_wall(incident.decided_at)
            event = _event(name, decided_wall, wall - decided_wall, detail)
            return incident.model_copy(update={"timeline": _with_event(incident.timeline, event)})

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
        return self.update(incident_id, change=_verify_change(verdict, results, detail))


def _verify_change(
    verdict: str, results: Mapping[str, Any] | None, detail: str | None
) -> Callable[[Incident], Incident]:
    safe = _safe_mapping(dict(results or {}))
    at = time.time()

    def change(incident: Incident) -> Incident:
        decided_wall = _parse_wall(incident.decided_at)
        event = _event("verification", decided_wall, at - decided_wall, scrub(detail or verdict))
        return incident.model_copy(
            update={
                "timeline": _with_event(incident.timeline, event),
                "verification": {"verdict": scrub(verdict), **safe},
            }
        )

    return change


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
    """Writes an incident for every rollback of ``canary`` (on the rollback path: two small files).

    A write that fails (disk full, directory gone or read-only) never costs the record: the incident
    is kept in memory, counted (:meth:`status`), and written by :meth:`retry_unwritten` with backoff
    (``retry_initial_s`` doubling up to ``retry_max_s``) once the directory works again. At most
    ``max_unwritten`` incidents wait; beyond that the oldest is dropped, logged and counted.
    """

    def __init__(
        self,
        canary: Canary,
        store: IncidentStore,
        *,
        wall_clock: Callable[[], float] = time.time,
        count_decisions: bool = True,
        clock: Callable[[], float] = time.monotonic,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        max_unwritten: int = 100,
    ) -> None:
        """``count_decisions=False``: the caller already counts decisions after the flip (one listener
        on the request path is enough) and hands them to :meth:`complete`."""
        self._canary = canary
        self.store = store
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
        if count_decisions:
            canary.on_decision(self._on_decision)
        canary.controller.on_rollback(self._on_rollback)

    def incident_id(self, model_group: str) -> str | None:
        """The id of the latest incident of ``model_group`` this recorder wrote (or keeps to write)."""
        entry = self._open.get(model_group)
        return None if entry is None else entry[0]

    def incident_for(self, record: RollbackRecord) -> str | None:
        """The id of the incident this recorder made for ``record`` (``None``: it made none)."""
        entry = self._open.get(record.model_group)
        return entry[0] if entry is not None and entry[1] is record else None

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
        if record.repeated or record.origin is not None:
            return  # a repeat, or a rollback mirrored from the replica that decided it (and records it)
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
        return self._apply(incident_id, change=_verify_change(verdict, results, detail))

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
            drained = await self._canary.drained(model_group, drain_timeout)
        drained_wall = self._wall_clock()
        counts = decisions_after_flip or tuple(self._after_flip.get(model_group, (0, 0)))

        def change(incident: Incident) -> Incident:
            decided_wall = _parse_wall(incident.decided_at)
            timeline = incident.timeline
            if record.flag_written_mono is not None:
                offset = record.flag_written_mono - record.decided_mono
                timeline = _with_event(
                    timeline, _event("flag_written", decided_wall, offset, record.flag_store)
                )
            detail = "no canary attempt or pin left" if drained else f"not drained after {drain_timeout} s"
            name = "canary_drained" if drained else "drain_timeout"
            timeline = _with_event(timeline, _event(name, decided_wall, drained_wall - decided_wall, detail))
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


# -- CLI helpers -----------------------------------------------------------------------------------


def list_command(directory: str | os.PathLike[str]) -> str:
    """One line per incident, newest first."""
    summaries = IncidentStore(directory).list()
    if not summaries:
        return f"no incidents in {directory}\n"
    lines = [
        f"{s.id}  {s.model_group:<16} {s.kind:<9} {s.rule or '-':<10} "
        f"{'annotated' if s.annotated else 'open':<9} {s.summary}"
        for s in summaries
    ]
    return "\n".join(lines) + "\n"


def show_command(directory: str | os.PathLike[str], incident_id: str) -> str:
    """The Markdown report of one incident (rendered from its JSON, the source of truth)."""
    return render_markdown(IncidentStore(directory).get(incident_id))


def annotate_command(directory: str | os.PathLike[str], incident_id: str, cause: str, change: str) -> str:
    """Fill in the actual cause and what would change; returns a one-line confirmation."""
    incident = IncidentStore(directory).annotate(incident_id, cause, change)
    return f"annotated incident {incident.id} ({incident.model_group}, {incident.kind})\n"

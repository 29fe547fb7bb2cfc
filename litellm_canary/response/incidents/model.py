"""The incident record and its types: what one rollback was, and the changes made to it later.

* :class:`Incident` — trigger, timeline, traffic facts, verification, drill, picture, and two human
  sections (``actual_cause``, ``what_would_change``); :class:`IncidentSummary` is one line of a listing.
* the timeline helpers (:func:`timeline_event`, :func:`with_event`) and :func:`verify_change`, the
  change that records a verification verdict.
* :func:`safe_mapping` — the whitelist every value from a rollback's ``cause`` passes: keys that name
  secrets, prompts or headers are dropped, strings scrubbed (:func:`litellm_canary.core.redact.scrub`).
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from litellm_canary.core.redact import clean_text, scrub
from litellm_canary.core.rollback_record import iso_time, parse_wall

__all__ = [
    "ID_RE",
    "MAX_NOTE",
    "Incident",
    "IncidentKind",
    "IncidentNotFound",
    "IncidentSummary",
    "TimelineEvent",
    "TimelineSeries",
    "Traffic",
    "Trigger",
    "iso_time",
    "new_incident_id",
    "parse_wall",
    "safe_mapping",
    "timeline_event",
    "verify_change",
    "with_event",
]

IncidentKind = Literal["manual", "automatic", "alert", "drill"]

ID_RE = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]{6}$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_SENSITIVE_KEY_RE = re.compile(
    r"(?i)(api[_-]?key|secret|token|passw|authori[sz]ation|bearer|cookie|header|credential|"
    r"prompt|message|content|^key$|_key$)"
)
_MAX_LIST = 50
MAX_NOTE = 10_000  # characters of each human section (actual cause, what would change)


def safe_value(value: Any, depth: int = 0) -> Any:
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
        return safe_mapping(value, depth + 1)
    if isinstance(value, list | tuple | set | frozenset):
        items = [safe_value(v, depth + 1) for v in list(value)[:_MAX_LIST]]
        return [v for v in items if v is not ...]
    return ...


def safe_mapping(mapping: Mapping[Any, Any], depth: int = 0) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not _KEY_RE.match(key) or _SENSITIVE_KEY_RE.search(key):
            continue
        cleaned = safe_value(value, depth)
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


# -- timeline events and changes -------------------------------------------------------------------

TIMELINE_ORDER = ("first_breach", "decision", "latch", "flag_written", "canary_drained", "verification")


def new_incident_id(decided_at: str) -> str:
    """A sortable id: the decision's UTC time to the millisecond plus a short random suffix."""
    moment = datetime.fromisoformat(decided_at).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def timeline_event(
    name: str, decided_wall: float, offset_s: float, detail: str | None = None
) -> TimelineEvent:
    return TimelineEvent(
        event=name,
        at=iso_time(decided_wall + offset_s),
        offset_ms=round(offset_s * 1e3, 3),
        detail=None if detail is None else clean_text(detail),
    )


def with_event(timeline: list[TimelineEvent], event: TimelineEvent) -> list[TimelineEvent]:
    events = [e for e in timeline if e.event != event.event] + [event]
    order = {name: i for i, name in enumerate(TIMELINE_ORDER)}
    return sorted(events, key=lambda e: (e.offset_ms, order.get(e.event, len(order))))


def verify_change(
    verdict: str, results: Mapping[str, Any] | None, detail: str | None
) -> Callable[[Incident], Incident]:
    safe = safe_mapping(dict(results or {}))
    at = time.time()

    def change(incident: Incident) -> Incident:
        decided_wall = parse_wall(incident.decided_at)
        event = timeline_event("verification", decided_wall, at - decided_wall, scrub(detail or verdict))
        return incident.model_copy(
            update={
                "timeline": with_event(incident.timeline, event),
                "verification": {"verdict": scrub(verdict), **safe},
            }
        )

    return change

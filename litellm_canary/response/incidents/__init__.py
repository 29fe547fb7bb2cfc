"""Incident records: one durable, human-readable record per rollback, written the moment it happens.

* :mod:`.model` — the :class:`Incident` record and its types;
* :mod:`.store` — the directory of incidents, each file written atomically;
* :mod:`.report` — the Markdown report and the timeline picture;
* :mod:`.pending_writes` — writes the directory could not take, kept in memory and retried;
* :mod:`.recorder` — turning rollbacks into incidents;
* :mod:`.commands` — list / show / annotate for the command line.
"""

from __future__ import annotations

from litellm_canary.core.redact import scrub
from litellm_canary.response.incidents.commands import annotate_command, list_command, show_command
from litellm_canary.response.incidents.model import (
    MAX_NOTE,
    Incident,
    IncidentKind,
    IncidentNotFound,
    IncidentSummary,
    TimelineEvent,
    TimelineSeries,
    Traffic,
    Trigger,
    new_incident_id,
)
from litellm_canary.response.incidents.recorder import IncidentRecorder, incident_from_record
from litellm_canary.response.incidents.report import render_markdown
from litellm_canary.response.incidents.store import IncidentStore, atomic_write

__all__ = [
    "MAX_NOTE",
    "Incident",
    "IncidentKind",
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

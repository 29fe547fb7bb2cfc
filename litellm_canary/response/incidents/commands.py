"""The ``incidents`` subcommands as plain functions: list, show and annotate a directory of incidents."""

from __future__ import annotations

import os

from litellm_canary.response.incidents.report import render_markdown
from litellm_canary.response.incidents.store import IncidentStore

__all__ = ["annotate_command", "list_command", "show_command"]


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

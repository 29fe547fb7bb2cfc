"""The human side of an incident: its Markdown report and the optional timeline picture.

:func:`render_markdown` is what ``<id>.md`` holds (rendered from the JSON, the source of truth);
:func:`render_picture` (from :mod:`.picture`) draws the canary vs stable error rate and p99 TTFT
around the flip (needs matplotlib, an optional dependency: :func:`matplotlib_available`).
"""

from __future__ import annotations

import json
from typing import Any

from litellm_canary.response.incidents.figures import figure
from litellm_canary.response.incidents.model import Incident
from litellm_canary.response.incidents.picture import render_picture
from litellm_canary.response.incidents.verification_view import render_verification

__all__ = ["matplotlib_available", "render_markdown", "render_picture"]


# -- Markdown --------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool | float):
        text = figure(value)
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
    lines += render_verification(incident.verification)
    if incident.drill:
        lines += ["", "## Drill", "", "| measure | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(incident.drill.items())]
    lines += ["", "## Actual cause", "", incident.actual_cause or "_To be filled in (`annotate`)._"]
    lines += ["", "## What would change", "", incident.what_would_change or "_To be filled in (`annotate`)._"]
    return "\n".join(lines) + "\n"


# -- the optional picture --------------------------------------------------------------------------


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True

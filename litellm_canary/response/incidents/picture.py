"""The incident's timeline picture: canary vs stable error rate and p99 TTFT around the decision.

Drawn so that it can be read without the report next to it:

* both sides always visible: canary and stable differ in colour, marker and line style, so that two
  equal series (both at 0) still show both;
* every axis starts at zero (a rate never looks negative) and has room above its highest line;
* the trigger's threshold (on the axis of its rule) and the SLO / verification limits are drawn as
  labelled horizontal lines;
* the x axis covers the trigger's whole window before the decision, even when there is little data;
* the title names the kind: a drill says drill.

Needs matplotlib (optional); :func:`timeline_figure` returns the Figure (tests inspect it),
:func:`render_picture` the PNG bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from litellm_canary.response.incidents.figures import figure as rounded
from litellm_canary.response.incidents.model import Incident, TimelineSeries

__all__ = ["picture_title", "render_picture", "timeline_figure"]

_SIDES = {
    "canary": {"color": "tab:orange", "marker": "o", "linestyle": "-", "markersize": 6, "zorder": 3},
    "stable": {"color": "tab:blue", "marker": "s", "linestyle": "--", "markersize": 4, "zorder": 4},
}


def picture_title(incident: Incident) -> str:
    """``chat: drill rollback <id>``, ``chat: drill (automatic rollback) <id>`` (an incident a drill
    measured) or ``chat: manual rollback <id>``."""
    if incident.kind == "drill" or not incident.drill:
        what = f"{incident.kind} rollback"
    else:
        what = f"drill ({incident.kind} rollback)"
    return f"{incident.model_group}: {what} {incident.id}"


def _check(incident: Incident, name: str) -> Mapping[str, Any]:
    value = (incident.verification or {}).get(name)
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _reference_lines(incident: Incident) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """(error-rate lines, TTFT lines): each a value and its label."""
    error_lines: list[tuple[float, str]] = []
    ttft_lines: list[tuple[float, str]] = []
    trigger = incident.trigger
    threshold = _number(trigger.threshold)
    rule = trigger.rule or ""
    if threshold is not None:
        label = f"trigger {rule} threshold {rounded(threshold)}"
        if "ttft" in rule:
            ttft_lines.append((threshold, label))
        elif "error" in rule:
            error_lines.append((threshold, label))
    slo = _number(_check(incident, "ttft_p99").get("slo_ms")) or _number(
        _check(incident, "baseline").get("ttft_slo_ms")
    )
    if slo is not None:
        ttft_lines.append((slo, f"TTFT SLO {rounded(slo)} ms"))
    limit = _number(_check(incident, "error_rate").get("threshold"))
    if limit is not None:
        error_lines.append((limit, f"verification limit {rounded(limit)}"))
    return error_lines, ttft_lines


def timeline_figure(incident: Incident, series: TimelineSeries) -> Any:
    """The matplotlib Figure of the picture (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 6), layout="constrained")
    error_axes, ttft_axes = figure.subplots(2, 1, sharex=True)
    error_lines, ttft_lines = _reference_lines(incident)
    window = _number(incident.trigger.window_s) or 0.0
    earliest = min([*series.t_s, 0.0])
    latest = max([*series.t_s, 0.0])
    for axes, kind, label, references, styles in (
        (error_axes, "error_rate", "error rate", error_lines, (":", "-.")),
        (ttft_axes, "ttft_p99_ms", "TTFT p99 (ms)", ttft_lines, (":", "-.")),
    ):
        highest = 0.0
        for side, style in _SIDES.items():
            values = getattr(series, f"{side}_{kind}")
            if values is None:
                continue
            points = [(t, v) for t, v in zip(series.t_s, values, strict=False) if v is not None]
            if points:
                highest = max(highest, *(v for _, v in points))
            axes.plot([p[0] for p in points], [p[1] for p in points], label=side, **style)
        for (value, text), linestyle in zip(references, styles, strict=False):
            axes.axhline(value, color="gray", linestyle=linestyle, linewidth=1, label=text)
            highest = max(highest, value)
        axes.axvline(0.0, color="red", linestyle="--", linewidth=1, label="decision")
        if window > 0:
            axes.axvspan(-window, 0.0, color="red", alpha=0.06, label=f"trigger window {rounded(window)} s")
        axes.set_ylim(0.0, highest * 1.15 if highest > 0 else 1.0)
        axes.set_ylabel(label)
        axes.legend(loc="upper left", fontsize="small")
    span = max(latest - min(earliest, -window), 1.0)
    error_axes.set_xlim(min(earliest, -window) - 0.02 * span, latest + 0.02 * span)
    ttft_axes.set_xlabel("seconds from the rollback decision")
    figure.suptitle(picture_title(incident))
    return figure


def render_picture(incident: Incident, series: TimelineSeries) -> bytes:
    """The picture as PNG bytes."""
    buffer = io.BytesIO()
    timeline_figure(incident, series).savefig(buffer, format="png")
    return buffer.getvalue()

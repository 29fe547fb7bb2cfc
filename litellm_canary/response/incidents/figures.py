"""Figures as people read them: rounded numbers, yes/no, a dash for nothing.

Used by the incident Markdown so that no cell holds a 14-digit float (``55.71982948338139`` reads
``55.72``) or a raw JSON object.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["figure", "markdown_cell"]


def figure(value: Any) -> str:
    """``value`` rounded for a reader: 4 significant digits (whole numbers from 1000 up)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "—"
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(figure(item) for item in value) if value else "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def markdown_cell(value: Any) -> str:
    """:func:`figure` made safe for a Markdown table cell."""
    return figure(value).replace("|", "\\|").replace("\n", " ")

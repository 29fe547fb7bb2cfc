"""The benchmarks' figures: quantiles, a p50/p99/max table, and one JSON line on stdout."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["emit", "measure_and_emit", "quantile", "rounded", "table", "without_stray_prints"]

T = TypeVar("T")


def quantile(samples: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of ``samples`` (linear interpolation), None for no samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def table(result: dict[str, Any], rows: dict[str, str]) -> list[str]:
    """A p50/p99/max table: one line per ``label: key prefix`` of ``rows``, its figures read from
    ``result[prefix + "_p50"]``, ``_p99`` and ``_max`` (``-`` for a figure that is missing or None)."""
    width = max((len(label) for label in rows), default=0)
    lines = [f"  {'':<{width}}  {'p50':>10}  {'p99':>10}  {'max':>10}"]
    for label, prefix in rows.items():
        figures = [result.get(f"{prefix}_{name}") for name in ("p50", "p99", "max")]
        cells = "  ".join(f"{'-' if f is None else f'{f:.1f}':>10}" for f in figures)
        lines.append(f"  {label:<{width}}  {cells}")
    return lines


def without_stray_prints(measure: Callable[[], T]) -> T:
    """Run ``measure`` with stdout sent to stderr, so stray library prints stay out of the JSON."""
    with contextlib.redirect_stdout(sys.stderr):
        return measure()


def emit(result: dict[str, Any], as_json: bool, summary: Callable[[dict[str, Any]], list[str]]) -> None:
    """Print ``result`` as one JSON line, or its human summary."""
    print(json.dumps(result) if as_json else "\n".join(summary(result)), flush=True)


def measure_and_emit(
    measure: Callable[[], dict[str, Any]], as_json: bool, summary: Callable[[dict[str, Any]], list[str]]
) -> None:
    """Run ``measure`` (stray prints to stderr), then print its result: the body of every benchmark."""
    emit(without_stray_prints(measure), as_json, summary)

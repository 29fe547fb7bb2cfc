"""Per-attempt outcomes: what one attempt on one deployment ended with, and their tally.

The Router glue turns LiteLLM's callbacks into :class:`Outcome` records — exactly one per attempt.
:class:`OutcomeRecorder` counts them per side and status class and forwards them to the trigger
windows, leaving out the one sample that would poison a window: the time to first token of a
process's first streamed call, which pays LiteLLM's one-time warm-up (0.4-0.9 s).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litellm_canary.core.decision import Side
from litellm_canary.core.events import Signal

SUCCESS = "success"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's end."""

    model_group: str
    side: Side
    deployment_id: str
    ok: bool
    status_class: str  # success | 4xx | 5xx | timeout | connection | retried | expired
    latency_s: float | None = None
    ttft_s: float | None = None
    stream: bool = False


def status_class(exception: object) -> str:
    """A failure's class: ``4xx``, ``5xx``, ``timeout`` or ``connection``."""
    name = type(exception).__name__.lower()
    if "timeout" in name:
        return "timeout"
    # LiteLLM reports a refused or dropped connection as InternalServerError("... Connection error.")
    if "connection" in name or "connection error" in str(exception).lower():
        return "connection"
    code = getattr(exception, "status_code", None)
    if code == 408:
        return "timeout"
    if isinstance(code, int) and 400 <= code < 500:
        return "4xx"
    return "5xx"


def seconds_between(start: Any, end: Any) -> float | None:
    """``end - start`` in seconds for floats or datetimes; None when either is missing."""
    if start is None or end is None:
        return None
    try:
        if hasattr(end, "timestamp"):
            return float((end - start).total_seconds())
        return float(end) - float(start)
    except (TypeError, ValueError):
        return None


class OutcomeRecorder:
    """Tallies outcomes per model group and hands them on (to the trigger windows, metrics, ...)."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[tuple[str, str]]] = {}
        self.recorded: Signal[[Outcome]] = Signal("outcome")  # every listener guarded
        self._warmed_up = False
        self._lock = threading.Lock()

    def add_listener(self, listener: Callable[[Outcome], None]) -> None:
        self.recorded.connect(listener)

    def record(self, outcome: Outcome) -> None:
        with self._lock:
            self.counts.setdefault(outcome.model_group, Counter())[
                (outcome.side.value, outcome.status_class)
            ] += 1
            if outcome.stream and outcome.ttft_s is not None and not self._warmed_up:
                self._warmed_up = True
                outcome = Outcome(**{**_fields(outcome), "ttft_s": None})
        self.recorded.emit(outcome)

    def clear(self, model_group: str) -> None:
        with self._lock:
            self.counts.pop(model_group, None)

    def summary(self, model_group: str) -> dict[str, int]:
        with self._lock:
            counts = self.counts.get(model_group, Counter())
            return {f"{side}:{status}": n for (side, status), n in sorted(counts.items())}


def _fields(outcome: Outcome) -> dict[str, Any]:
    return {name: getattr(outcome, name) for name in Outcome.__slots__}

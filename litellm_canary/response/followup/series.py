"""The outcome series behind an incident's timeline picture (and the web console's live charts):
per-second counts and TTFTs of both sides."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from litellm_canary.core.decision import Side
from litellm_canary.response.incidents.model import TimelineSeries

__all__ = ["SeriesBuffer"]


class SeriesBuffer:
    """Per-second outcome counts and TTFT samples of both sides over the last ``keep_s`` seconds: the
    data of the incident's timeline picture (canary vs stable error rate and p99 TTFT)."""

    MAX_TTFTS = 500  # per side and second; a p99 over more is no more readable in a picture

    def __init__(self, clock: Callable[[], float], keep_s: int = 900) -> None:
        self._clock = clock
        self._keep_s = keep_s
        self._lock = threading.Lock()
        self._buckets: dict[int, dict[Side, tuple[list[int], list[float]]]] = {}

    def record(self, side: Side, ok: bool, ttft_s: float | None) -> None:
        second = math.floor(self._clock())
        with self._lock:
            bucket = self._buckets.get(second)
            if bucket is None:
                bucket = self._buckets[second] = {s: ([0, 0], []) for s in Side}
                for old in [k for k in self._buckets if k < second - self._keep_s]:
                    del self._buckets[old]
            counts, ttfts = bucket[side]
            counts[0] += 1
            counts[1] += 0 if ok else 1
            if ttft_s is not None and len(ttfts) < self.MAX_TTFTS:
                ttfts.append(ttft_s)

    def series(self, decided_mono: float, before_s: float = 120.0) -> TimelineSeries | None:
        """The series from ``before_s`` before the decision to now, ``t_s`` relative to the decision."""
        with self._lock:
            seconds = sorted(k for k in self._buckets if k >= decided_mono - before_s)
            rows = [
                (k, {side: (list(c), list(t)) for side, (c, t) in self._buckets[k].items()}) for k in seconds
            ]
        if not rows:
            return None

        return TimelineSeries(
            t_s=[round(k + 0.5 - decided_mono, 3) for k, _ in rows],
            canary_error_rate=[rate(b[Side.CANARY][0]) for _, b in rows],
            stable_error_rate=[rate(b[Side.STABLE][0]) for _, b in rows],
            canary_ttft_p99_ms=[p99_ms(b[Side.CANARY][1]) for _, b in rows],
            stable_ttft_p99_ms=[p99_ms(b[Side.STABLE][1]) for _, b in rows],
        )

    def recent(self, seconds: int) -> dict[str, Any]:
        """The last ``seconds`` whole seconds up to now, one entry per second (seconds without
        traffic included, as 0 requests): ``{"t": [epoch-relative second], side: {"requests",
        "failures", "error_rate", "ttft_p99_ms"}}`` with ``t`` in seconds before now (``-1`` is the
        last complete second). The web console's charts and request rates."""
        now = math.floor(self._clock())
        wanted = range(now - seconds, now)
        with self._lock:
            rows = [
                {side: (list(c), list(t)) for side, (c, t) in b.items()}
                if (b := self._buckets.get(k)) is not None
                else None
                for k in wanted
            ]
        result: dict[str, Any] = {"t": [k - now for k in wanted]}
        for side in Side:
            cells = [row[side] if row is not None else ([0, 0], []) for row in rows]
            result[side.value] = {
                "requests": [c[0] for c, _ in cells],
                "failures": [c[1] for c, _ in cells],
                "error_rate": [rate(c) for c, _ in cells],
                "ttft_p99_ms": [p99_ms(t) for _, t in cells],
            }
        return result


def rate(counts: list[int]) -> float | None:
    """Failures / requests of a ``[requests, failures]`` cell; ``None`` without requests."""
    return counts[1] / counts[0] if counts[0] else None


def p99_ms(ttfts: list[float]) -> float | None:
    """The nearest-rank p99 of ``ttfts`` (seconds) in milliseconds; ``None`` without samples."""
    if not ttfts:
        return None
    ordered = sorted(ttfts)
    return ordered[max(math.ceil(0.99 * len(ordered)) - 1, 0)] * 1e3

"""The bounded queue between the request path and the scorer.

This module owns :class:`Sample` (one response waiting to be scored; its text stays in memory and is
never shown in a repr) and :class:`SampleQueue`, a thread-safe bounded FIFO whose full state drops
and counts a sample instead of waiting: offering a sample can never slow a response down.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Sample", "SampleQueue"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One response waiting to be scored (request text in memory only)."""

    side: Literal["stable", "canary"]
    deployment_id: str
    request: Mapping[str, Any]
    response: Any

    def __repr__(self) -> str:  # never show the request or the response text
        return f"Sample(side={self.side!r}, deployment_id={self.deployment_id!r})"


class SampleQueue:
    """A bounded FIFO of samples; :meth:`offer` on a full queue drops the sample and counts it.

    Thread-safe. ``on_ready`` is called (outside the lock) when an offer makes an empty queue
    non-empty, so a consumer waiting for work is woken once per batch, not once per sample.
    """

    def __init__(self, size: int, on_ready: Callable[[], None] = lambda: None) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"queue size must be an int >= 1, got {size!r}")
        self.size = size
        self.on_ready = on_ready
        self.dropped: Counter[str] = Counter()
        self.offered: Counter[str] = Counter()
        self._items: deque[Sample] = deque()
        self._lock = threading.Lock()

    def offer(self, sample: Sample) -> bool:
        """Queue ``sample``; False (and counted in :attr:`dropped`) when the queue is full."""
        with self._lock:
            self.offered[sample.side] += 1
            if len(self._items) >= self.size:
                self.dropped[sample.side] += 1
                return False
            was_empty = not self._items
            self._items.append(sample)
        if was_empty:
            self.on_ready()
        return True

    def take(self) -> Sample | None:
        with self._lock:
            return self._items.popleft() if self._items else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

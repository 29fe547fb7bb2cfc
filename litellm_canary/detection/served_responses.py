"""The recent-responses map behind user feedback: response id -> who served it (and its score).

:class:`ServedResponses` remembers the last ``max_responses`` responses for ``ttl_s`` each and
creates **no garbage-collected object per entry**. That is why it is not a ``cachetools.TTLCache``:
the cache keeps one linked-list node object per key, and our ``Served`` record was another, so a
full book held 200,000 long-lived tracked objects. In a LiteLLM proxy (which ``gc.freeze()``s its
start-up heap) those made the full collections more frequent and longer: measured, the canary left
2 tracked objects behind per request, the baseline proxy 0.1. Here an entry is an
``OrderedDict`` slot (a C node, not a Python object) holding a tuple of a float, an int and a
float-or-None (such tuples are untracked by the collector's first pass), and who served it is an
index into a small table of ``(model_group, side, deployment_id)``.

Every entry lives the same ``ttl_s``, so insertion order is expiry order: expired entries are
dropped from the front, and the oldest entry goes first when the map is full. Not thread-safe: the
caller holds its lock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from litellm_canary.core.decision import Side

__all__ = ["Served", "ServedResponses"]


@dataclass(frozen=True, slots=True)
class Served:
    """Who served one response, and the feedback score it got (if any)."""

    model_group: str
    side: Side
    deployment_id: str
    score: float | None = None


class ServedResponses:
    """A bounded, time-limited map of recent response ids to who served them."""

    def __init__(self, max_responses: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_responses < 1:
            raise ValueError(f"max_responses must be positive, got {max_responses}")
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self._max = max_responses
        self._ttl_s = ttl_s
        self._clock = clock
        # response id -> (expires_at, index into _servers, score or None)
        self._entries: OrderedDict[str, tuple[float, int, float | None]] = OrderedDict()
        self._servers: list[tuple[str, Side, str]] = []
        self._server_index: dict[tuple[str, Side, str], int] = {}

    def remember(self, response_id: str, model_group: str, side: Side, deployment_id: str) -> None:
        """``response_id`` was served by ``deployment_id`` of ``side`` (replacing an older entry)."""
        now = self._clock()
        self._expire(now)
        server = (model_group, side, deployment_id)
        index = self._server_index.get(server)
        if index is None:
            index = self._server_index[server] = len(self._servers)
            self._servers.append(server)
        self._entries.pop(response_id, None)  # a re-served id moves to the back, with a fresh ttl
        self._entries[response_id] = (now + self._ttl_s, index, None)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def get(self, response_id: str) -> Served | None:
        """Who served ``response_id``, or None when it is unknown or expired."""
        self._expire(self._clock())
        entry = self._entries.get(response_id)
        if entry is None:
            return None
        model_group, side, deployment_id = self._servers[entry[1]]
        return Served(model_group, side, deployment_id, entry[2])

    def set_score(self, response_id: str, score: float) -> None:
        """Record ``score`` for a remembered ``response_id`` (its expiry is unchanged)."""
        expires_at, index, _ = self._entries[response_id]
        self._entries[response_id] = (expires_at, index, score)

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._entries)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            oldest = next(iter(entries))
            if entries[oldest][0] > now:
                return
            del entries[oldest]

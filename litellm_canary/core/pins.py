"""Per-rollout request state that outlives one decision: in-flight attempts and conversation pins.

* An :class:`Attempt` is opened when an attempt is dispatched to a deployment and closed exactly once
  by its outcome (success, failure, or the next attempt of the same request). Attempts whose outcome
  never arrives (a client that abandoned a stream) expire after ``max_attempt_s``.
* Conversation pins map a session id to the deployment that holds the conversation (a cachetools
  TTL/LRU table, bounded in size and age).

After a rollback, :meth:`RolloutPins.release_canary` drops every canary conversation pin (or lets
them drain for a bounded time); in-flight canary attempts finish where they are. ``drained`` is true
once neither is left: nothing of the canary lingers.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cachetools import TTLCache

from litellm_canary.core.decision import Pin, PinKind, Side

_attempt_ids = itertools.count(1)


@dataclass(eq=False, slots=True)
class Attempt:
    side: Side
    deployment_id: str
    opened_at: float
    id: int = field(default_factory=lambda: next(_attempt_ids))
    outcome: str | None = None


@dataclass
class InFlightAtFlip:
    """The canary attempts that were running when a rollback latched, and how they ended."""

    attempt_ids: set[int]
    completed: int = 0
    failed: int = 0
    expired: int = 0

    @property
    def pending(self) -> int:
        return len(self.attempt_ids) - self.completed - self.failed - self.expired

    def as_dict(self) -> dict[str, int]:
        return {
            "at_flip": len(self.attempt_ids),
            "completed": self.completed,
            "failed": self.failed,
            "expired": self.expired,
            "pending": self.pending,
        }


class RolloutPins:
    """In-flight attempts and conversation pins of one rollout."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        max_attempt_s: float,
        conversation_ttl_s: float,
        max_conversations: int,
        on_canary_idle: Callable[[], None] = lambda: None,
    ) -> None:
        self._clock = clock
        self._max_attempt_s = max_attempt_s
        # dict operations are atomic under the GIL: opening and closing attempts takes no lock.
        self._in_flight: dict[Side, dict[int, Attempt]] = {Side.STABLE: {}, Side.CANARY: {}}
        self._conversations: TTLCache[str, tuple[Side, str]] = TTLCache(
            maxsize=max_conversations, ttl=conversation_ttl_s, timer=clock
        )
        self._conversation_lock = threading.Lock()
        self._drain_deadline: float | None = None
        self._on_canary_idle = on_canary_idle
        self.watch: InFlightAtFlip | None = None

    # -- attempts --------------------------------------------------------------------------------

    def open(self, side: Side, deployment_id: str) -> Attempt:
        attempt = Attempt(side, deployment_id, self._clock())
        self._in_flight[side][attempt.id] = attempt
        return attempt

    def close(self, attempt: Attempt, outcome: str) -> bool:
        """Close an attempt once; later calls for the same attempt return False and change nothing."""
        if self._in_flight[attempt.side].pop(attempt.id, None) is None:
            return False
        attempt.outcome = outcome
        watch = self.watch
        if watch is not None and attempt.id in watch.attempt_ids:
            if outcome == "success":
                watch.completed += 1
            elif outcome == "expired":
                watch.expired += 1
            else:
                watch.failed += 1
        if attempt.side is Side.CANARY and not self._in_flight[Side.CANARY]:
            self._on_canary_idle()
        return True

    def expire_stale(self) -> int:
        deadline = self._clock() - self._max_attempt_s
        stale = [
            a for side in self._in_flight.values() for a in list(side.values()) if a.opened_at <= deadline
        ]
        return sum(self.close(attempt, "expired") for attempt in stale)

    def in_flight(self, side: Side) -> int:
        return len(self._in_flight[side])

    def watch_canary_in_flight(self) -> InFlightAtFlip:
        """Start following the canary attempts running now (called when a rollback latches)."""
        self.watch = InFlightAtFlip(set(self._in_flight[Side.CANARY]))
        return self.watch

    # -- conversation pins -----------------------------------------------------------------------

    def conversation(self, session_id: str) -> Pin | None:
        with self._conversation_lock:
            entry = self._conversations.get(session_id)
        if entry is None:
            return None
        return Pin(entry[0], PinKind.CONVERSATION, entry[1])

    def pin_conversation(self, session_id: str, side: Side, deployment_id: str) -> None:
        with self._conversation_lock:
            if self._conversations.get(session_id) != (side, deployment_id):
                self._conversations[session_id] = (side, deployment_id)

    def conversation_pins(self, side: Side) -> int:
        with self._conversation_lock:
            self._conversations.expire()
            self._release_if_drain_over()
            return sum(1 for pinned_side, _ in self._conversations.values() if pinned_side is side)

    def release_canary(self, drain_s: float) -> None:
        """After a rollback: drop canary conversation pins now, or once ``drain_s`` has passed."""
        with self._conversation_lock:
            if drain_s > 0:
                self._drain_deadline = self._clock() + drain_s
            else:
                self._drop_canary_conversations()

    def drain_open(self) -> bool:
        deadline = self._drain_deadline
        if deadline is None:
            return False
        if self._clock() < deadline:
            return True
        with self._conversation_lock:
            self._release_if_drain_over()
        return False

    def drain_remaining_s(self) -> float:
        deadline = self._drain_deadline
        return max(0.0, deadline - self._clock()) if deadline is not None else 0.0

    def rearm(self) -> None:
        with self._conversation_lock:
            self._drain_deadline = None
        self.watch = None

    def _release_if_drain_over(self) -> None:
        if self._drain_deadline is not None and self._clock() >= self._drain_deadline:
            self._drain_deadline = None
            self._drop_canary_conversations()

    def _drop_canary_conversations(self) -> None:
        for session_id in [s for s, (side, _) in self._conversations.items() if side is Side.CANARY]:
            del self._conversations[session_id]

    def status(self) -> dict[str, Any]:
        """This rollout's slice of ``Canary.status()``: attempts in flight, pins, drain (stale
        attempts expired first)."""
        self.expire_stale()
        return {
            "in_flight": {side.value: self.in_flight(side) for side in Side},
            "pins": {side.value: self.conversation_pins(side) for side in Side},
            "conversation_drain_remaining_s": round(self.drain_remaining_s(), 3),
        }

    def canary_drained(self) -> bool:
        return self.in_flight(Side.CANARY) == 0 and self.conversation_pins(Side.CANARY) == 0

"""The state of one rollback's follow-up (:class:`FollowupState`) and how ``status()`` shows it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from litellm_canary.response.verification import Verification

if TYPE_CHECKING:
    from litellm_canary.core.rollback_record import RollbackRecord

__all__ = ["FOLLOW_UP_KEYS", "FollowupState", "followup_status"]

#: The keys :meth:`PostRollback.status` adds to ``status()["groups"][G]["last_rollback"]``.
FOLLOW_UP_KEYS = frozenset(
    {
        "verification",
        "drained",
        "drained_after_ms",
        "canary_decisions_after_flip",
        "draining_decisions_after_flip",
        "incident_id",
        "complete",
        "incident_written",
        "incident_write_errors",
        "incident_write_error",
        "incidents_unwritten",
        "incidents_dropped",
    }
)  # (``canary_attempts`` is the rollback record's own field, kept up to date)

_NO_RECORDER: dict[str, Any] = {
    "incident_written": None,
    "incident_write_errors": 0,
    "incident_write_error": None,
    "incidents_unwritten": 0,
    "incidents_dropped": 0,
}


@dataclass
class FollowupState:
    """One rollback's follow-up: its verification, traffic after the flip, drain, and how it ended."""

    record: RollbackRecord
    verification: Verification
    incident_id: str | None
    after_flip: list[int] = field(default_factory=lambda: [0, 0])  # canary, draining decisions
    drained: bool | None = None
    drained_after_ms: float | None = None
    done: concurrent.futures.Future[dict[str, Any]] = field(default_factory=concurrent.futures.Future)
    # Set by a re-arm or a newer rollback: why the follow-up stopped without a verdict.
    cancelled: str | None = None
    cancel_recorded: bool = False  # the incident says it was cancelled
    task: asyncio.Task[Any] | None = None  # the running follow-up, once started
    lock: threading.Lock = field(default_factory=threading.Lock)


def followup_status(
    state: FollowupState, user_feedback: dict[str, Any], incident_writes: dict[str, Any] | None
) -> dict[str, Any]:
    """What ``status()`` shows of ``state`` under the group's ``last_rollback`` (:data:`FOLLOW_UP_KEYS`)."""
    verification = state.verification
    result = verification.result
    if state.cancelled is not None and result is None:
        shown: dict[str, Any] = {
            "verdict": "cancelled",
            "cancelled": state.cancelled,
            "within_s": verification.within_s,
        }
    elif result is None:
        checks = verification.checks()
        shown = {
            "verdict": "pending",
            "within_s": verification.within_s,
            "checks": {name: check.as_dict() for name, check in checks.items()},
            "baseline": verification.baseline.as_dict(),
        }
    else:
        shown = result.as_dict()
    shown["user_feedback"] = user_feedback
    return {
        "verification": shown,
        "drained": state.drained,
        "drained_after_ms": state.drained_after_ms,
        "canary_decisions_after_flip": state.after_flip[0],
        "draining_decisions_after_flip": state.after_flip[1],
        "canary_attempts": state.record.canary_attempts.as_dict(),
        "incident_id": state.incident_id,
        "complete": state.done.done(),
        **(_NO_RECORDER if incident_writes is None else incident_writes),
    }

"""What one rollback did: :class:`RollbackRecord`, and its persisted form in the flag's metadata.

The controller makes one record per rollback; :func:`restored_record` reads one back from the flag
metadata that the flagd file store keeps (a restart or a new replica starts rolled back).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from litellm_canary.core.decision import Side
from litellm_canary.core.pins import InFlightAtFlip
from litellm_canary.core.redact import scrub

__all__ = [
    "KINDS",
    "LAST_ROLLBACK_AT",
    "LAST_ROLLBACK_KIND",
    "LAST_ROLLBACK_REASON",
    "NO_MARK",
    "REARMED_AT",
    "ROLLED_BACK_AT",
    "RollbackKind",
    "RollbackRecord",
    "iso_time",
    "parse_wall",
    "rearm_metadata",
    "rearmed_after",
    "restored_record",
    "rollback_mark",
]

RollbackKind = Literal["manual", "automatic", "alert", "drill"]
KINDS = ("manual", "automatic", "alert", "drill")

# The rolled-back state kept in the flag's flagd ``metadata`` (string/number/bool values only), written
# in the same atomic file write that sets the flag to stable, so every replica and every restart sees
# it. ``rolled_back_at`` is present exactly while the group is rolled back (the canary window reads
# it too); the ``last_rollback_*`` keys stay after a re-arm as the record of the last rollback.
ROLLED_BACK_AT = "litellm_canary.rolled_back_at"
# A re-arm removes ``rolled_back_at`` and says so with ``rearmed_at`` (wall time): processes that
# latched from the mark release only on this explicit word, never because a rewrite of the file
# dropped the metadata (when in doubt, stable).
REARMED_AT = "litellm_canary.rearmed_at"
LAST_ROLLBACK_AT = "litellm_canary.last_rollback_at"
LAST_ROLLBACK_KIND = "litellm_canary.last_rollback_kind"
LAST_ROLLBACK_REASON = "litellm_canary.last_rollback_reason"
_MAX_STORED_REASON = 1000


def iso_time(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")


def parse_wall(iso: str) -> float:
    """The Unix time of an ISO 8601 time (:func:`iso_time`'s output; no zone means UTC)."""
    parsed = datetime.fromisoformat(iso)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass
class RollbackRecord:
    """What one rollback did, with monotonic timings (seconds) and wall-clock time for humans."""

    model_group: str
    kind: RollbackKind
    reason: str
    cause: Mapping[str, Any] | None
    decided_at: str
    decided_mono: float
    latched_mono: float
    in_flight_at_flip: dict[str, int]
    canary_attempts: InFlightAtFlip
    flag_store: str | None
    flag_written_mono: float | None = None
    flag_error: str | None = None
    repeated: bool = False  # the group was already rolled back; nothing changed
    origin: str | None = None  # None: decided in this process; else the replica it was broadcast from
    # Stable deployments whose last keep-warm probe had failed when the rollback was decided.
    stable_unhealthy_at_rollback: list[str] = field(default_factory=list)
    decided_wall: float | None = None  # Unix seconds (persisted with the flag)
    latched_wall: float | None = None  # when this process latched (a follower: after the decider)
    restored: bool = False  # read back from the flag store at attach (a restart), not decided here

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_group": self.model_group,
            "kind": self.kind,
            "reason": self.reason,
            "cause": dict(self.cause) if self.cause else None,
            "decided_at": self.decided_at,
            "latch_us": round((self.latched_mono - self.decided_mono) * 1e6, 1),
            "latched_at": None if self.latched_wall is None else iso_time(self.latched_wall),
            "flag_store": self.flag_store,
            "flag_written_after_ms": None
            if self.flag_written_mono is None
            else round((self.flag_written_mono - self.decided_mono) * 1e3, 3),
            "flag_error": self.flag_error,
            "in_flight_at_flip": dict(self.in_flight_at_flip),
            "canary_attempts": self.canary_attempts.as_dict(),
            "repeated": self.repeated,
            "origin": self.origin,
            "stable_unhealthy_at_rollback": list(self.stable_unhealthy_at_rollback),
            "restored": self.restored,
        }

    def persisted(self) -> dict[str, float | str]:
        """The flag-metadata keys that keep this rollback across restarts and replicas."""
        wall = self.decided_wall if self.decided_wall is not None else time.time()
        reason = scrub(self.reason)[:_MAX_STORED_REASON].encode("utf-8", "replace").decode("utf-8")
        return {
            ROLLED_BACK_AT: wall,
            LAST_ROLLBACK_AT: wall,
            LAST_ROLLBACK_KIND: self.kind,
            LAST_ROLLBACK_REASON: reason,
        }


def restored_record(
    model_group: str, metadata: Mapping[str, Any] | None, now_mono: float
) -> RollbackRecord | None:
    """The rollback recorded in a flag's metadata while the group is rolled back; None when armed.

    A ``rolled_back_at`` that is not a finite number still means "rolled back" (when in doubt, stable);
    the record then says what was unreadable."""
    if not metadata or ROLLED_BACK_AT not in metadata:
        return None
    at = metadata.get(ROLLED_BACK_AT)
    wall = (
        float(at) if isinstance(at, int | float) and not isinstance(at, bool) and math.isfinite(at) else None
    )
    kind = metadata.get(LAST_ROLLBACK_KIND)
    reason = metadata.get(LAST_ROLLBACK_REASON)
    return RollbackRecord(
        model_group=model_group,
        kind=kind if kind in KINDS else "manual",  # type: ignore[arg-type]
        reason=str(reason) if isinstance(reason, str) else f"rolled back (unreadable record: {at!r})",
        cause={"restored_from": "flag_store"},
        decided_at=iso_time(wall) if wall is not None else "unknown",
        decided_mono=now_mono,
        latched_mono=now_mono,
        in_flight_at_flip={Side.CANARY.value: 0, Side.STABLE.value: 0},
        canary_attempts=InFlightAtFlip(set()),
        flag_store=None,
        flag_written_mono=now_mono,
        decided_wall=wall,
        restored=True,
    )


def rearm_metadata(wall: float) -> dict[str, float | None]:
    """The flag metadata change that records a re-arm at ``wall`` (Unix seconds)."""
    return {ROLLED_BACK_AT: None, REARMED_AT: wall}


NO_MARK: Any = object()
"""What :func:`rollback_mark` returns for a flag without a rollback mark."""


def rollback_mark(flag: Any) -> Any:
    """The rollback mark in a flag definition's metadata (any value means "rolled back"), or
    :data:`NO_MARK`."""
    metadata = flag.get("metadata") if isinstance(flag, Mapping) else None
    return metadata.get(ROLLED_BACK_AT, NO_MARK) if isinstance(metadata, Mapping) else NO_MARK


def rearmed_after(flag: Any, mark: Any) -> bool:
    """Whether ``flag`` records a re-arm at or after the rollback ``mark`` (a file rewritten without
    our metadata records none)."""
    metadata = flag.get("metadata") if isinstance(flag, Mapping) else None
    rearmed = metadata.get(REARMED_AT) if isinstance(metadata, Mapping) else None
    if not isinstance(rearmed, int | float) or isinstance(rearmed, bool):
        return False
    return not isinstance(mark, int | float) or rearmed >= mark

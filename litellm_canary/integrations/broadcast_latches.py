"""What the broadcast knows of the local latches, and how it makes one match a replica's state.

This module owns the narrow contract between the Redis broadcast and the rollback controller:
:class:`Latches` (``rollback``/``rearm`` and a connect for each one's signal) and :class:`LatchState`
(one group's latch as read through a mapping), plus :func:`adopt`, which applies a state read from
Redis or received on the channel through that contract. It never imports the ``Canary`` handle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, get_args

from litellm_canary.core.rollback_record import RollbackKind, RollbackRecord

logger = logging.getLogger("litellm_canary.broadcast")

__all__ = ["ROLLBACK_KINDS", "Adopted", "LatchState", "Latches", "adopt", "iso", "later"]

ROLLBACK_KINDS: tuple[str, ...] = get_args(RollbackKind)

Adopted = Literal["applied", "kept_latch", "unchanged"]


class LatchState(Protocol):
    """One group's latch as the broadcast reads it (the controller's ``RolloutRuntime``)."""

    @property
    def rolled_back(self) -> bool: ...

    @property
    def last_rollback(self) -> RollbackRecord | None: ...


class Latches(Protocol):
    """What the broadcast needs of the rollback controller: the two latch operations and a connect
    for the signal each emits (a listener sees ``origin``: None for a change decided here). A
    rollback is published as soon as it latched, before this process writes its flag store."""

    def rollback(
        self,
        model_group: str,
        reason: str,
        *,
        kind: RollbackKind = ...,
        cause: Mapping[str, Any] | None = ...,
        origin: str | None = ...,
    ) -> object: ...

    def rearm(self, model_group: str, *, origin: str | None = ...) -> bool: ...

    def on_latched(self, listener: Callable[[RollbackRecord], None]) -> object: ...

    def on_rearm(self, listener: Callable[[str, str | None], None]) -> object: ...


def later(at: object, than: float | None) -> bool:
    """Whether the broadcast time ``at`` (Unix seconds, maybe a string from Redis) is after ``than``."""
    try:
        return than is not None and float(str(at)) > than
    except ValueError:
        return False


def iso(wall: float | None) -> str | None:
    return None if wall is None else datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")


def adopt(
    latches: Latches,
    states: Mapping[str, LatchState],
    group: str,
    state: str,
    version: int,
    fields: Mapping[str, Any],
) -> Adopted:
    """Make the local latch of ``group`` match ``state`` (``rolled_back``/``armed``) through the
    controller. ``kept_latch``: a re-arm was refused because the flag store recorded a later
    rollback; the caller re-publishes the rollback so the others follow."""
    runtime = states.get(group)
    if runtime is None:
        return "unchanged"
    origin = str(fields.get("origin") or "redis")
    if state == "rolled_back" and not runtime.rolled_back:
        kind = str(fields.get("kind"))
        wall = fields.get("at")
        latches.rollback(
            group,
            str(fields.get("reason") or "rollback broadcast by another replica"),
            kind=kind if kind in ROLLBACK_KINDS else "manual",  # type: ignore[arg-type]
            cause={
                "via": "broadcast",
                "origin_replica": origin,
                "version": version,
                "origin_at": iso(float(wall)) if wall not in (None, "") else None,
            },
            origin=origin,
        )
        return "applied"
    elif state == "armed" and runtime.rolled_back:
        last = runtime.last_rollback
        if last is not None and last.restored and not later(fields.get("at"), last.decided_wall):
            # The flag store recorded a rollback after this re-arm (or we cannot tell): when in
            # doubt, stable. Keep the latch and tell the others.
            logger.warning(
                "canary broadcast: %r re-armed on Redis but rolled back later in %s; keeping the latch",
                group,
                last.flag_store,
            )
            return "kept_latch"
        latches.rearm(group, origin=origin)
        return "applied"
    return "unchanged"

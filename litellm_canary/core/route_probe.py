"""The routing-only probe: which side a new request of a group would go to now, with no upstream call.

:func:`probe_route` runs the same decision as a request's first attempt (the rollback latch, the
request's conversation pin, the flag read through the same :class:`FlagReader` with the same
stickiness key) and returns it as a JSON-serialisable dict. It is what ``GET /canary/route`` serves:
a benchmark or an operator can see that a replica has latched without sending a chat request, so a
propagation figure is the propagation alone and not a request round trip.

A probe changes nothing: it opens no attempt, stamps no request, pins no conversation and emits no
decision (so no metric, trigger or window sees it). Its flag read is a real one, so it counts in
``status()["flag_variants"]`` / ``flag_errors`` and in the read-time breaker like a request's. What it
does not model is LiteLLM's own narrowing after the decision: a canary side that cannot serve
(every canary deployment cooling down) sends a real request to stable although the probe says canary.
"""

from __future__ import annotations

import uuid
from typing import Any

from openfeature.evaluation_context import EvaluationContext

from litellm_canary.core.controller import RolloutRuntime
from litellm_canary.core.decision import Pin, Side, decide
from litellm_canary.core.flags import FlagReader, targeting_key
from litellm_canary.core.rollback_record import RollbackRecord

__all__ = ["probe_route"]


def probe_route(
    runtime: RolloutRuntime,
    flags: FlagReader,
    *,
    user: str | None = None,
    session_id: str | None = None,
) -> dict[str, Any]:
    """The decision a new request of ``runtime``'s group would get now, for ``user`` / ``session_id``.

    Without either, the stickiness key is a fresh random one, as for a request that names neither
    (LiteLLM's trace id): a percentage rollout then answers like for an anonymous request.
    """
    config = runtime.config
    rolled_back = runtime.rolled_back  # read once: the answer is one consistent view
    record = runtime.last_rollback
    pin: Pin | None = runtime.pins.conversation(session_id) if session_id else None
    flag_value: str | None = None
    flag_side: Side | None = None
    flag_read = not rolled_back and not (pin is not None and pin.side is Side.STABLE)
    if flag_read:
        key = targeting_key(session_id=session_id, user=user, trace_id=uuid.uuid4().hex)
        attributes: dict[str, Any] = {"model_group": config.model_group}
        if user is not None:
            attributes["user"] = user
        read = flags.read(config.flag_key, EvaluationContext(key, attributes))
        flag_value, flag_side = read.value, read.side
    drain_open = rolled_back and pin is not None and runtime.pins.drain_open()
    decision = decide(
        rolled_back=rolled_back, flag_side=flag_side, pin=pin, drain_open=drain_open, forced=None
    )
    side = decision.side
    return {
        "group": config.model_group,
        "side": side.value,
        "reason": decision.reason.value,
        "pinned": decision.pinned,
        "latched": rolled_back,
        # Unix time this process latched (a follower of the flag file or the broadcast: its own, not
        # the decider's): with the publish time, the propagation of a rollback to this replica, free
        # of the probe's own round trip (same host, or synced clocks).
        "latched_at": _latched_wall(record) if rolled_back and record is not None else None,
        "flag_key": config.flag_key,
        "flag_read": flag_read,  # False: the latch or a stable pin decided without reading the flag
        "variant": flag_value,  # what the flag answered (or its error cause); None when not read
        "deployments": list(config.canary if side is Side.CANARY else config.stable),
        "user": user,
        "session_id": session_id,
    }


def _latched_wall(record: RollbackRecord) -> float | None:
    return record.latched_wall if record.latched_wall is not None else record.decided_wall

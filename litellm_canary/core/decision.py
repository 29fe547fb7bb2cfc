"""The routing decision: which side of a rollout serves one attempt.

Pure and tiny on purpose. It reads exactly three things — the rollout's latch, the flag's answer for
this request and the request's pin — so every way of changing routing is one of those three, and
"instant flip" and "no lingering canary state" can be checked here exhaustively. No I/O, no litellm.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Side(StrEnum):
    STABLE = "stable"
    CANARY = "canary"


class PinKind(StrEnum):
    REQUEST = "request"  # retries and fallback hops of one logical request
    CONVERSATION = "conversation"  # a session id or a Responses API previous_response_id


class Reason(StrEnum):
    FLAG = "flag"
    FLAG_ERROR = "flag_error"
    PINNED = "pinned"
    DRAINING = "draining"
    ROLLED_BACK = "rolled_back"
    FORCED = "forced"  # an allow-listed caller asked for a side (see litellm_canary.proxy)


@dataclass(frozen=True, slots=True)
class Pin:
    side: Side
    kind: PinKind
    deployment_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    side: Side
    reason: Reason
    deployment_id: str | None = None  # a pinned deployment to prefer within the side

    @property
    def pinned(self) -> bool:
        return self.reason in (Reason.PINNED, Reason.DRAINING)


def decide(
    *,
    rolled_back: bool,
    flag_side: Side | None,
    pin: Pin | None = None,
    drain_open: bool = False,
    forced: Side | None = None,
) -> Decision:
    """Choose the side for one attempt.

    ``flag_side`` is the flag's answer for this request (``None``: the flag could not be read; it
    may also be left ``None`` when ``rolled_back`` since the flag is then not consulted). A pin keeps
    its side while that side serves the request: stable always serves; the canary serves while the
    rollout is not rolled back and the flag gives this request to the canary. After a rollback only a
    conversation pin may stay on the canary, and only while its drain window is open. ``forced`` (a
    side an allow-listed caller asked for) wins over flag and pins, except that a forced canary never
    outranks the rollback latch.
    """
    if forced is Side.STABLE or (forced is Side.CANARY and not rolled_back):
        keep = pin.deployment_id if pin is not None and pin.side is forced else None
        return Decision(forced, Reason.FORCED, keep)
    if pin is not None:
        if pin.side is Side.STABLE:
            return Decision(Side.STABLE, Reason.PINNED, pin.deployment_id)
        if not rolled_back and flag_side is Side.CANARY:
            return Decision(Side.CANARY, Reason.PINNED, pin.deployment_id)
        if rolled_back and pin.kind is PinKind.CONVERSATION and drain_open:
            return Decision(Side.CANARY, Reason.DRAINING, pin.deployment_id)
    if rolled_back:
        return Decision(Side.STABLE, Reason.ROLLED_BACK)
    if flag_side is None:
        return Decision(Side.STABLE, Reason.FLAG_ERROR)
    return Decision(flag_side, Reason.FLAG)

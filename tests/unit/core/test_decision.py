"""The pure decision, exhaustively: every combination of latch, flag answer, pin and drain."""

from __future__ import annotations

import itertools

import pytest

from litellm_canary.core.decision import Decision, Pin, PinKind, Reason, Side, decide

FLAG_ANSWERS = [Side.STABLE, Side.CANARY, None]
PINS = [None] + [Pin(side, kind, "d1") for side in Side for kind in PinKind]


@pytest.mark.parametrize(
    ("rolled_back", "flag_side", "pin", "drain_open"),
    list(itertools.product([False, True], FLAG_ANSWERS, PINS, [False, True])),
)
def test_canary_only_when_serving(
    rolled_back: bool, flag_side: Side | None, pin: Pin | None, drain_open: bool
) -> None:
    decision = decide(rolled_back=rolled_back, flag_side=flag_side, pin=pin, drain_open=drain_open)
    if decision.side is Side.CANARY:
        draining = rolled_back and pin is not None and pin.kind is PinKind.CONVERSATION and drain_open
        assert (not rolled_back and flag_side is Side.CANARY) or draining
    if rolled_back and decision.side is Side.CANARY:
        assert decision.reason is Reason.DRAINING and pin is not None and pin.side is Side.CANARY


def test_flag_decides_when_nothing_else_does() -> None:
    assert decide(rolled_back=False, flag_side=Side.CANARY) == Decision(Side.CANARY, Reason.FLAG)
    assert decide(rolled_back=False, flag_side=Side.STABLE) == Decision(Side.STABLE, Reason.FLAG)


def test_unreadable_flag_routes_stable() -> None:
    assert decide(rolled_back=False, flag_side=None) == Decision(Side.STABLE, Reason.FLAG_ERROR)


def test_latch_beats_flag() -> None:
    assert decide(rolled_back=True, flag_side=Side.CANARY) == Decision(Side.STABLE, Reason.ROLLED_BACK)


def test_request_pin_keeps_side_and_deployment_while_canary_serves() -> None:
    pin = Pin(Side.CANARY, PinKind.REQUEST, "canary-2")
    assert decide(rolled_back=False, flag_side=Side.CANARY, pin=pin) == Decision(
        Side.CANARY, Reason.PINNED, "canary-2"
    )


def test_request_pin_on_canary_is_released_by_rollback_even_with_drain() -> None:
    pin = Pin(Side.CANARY, PinKind.REQUEST, "canary-2")
    decision = decide(rolled_back=True, flag_side=None, pin=pin, drain_open=True)
    assert decision == Decision(Side.STABLE, Reason.ROLLED_BACK)


def test_canary_pin_released_when_flag_flips_to_stable() -> None:
    pin = Pin(Side.CANARY, PinKind.CONVERSATION, "canary-1")
    assert decide(rolled_back=False, flag_side=Side.STABLE, pin=pin).side is Side.STABLE


def test_stable_pin_holds_even_if_flag_says_canary() -> None:
    pin = Pin(Side.STABLE, PinKind.CONVERSATION, "stable-1")
    assert decide(rolled_back=False, flag_side=Side.CANARY, pin=pin) == Decision(
        Side.STABLE, Reason.PINNED, "stable-1"
    )


def test_conversation_drains_on_canary_only_while_window_open() -> None:
    pin = Pin(Side.CANARY, PinKind.CONVERSATION, "canary-1")
    assert decide(rolled_back=True, flag_side=None, pin=pin, drain_open=True).reason is Reason.DRAINING
    assert decide(rolled_back=True, flag_side=None, pin=pin, drain_open=False).reason is Reason.ROLLED_BACK

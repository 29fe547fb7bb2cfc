"""Every emit is guarded: a listener that raises never stops the ones after it or escapes."""

from __future__ import annotations

import logging

import pytest

from litellm_canary.core.decision import Side
from litellm_canary.core.events import Signal
from litellm_canary.core.outcomes import Outcome, OutcomeRecorder


def test_a_failing_listener_is_logged_and_the_next_ones_still_run(caplog: pytest.LogCaptureFixture) -> None:
    signal: Signal[[int]] = Signal("test")
    seen: list[int] = []

    def broken(value: int) -> None:
        raise RuntimeError("observer bug")

    signal.connect(broken)
    disconnect = signal.connect(seen.append)
    with caplog.at_level(logging.ERROR, logger="litellm_canary.events"):
        signal.emit(1)
        signal.emit(2)
    assert seen == [1, 2] and signal.errors == 2
    assert len([r for r in caplog.records if "observer bug" in (r.exc_text or "")]) == 1  # once a minute
    disconnect()
    signal.emit(3)
    assert seen == [1, 2] and len(signal) == 1


def test_an_outcome_listener_that_raises_neither_escapes_record_nor_stops_the_others() -> None:
    recorder = OutcomeRecorder()
    seen: list[Outcome] = []
    recorder.add_listener(lambda outcome: 1 / 0)
    recorder.add_listener(seen.append)
    outcome = Outcome("chat", Side.CANARY, "c1", True, "success")
    recorder.record(outcome)
    assert seen == [outcome]
    assert recorder.summary("chat") == {"canary:success": 1}

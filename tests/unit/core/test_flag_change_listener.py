"""A flag-change listener (the flag-file following) that raises is logged, never breaks the provider's
events or the reads that follow."""

from __future__ import annotations

import logging
import threading

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext

from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagReader, MemoryFlagStore


def test_a_failing_listener_is_logged_and_later_changes_still_arrive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    domain = "flag-change-listener-test"
    store = MemoryFlagStore()
    store.set_side("chat", Side.STABLE)
    api.set_provider(store.provider, domain)
    reader = FlagReader(domain, probe_in_background=False)
    calls: list[int] = []
    second_call = threading.Event()

    def listener() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the listener broke")
        second_call.set()

    try:
        with caplog.at_level(logging.ERROR, logger="litellm_canary"):
            reader.on_configuration_changed(listener)
            store.set_side("chat", Side.CANARY)  # the first change: the listener raises
            store.set_side("chat", Side.STABLE)  # the second still reaches it
            assert second_call.wait(10)
        assert any("flag-change listener failed" in r.getMessage() for r in caplog.records)
        assert reader.read("chat", EvaluationContext("u1")).side is Side.STABLE
    finally:
        reader.close()

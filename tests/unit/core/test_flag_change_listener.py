"""A flag-change listener (the flag-file following) that raises is logged, never breaks the provider's
events or the reads that follow."""

from __future__ import annotations

import logging
import threading

from openfeature import api
from openfeature.evaluation_context import EvaluationContext

from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagReader, MemoryFlagStore


class _Awaited(logging.Handler):
    """Records from the SDK's handler threads, with an event to await the one we expect."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.ERROR)
        self.text = text
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


def test_a_failing_listener_is_logged_and_later_changes_still_arrive() -> None:
    domain = "flag-change-listener-test"
    store = MemoryFlagStore()
    store.set_side("chat", Side.STABLE)
    api.set_provider(store.provider, domain)
    reader = FlagReader(domain, probe_in_background=False)
    calls: list[int] = []
    second_call = threading.Event()
    lock = threading.Lock()

    def listener() -> None:
        with lock:
            calls.append(1)
            first = len(calls) == 1
        if first:
            raise RuntimeError("the listener broke")
        second_call.set()

    logged = _Awaited("flag-change listener failed")
    flags_logger = logging.getLogger("litellm_canary.flags")
    # independent of what earlier tests (or LiteLLM's logging setup) did to this logger
    was = flags_logger.disabled, flags_logger.level
    flags_logger.disabled, flags_logger.level = False, logging.ERROR
    flags_logger.addHandler(logged)
    try:
        reader.on_configuration_changed(listener)
        store.set_side("chat", Side.CANARY)  # the first change: the listener raises
        store.set_side("chat", Side.STABLE)  # the next one still reaches it
        assert second_call.wait(10)
        assert logged.seen.wait(10)
        assert reader.read("chat", EvaluationContext("u1")).side is Side.STABLE
    finally:
        flags_logger.removeHandler(logged)
        flags_logger.disabled, flags_logger.level = was
        reader.close()

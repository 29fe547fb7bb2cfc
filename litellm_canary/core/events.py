"""One small event type: a :class:`Signal` that components emit and others connect to.

Outcomes, decisions, successes, rollbacks, re-arms and verdicts all travel as signals. Every emit is
guarded in this one place: a listener that raises is logged (once per listener and minute) and
counted, and the listeners after it still run, so a fault in one listener never escapes into the
request path or the rollback that emitted the signal. Listeners run in the order they connected;
no component may rely on another's listener having run first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, ParamSpec

logger = logging.getLogger("litellm_canary.events")

P = ParamSpec("P")

_LOG_EVERY_S = 60.0


class Signal(Generic[P]):
    """Listeners ``listener(*args)`` called on :meth:`emit`, each guarded."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: tuple[Callable[P, object], ...] = ()
        self._lock = threading.Lock()
        self._logged_at: dict[int, float] = {}
        self.errors = 0

    def connect(self, listener: Callable[P, object]) -> Callable[[], None]:
        """Add ``listener``; the returned callable disconnects it."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def disconnect() -> None:
            with self._lock:
                self._listeners = tuple(fn for fn in self._listeners if fn is not listener)

        return disconnect

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for listener in self._listeners:  # a snapshot: (dis)connecting during an emit is safe
            try:
                listener(*args, **kwargs)
            except Exception:
                self._failed(listener)

    def __len__(self) -> int:
        return len(self._listeners)

    def _failed(self, listener: Callable[..., object]) -> None:
        self.errors += 1
        now = time.monotonic()
        key = id(listener)
        if now - self._logged_at.get(key, -_LOG_EVERY_S) >= _LOG_EVERY_S:
            self._logged_at[key] = now
            logger.exception(
                "%s listener %r failed (%d listener errors so far)", self.name, listener, self.errors
            )

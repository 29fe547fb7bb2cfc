"""Rate limits on the flag code's logging: at most one line per cause per minute from the reader and
its health watcher (:class:`LogThrottle`), and a filter that quiets the flagd provider's own log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

LOG_EVERY_S = 60.0
_FLAGD_LOGGER = "openfeature.contrib"


class LogThrottle:
    """Says whether a keyed log line is due: once per ``every_s`` per key."""

    def __init__(self, clock: Callable[[], float], every_s: float = LOG_EVERY_S) -> None:
        self._clock = clock
        self.every_s = every_s
        self._last_logged: dict[str, float] = {}

    def due(self, key: str) -> bool:
        """True (and the key's clock restarted) when ``key`` was not logged within ``every_s``."""
        now = self._clock()
        if now - self._last_logged.get(key, -self.every_s) >= self.every_s:
            self._last_logged[key] = now
            return True
        return False


class RateLimitedLogFilter(logging.Filter):
    """Passes each distinct message of a logger once per ``every_s``; counts what it suppresses.

    Installed on the flagd provider's logger, whose file watcher logs a traceback on every poll
    (10 a second) while its file is broken; the flag reader's own log says what that means.
    """

    def __init__(self, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s = every_s
        self._clock = clock
        self._last: dict[tuple[str, int, str], float] = {}
        self._lock = threading.Lock()
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            if now - self._last.get(key, -self.every_s) < self.every_s:
                self.suppressed += 1
                return False
            if len(self._last) > 1000:
                self._last.clear()
            self._last[key] = now
        if self.suppressed:
            record.msg = f"{record.msg} (similar records suppressed so far: {self.suppressed})"
        return True


provider_log_filter = RateLimitedLogFilter()


def quiet_flagd_logs() -> None:
    """Rate-limit the flagd provider's log (idempotent)."""
    flagd_logger = logging.getLogger(_FLAGD_LOGGER)
    if provider_log_filter not in flagd_logger.filters:
        flagd_logger.addFilter(provider_log_filter)

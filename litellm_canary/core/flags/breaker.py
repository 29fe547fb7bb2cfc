"""The read-time breaker: a flag whose reads are over their time budget is not read (it routes to
stable) until a probe read, paid by a background thread and never by a request, is within budget.

:class:`ReadBreaker` is one flag's breaker; :class:`ReadBreakers` holds the breakers of a reader and
runs their probes (:meth:`ReadBreakers.run_due_probes`) on its probe thread. The probe itself is a
callable the reader gives it: the breakers know nothing of OpenFeature.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from litellm_canary.core.config import FlagReadConfig

logger = logging.getLogger("litellm_canary.flags")

BREAKER_OPEN = "BREAKER_OPEN"  # reads of this flag were over budget: not read during the back-off


class ReadBreaker:
    """The read-time breaker of one flag: over-budget reads among the last ``of_last`` open it.

    Open, the flag is not read (stable) until ``open_until``; then one probe read, paid by the
    reader's probe thread (never a request), closes it when within budget or doubles the back-off.
    """

    def __init__(self, config: FlagReadConfig) -> None:
        self.config = config
        self.budget_s = config.budget_ms / 1000
        self.recent: deque[bool] = deque(maxlen=config.of_last)
        self.over = 0  # over-budget reads in ``recent``
        self.open_until: float | None = None
        self.backoff_s = config.backoff_s
        self.over_budget_reads = 0
        self.trips = 0
        self.probes = 0
        self.failed_probes = 0
        self.last_read_ms: float | None = None
        self.lock = threading.Lock()

    def record(self, seconds: float, now: float) -> bool:
        """Count one read's duration; True when this read opened the breaker."""
        slow = seconds > self.budget_s
        with self.lock:
            self.last_read_ms = seconds * 1000
            if len(self.recent) == self.recent.maxlen and self.recent[0]:
                self.over -= 1
            self.recent.append(slow)
            if not slow:
                return False
            self.over += 1
            self.over_budget_reads += 1
            if self.open_until is not None or self.over < self.config.trip_after:
                return False
            self.trips += 1
            self.open_until = now + self.backoff_s
            return True

    def probed(self, seconds: float, now: float) -> bool:
        """Record a probe's duration; True when it closed the breaker."""
        with self.lock:
            self.probes += 1
            self.last_read_ms = seconds * 1000
            if seconds <= self.budget_s:
                self.open_until = None
                self.recent.clear()
                self.over = 0
                self.backoff_s = self.config.backoff_s
                return True
            self.failed_probes += 1
            self.backoff_s = min(self.backoff_s * 2, self.config.max_backoff_s)
            self.open_until = now + self.backoff_s
            return False

    def view(self, now: float) -> dict[str, Any]:
        with self.lock:
            return {
                "state": "closed" if self.open_until is None else "open",
                "budget_ms": self.config.budget_ms,
                "probe_in_s": None if self.open_until is None else round(max(0.0, self.open_until - now), 3),
                "backoff_s": self.backoff_s,
                "over_budget_reads": self.over_budget_reads,
                "trips": self.trips,
                "probes": self.probes,
                "failed_probes": self.failed_probes,
                "last_read_ms": None if self.last_read_ms is None else round(self.last_read_ms, 3),
            }


class ReadBreakers:
    """The breakers of one reader (one per budgeted flag) and the thread that probes open ones.

    ``probe(flag_key)`` performs one read of the flag, whose duration decides the probe; without
    ``probe_in_background`` no thread is started and the caller runs :meth:`run_due_probes`.
    """

    def __init__(
        self,
        budgets: Mapping[str, FlagReadConfig],
        *,
        probe: Callable[[str], object],
        clock: Callable[[], float],
        probe_in_background: bool = True,
    ) -> None:
        self._breakers: dict[str, ReadBreaker] = {key: ReadBreaker(config) for key, config in budgets.items()}
        self._probe = probe
        self._clock = clock
        self._probe_in_background = probe_in_background
        self._probe_wake = threading.Condition()
        self.probe_thread: threading.Thread | None = None
        self._closed = False

    def get(self, flag_key: str) -> ReadBreaker | None:
        return self._breakers.get(flag_key)

    def status(self, flag_key: str) -> dict[str, Any] | None:
        breaker = self._breakers.get(flag_key)
        return None if breaker is None else breaker.view(self._clock())

    def tripped(self, flag_key: str, breaker: ReadBreaker) -> None:
        """Log a trip and wake (or start) the probe thread."""
        logger.warning(
            "canary flag %r: %d of the last %d reads took over %g ms (last %.1f ms): routing to stable "
            "without reading for %g s, then a probe read",
            flag_key,
            breaker.over,
            len(breaker.recent),
            breaker.config.budget_ms,
            breaker.last_read_ms or 0.0,
            breaker.backoff_s,
        )
        if self._probe_in_background:
            self._ensure_probe_thread()
        with self._probe_wake:
            self._probe_wake.notify_all()

    def run_due_probes(self) -> float | None:
        """Probe every open breaker whose back-off has ended; seconds until the next is due (or None).

        The probe thread calls this; without it (``probe_in_background=False``) the caller does.
        """
        next_due: float | None = None
        for flag_key, breaker in list(self._breakers.items()):
            open_until = breaker.open_until
            if open_until is None:
                continue
            now = self._clock()
            if now < open_until:
                wait = open_until - now
            else:
                start = self._clock()
                self._probe(flag_key)
                end = self._clock()
                if breaker.probed(end - start, end):
                    logger.warning(
                        "canary flag %r: probe read took %.1f ms, within budget: reading the flag again",
                        flag_key,
                        (end - start) * 1000,
                    )
                    continue
                logger.warning(
                    "canary flag %r: probe read took %.1f ms, over the %g ms budget: stable for %g s more",
                    flag_key,
                    (end - start) * 1000,
                    breaker.config.budget_ms,
                    breaker.backoff_s,
                )
                wait = breaker.backoff_s
            next_due = wait if next_due is None else min(next_due, wait)
        return next_due

    def _ensure_probe_thread(self) -> None:
        with self._probe_wake:
            if self.probe_thread is not None or self._closed:
                return
            self.probe_thread = threading.Thread(
                target=self._probe_loop, name="litellm-canary-flag-probe", daemon=True
            )
            self.probe_thread.start()

    def _probe_loop(self) -> None:
        while True:
            try:
                wait = self.run_due_probes()
            except Exception:  # the prober's own bug: keep the breakers open, try again later
                logger.exception("flag probe failed")
                wait = 1.0
            with self._probe_wake:
                if self._closed:
                    return
                self._probe_wake.wait(wait)
                if self._closed:
                    return

    def stop(self) -> threading.Thread | None:
        """Tell the probe thread to end; the thread to join (None when none ran)."""
        with self._probe_wake:
            self._closed = True
            self._probe_wake.notify_all()
            return self.probe_thread

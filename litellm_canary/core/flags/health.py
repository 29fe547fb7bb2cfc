"""The flag provider's health: its OpenFeature events (ERROR, STALE, READY) recorded and logged, and
the status a read checks before asking the provider (:class:`ProviderHealth`).

A flagd provider whose file is broken keeps serving its last flags while in ERROR: those answers are
not trusted, so a read while the provider is ERROR or STALE routes to stable (``unhealthy_cause``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from openfeature.client import OpenFeatureClient
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.provider import ProviderStatus

from litellm_canary.core.flags.log_limit import LogThrottle, provider_log_filter

logger = logging.getLogger("litellm_canary.flags")

# Causes of a read that did not ask the provider (the provider's own error codes are counted as-is).
PROVIDER_ERROR = "PROVIDER_ERROR"  # the provider reported ERROR (e.g. flagd cannot read its file)
PROVIDER_STALE = "PROVIDER_STALE"  # the provider reported STALE (its flags may be out of date)
_UNHEALTHY = {ProviderStatus.ERROR: PROVIDER_ERROR, ProviderStatus.STALE: PROVIDER_STALE}


class ProviderHealth:
    """Watches one OpenFeature client's provider through its events (on the SDK's handler threads).

    Handlers run on a thread pool, possibly after a later READY: the registry's status decides
    routing (:meth:`unhealthy_cause`); the events are only recorded and logged.
    """

    def __init__(self, client: OpenFeatureClient, clock: Callable[[], float]) -> None:
        self._client = client
        self._log = LogThrottle(clock)
        self.provider_events: Counter[str] = Counter()
        self.last_provider_error: str | None = None
        self._handlers: list[tuple[ProviderEvent, Callable[[EventDetails], None]]] = [
            (ProviderEvent.PROVIDER_ERROR, functools.partial(self._on_unhealthy, ProviderStatus.ERROR)),
            (ProviderEvent.PROVIDER_STALE, functools.partial(self._on_unhealthy, ProviderStatus.STALE)),
            (ProviderEvent.PROVIDER_READY, self._on_ready),
        ]
        for event, handler in self._handlers:
            self._client.add_handler(event, handler)

    def unhealthy_cause(self) -> str | None:
        """The read cause while the provider is ERROR or STALE, else None (may raise: the caller guards)."""
        return _UNHEALTHY.get(self._client.get_provider_status())

    def _on_unhealthy(self, event_status: ProviderStatus, details: EventDetails) -> None:
        status = event_status
        if details.error_code is ErrorCode.PROVIDER_FATAL:
            status = ProviderStatus.FATAL
        cause = _UNHEALTHY.get(status, f"PROVIDER_{status.value}")
        self.provider_events[cause] += 1
        message = details.message or (details.error_code.value if details.error_code else "no message")
        if self._client.get_provider_status() is not ProviderStatus.READY:
            self.last_provider_error = f"{details.provider_name or 'provider'}: {message}"
        if self._log.due(f"event:{cause}"):
            logger.warning(
                "flag provider is %s (%s): every managed group routes to stable until it is READY; "
                "%d such events so far",
                status.value,
                f"{details.provider_name or 'provider'}: {message}",
                self.provider_events[cause],
            )

    def _on_ready(self, details: EventDetails) -> None:
        self.provider_events["READY"] += 1
        if self.last_provider_error is not None:
            logger.warning("flag provider is READY again: managed groups follow their flags")
            self.last_provider_error = None

    def provider_status(self) -> str:
        try:
            return str(self._client.get_provider_status().value)
        except Exception as error:
            return f"UNKNOWN ({type(error).__name__})"

    def status(self) -> dict[str, Any]:
        """The flag source's health for ``status()``."""
        return {
            "provider_status": self.provider_status(),
            "last_error": self.last_provider_error,
            "events": dict(self.provider_events),
            "provider_log_suppressed": provider_log_filter.suppressed,
        }

    def on_configuration_changed(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (on an SDK handler thread) whenever the provider reports changed flags,
        e.g. the flagd file provider after it re-read its file; removed by :meth:`close`."""

        def changed(_details: EventDetails) -> None:
            try:
                listener()
            except Exception:  # a handler must never break the provider's event loop
                logger.exception("a flag-change listener failed")

        self._handlers.append((ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, changed))
        self._client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, changed)

    def close(self) -> None:
        """Remove the event handlers."""
        for event, handler in self._handlers:
            with contextlib.suppress(Exception):
                self._client.remove_handler(event, handler)

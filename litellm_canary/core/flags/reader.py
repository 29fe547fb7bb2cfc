"""Reading the canary flag per request (:class:`FlagReader`) and the request's stickiness key
(:func:`targeting_key`).

Reading goes through the OpenFeature API only (the provider the application set, in the configured
domain; straight at that provider when the SDK would add nothing, :mod:`.direct_evaluation`). A
flag answers ``"canary"``/``"stable"`` (string) or ``true``/``false`` (boolean); anything else —
unknown variant, missing flag, provider error, provider not ready — reads as "no answer",
which the decision turns into stable. Evaluations never raise into a request; each failure cause is
counted and logged once per cause per minute. The provider's health and the read-time breaker are
the reader's parts (:mod:`.health`, :mod:`.breaker`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagType

from litellm_canary.core.config import FlagReadConfig
from litellm_canary.core.decision import Side
from litellm_canary.core.flags.breaker import BREAKER_OPEN, ReadBreakers
from litellm_canary.core.flags.direct_evaluation import evaluate
from litellm_canary.core.flags.health import ProviderHealth
from litellm_canary.core.flags.log_limit import LogThrottle

logger = logging.getLogger("litellm_canary.flags")

_VARIANT_SIDES: Mapping[object, Side] = {"canary": Side.CANARY, "stable": Side.STABLE}
_PROBE_CONTEXT = EvaluationContext(targeting_key="litellm-canary-probe")


@dataclass(frozen=True, slots=True)
class FlagRead:
    side: Side | None  # None: no usable answer (routes to stable)
    value: str  # what the flag said, or the error cause
    error: str | None = None


class FlagReader:
    """Evaluates canary flags through one OpenFeature client; never raises.

    A read routes to stable, counted per cause in :attr:`errors`, when the provider answers with an
    error, when the provider's status is ERROR or STALE (a flagd provider whose file is broken keeps
    serving its last flags while in ERROR: those answers are not trusted), or while the flag's
    read-time breaker is open. Routing returns to the flag by itself once the provider reports
    READY again, and once a probe read is back within budget.
    """

    def __init__(
        self,
        domain: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        budgets: Mapping[str, FlagReadConfig] | None = None,
        probe_in_background: bool = True,
    ) -> None:
        self._client: OpenFeatureClient = api.get_client(domain)
        self._boolean_flags: set[str] = set()
        self._clock = clock
        self.errors: Counter[str] = Counter()
        self.variants: Counter[str] = Counter()
        self._log = LogThrottle(clock)
        self._breakers = ReadBreakers(
            budgets or {},
            probe=lambda flag_key: self._resolve(flag_key, _PROBE_CONTEXT),
            clock=clock,
            probe_in_background=probe_in_background,
        )
        self._health = ProviderHealth(self._client, clock)

    # -- the request path --------------------------------------------------------------------------

    def read(self, flag_key: str, context: EvaluationContext) -> FlagRead:
        breaker = self._breakers.get(flag_key)
        if breaker is not None and breaker.open_until is not None:
            return self._failed(flag_key, BREAKER_OPEN, f"reads over {breaker.config.budget_ms:g} ms")
        try:
            unhealthy = self._health.unhealthy_cause()
        except Exception as error:  # a broken registry must not reach the request either
            return self._failed(flag_key, f"EXCEPTION:{type(error).__name__}")
        if unhealthy is not None:
            return self._failed(flag_key, unhealthy, self._health.last_provider_error or "")
        if breaker is None:
            read, detail = self._resolve(flag_key, context)
        else:
            start = self._clock()
            read, detail = self._resolve(flag_key, context)
            now = self._clock()
            if breaker.record(now - start, now):
                self._breakers.tripped(flag_key, breaker)
        if read.error is not None:
            return self._failed(flag_key, read.error, detail)
        self.variants[read.value] += 1
        return read

    def _resolve(self, flag_key: str, context: EvaluationContext) -> tuple[FlagRead, str]:
        """One evaluation, nothing counted: the read and a detail for the log."""
        try:
            if flag_key in self._boolean_flags:
                return _boolean_read(evaluate(self._client, FlagType.BOOLEAN, flag_key, False, context)), ""
            details = evaluate(self._client, FlagType.STRING, flag_key, "stable", context)
            if details.error_code is ErrorCode.TYPE_MISMATCH:
                boolean = evaluate(self._client, FlagType.BOOLEAN, flag_key, False, context)
                if boolean.error_code is None:
                    self._boolean_flags.add(flag_key)
                return _boolean_read(boolean), ""
        except Exception as error:  # a misbehaving provider or hook must not reach the request
            cause = f"EXCEPTION:{type(error).__name__}"
            return FlagRead(None, cause, cause), ""
        if details.error_code is not None:
            cause = str(details.error_code.value)
            return FlagRead(None, cause, cause), details.error_message or ""
        side = _VARIANT_SIDES.get(details.value)
        if side is None:
            return FlagRead(None, "UNKNOWN_VARIANT", "UNKNOWN_VARIANT"), repr(details.value)
        return FlagRead(side, details.value), ""

    def _failed(self, flag_key: str, cause: str, detail: str = "") -> FlagRead:
        self.errors[cause] += 1
        if self._log.due(f"{flag_key}:{cause}"):
            logger.warning(
                "canary flag %r unreadable (%s%s): routing to stable; %d such reads so far",
                flag_key,
                cause,
                f" {detail}" if detail else "",
                self.errors[cause],
            )
        return FlagRead(None, cause, cause)

    # -- the provider's health and the breakers, as status() shows them ----------------------------

    @property
    def provider_events(self) -> Counter[str]:
        return self._health.provider_events

    @property
    def last_provider_error(self) -> str | None:
        return self._health.last_provider_error

    def provider_status(self) -> str:
        return self._health.provider_status()

    def source_status(self) -> dict[str, Any]:
        """The flag source's health for ``status()``."""
        return self._health.status()

    def breaker_status(self, flag_key: str) -> dict[str, Any] | None:
        return self._breakers.status(flag_key)

    def run_due_probes(self) -> float | None:
        """Probe every open breaker whose back-off has ended; seconds until the next is due (or None).

        The probe thread calls this; without it (``probe_in_background=False``) the caller does.
        """
        return self._breakers.run_due_probes()

    @property
    def _probe_thread(self) -> threading.Thread | None:
        return self._breakers.probe_thread

    def on_configuration_changed(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever the provider reports changed flags (off the request path)."""
        self._health.on_configuration_changed(listener)

    def close(self) -> None:
        """Stop the probe thread and remove the provider event handlers."""
        thread = self._breakers.stop()
        self._health.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)


def _boolean_read(details: FlagEvaluationDetails[Any]) -> FlagRead:
    if details.error_code is not None:
        cause = str(details.error_code.value)
        return FlagRead(None, cause, cause)
    value = str(details.value).lower()
    return FlagRead(Side.CANARY if details.value is True else Side.STABLE, value)


def targeting_key(
    *,
    session_id: object = None,
    user: object = None,
    api_key_hash: object = None,
    trace_id: object = None,
) -> str | None:
    """The request's stickiness key: session id, then end user, then API-key hash, then trace id."""
    for candidate in (session_id, user, api_key_hash, trace_id):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None

"""Closing each attempt exactly once and reporting its :class:`~litellm_canary.core.outcomes.Outcome`.

:class:`CanaryCallbacks` is a ``CustomLogger``: an attempt is closed on success, on the per-attempt
failure hook, or on a failure event for errors that only it sees (mid-stream errors, sync calls).
It finds the attempt through the request's stamp (:mod:`~litellm_canary.core.request_stamps`).
Successful attempts are emitted on :attr:`CanaryCallbacks.successes` ``(outcome, logging kwargs,
response)`` (eval sampling, feedback), every listener guarded. Outcomes on managed deployments that
no decision covered (sync or by-id calls that LiteLLM routed on its own) are counted as
``unsteered``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger
from litellm.litellm_core_utils.core_helpers import get_metadata_variable_name_from_kwargs

from litellm_canary.core.controller import RolloutRuntime
from litellm_canary.core.events import Signal
from litellm_canary.core.outcomes import Outcome, seconds_between, status_class
from litellm_canary.core.probe import is_probe
from litellm_canary.core.request_stamps import Stamp, repin_conversation, stamp_key, stamps_in

logger = logging.getLogger("litellm_canary.routing")

__all__ = ["CanaryCallbacks"]


class CanaryCallbacks(CustomLogger):
    """Closes attempts and reports their outcomes (one per attempt, never two)."""

    def __init__(self, runtimes: Mapping[str, RolloutRuntime], on_outcome: Callable[[Outcome], None]) -> None:
        super().__init__()
        # LiteLLM de-duplicates loggers by class name and public scalar attributes: one per canary.
        self.canary_instance = f"{id(self):x}"
        self._runtimes = runtimes
        self._on_outcome = on_outcome
        self._group_of_id = {
            deployment_id: runtime.config.model_group
            for runtime in runtimes.values()
            for deployment_id in (*runtime.config.stable, *runtime.config.canary)
        }
        # (outcome, logging kwargs, response) of each successful attempt (eval sampling, feedback).
        self.successes: Signal[[Outcome, Mapping[str, Any], Any]] = Signal("success")
        # Outcomes on a managed deployment that no canary decision covered (sync calls, calls that
        # address a deployment by id): LiteLLM routed them on its own. Counted per group.
        self.unsteered: Counter[str] = Counter()

    def _stamp(
        self, stamps: dict[str, Stamp] | None, deployment_id: object, trace_id: object
    ) -> tuple[RolloutRuntime, Stamp] | None:
        if stamps is None or not isinstance(deployment_id, str):
            return None
        group = self._group_of_id.get(deployment_id)
        if group is None:
            return None
        stamp = stamps.get(stamp_key(group, trace_id))
        if not isinstance(stamp, Stamp):
            return None
        # With a trace id the stamp is this request's own. Without one, insist on the deployment: a
        # metadata dict shared by concurrent requests may carry another request's stamp. (LiteLLM
        # writes `model_info` into that shared dict too, so the logged deployment can be off.)
        if not trace_id and stamp.deployment_id and stamp.deployment_id != deployment_id:
            return None
        return self._runtimes[group], stamp

    def _only_open_stamp(
        self, stamps: dict[str, Stamp] | None, deployment_id: object
    ) -> tuple[RolloutRuntime, Stamp] | None:
        """The one open stamp on ``deployment_id``, if there is exactly one. The proxy's Responses API
        logs under another trace id than it routed with; the request's own metadata still holds it."""
        group = self._group_of_id.get(deployment_id) if isinstance(deployment_id, str) else None
        if stamps is None or group is None:
            return None
        candidates = [
            stamp
            for key, stamp in stamps.items()
            if (key == group or key.startswith(f"{group}|"))
            and isinstance(stamp, Stamp)
            and stamp.deployment_id in (deployment_id, "")
            and stamp.attempt.outcome is None
        ]
        return (self._runtimes[group], candidates[0]) if len(candidates) == 1 else None

    def _close(
        self, found: tuple[RolloutRuntime, Stamp] | None, outcome: Outcome | None, status: str
    ) -> bool:
        if found is None:
            return False
        runtime, stamp = found
        if runtime.pins.close(stamp.attempt, status) and outcome is not None:
            self._on_outcome(outcome)
            return True
        return False

    def _unsteered(self, kwargs: Mapping[str, Any], deployment_id: object) -> None:
        group = self._group_of_id.get(deployment_id) if isinstance(deployment_id, str) else None
        if group is None or is_probe(kwargs):
            return
        first = group not in self.unsteered
        self.unsteered[group] += 1
        if first:
            logger.warning(
                "a call reached managed deployment %r of %r without a canary decision (a sync call "
                "or a call addressing the deployment by id): LiteLLM routed it on its own. "
                "Use async calls on the group, or Canary.route_sync_calls(); counted as 'unsteered'",
                deployment_id,
                group,
            )

    def _finished(
        self, kwargs: Mapping[str, Any], start_time: Any, end_time: Any, ok: bool, response: Any = None
    ) -> None:
        slo = kwargs.get("standard_logging_object") or {}
        deployment_id = slo.get("model_id") or (kwargs.get("model_info") or {}).get("id")
        trace_id = kwargs.get("litellm_trace_id") or slo.get("trace_id")
        stamps = stamps_in(kwargs.get("litellm_params"), kwargs)
        found = self._stamp(stamps, deployment_id, trace_id)
        if found is None and slo.get("trace_id") and slo.get("trace_id") != trace_id:
            # In the proxy the logging object has its own trace id; the request's is in the payload.
            found = self._stamp(stamps, deployment_id, slo.get("trace_id"))
        if found is None:
            found = self._only_open_stamp(stamps, deployment_id)
        if found is None:
            if stamps is None:
                self._unsteered(kwargs, deployment_id)
            return
        runtime, stamp = found
        if stamp.attempt.outcome is not None:
            # Closed already: in the proxy each event reaches the canary twice (its own logger and
            # the proxy entry that forwards), so the second returns here, before any other work.
            return
        served_by = deployment_id if isinstance(deployment_id, str) else stamp.deployment_id
        latency = seconds_between(slo.get("startTime"), slo.get("endTime")) or seconds_between(
            start_time, end_time
        )
        ttft = seconds_between(slo.get("startTime"), slo.get("completionStartTime")) if ok else None
        status = "success" if ok else status_class(kwargs.get("exception"))
        outcome = Outcome(
            runtime.config.model_group,
            stamp.side,
            served_by,
            ok,
            status,
            latency,
            ttft,
            stream=bool(kwargs.get("stream")),
        )
        if ok:
            repin_conversation(runtime, stamp, served_by)
        if self._close(found, outcome, status) and ok:
            self.successes.emit(outcome, kwargs, response)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._finished(kwargs, start_time, end_time, ok=True, response=response_obj)

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._finished(kwargs, start_time, end_time, ok=True, response=response_obj)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._finished(kwargs, start_time, end_time, ok=False)

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._finished(kwargs, start_time, end_time, ok=False)

    async def async_post_call_failure_deployment_hook(
        self,
        request_data: Mapping[str, object],
        exception: Exception,
        call_type: Any,
        fallback_depth: int | None = None,
    ) -> None:
        bucket = request_data.get(get_metadata_variable_name_from_kwargs(request_data))
        model_info = (bucket.get("model_info") if isinstance(bucket, dict) else None) or {}
        deployment_id = model_info.get("id")
        found = self._stamp(stamps_in(request_data), deployment_id, request_data.get("litellm_trace_id"))
        if found is None:
            return
        runtime, stamp = found
        served_by = deployment_id if isinstance(deployment_id, str) else stamp.deployment_id
        status = status_class(exception)
        self._close(found, Outcome(runtime.config.model_group, stamp.side, served_by, False, status), status)

"""The LiteLLM glue: the only module of the core that imports litellm.

Two public extension points carry the canary:

* a custom routing strategy (``router.register_plugin``) makes the decision on **every attempt**,
  sync and async alike (``completion``, ``acompletion``, streams, ``aresponses``, ``aembedding``,
  retries and fallback hops). We chose it over ``async_filter_deployments`` because that hook is
  async-only, so sync ``Router.completion`` would silently bypass the canary decision. The price:
  a registered strategy replaces routing for every group and bypasses cooldowns, so for managed
  groups this module applies LiteLLM's cooldowns and weighted ``simple_shuffle`` itself, and it
  hands unmanaged groups back to the Router's own healthy-deployment selection followed by
  ``simple_shuffle`` (LiteLLM's default strategy).
* a ``CustomLogger`` closes each attempt exactly once — on success, on the per-attempt
  failure hook, or on a failure event for errors that only it sees (mid-stream errors, sync calls).

Per-request state lives in the request's own LiteLLM metadata: a stamp per model group and logical
request (keyed by ``litellm_trace_id``, which every retry and fallback hop of a request shares), so
retries keep their side, a metadata dict that the caller reuses for several requests (even
concurrently) keeps them apart, and nothing is left behind when the request ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from litellm.integrations.custom_logger import CustomLogger
from litellm.litellm_core_utils.core_helpers import get_metadata_variable_name_from_kwargs
from litellm.responses.utils import ResponsesAPIRequestUtils
from litellm.router_strategy.simple_shuffle import simple_shuffle
from litellm.types.router import CustomRoutingStrategyBase
from openfeature.evaluation_context import EvaluationContext
from opentelemetry import trace

from litellm_canary.controller import RolloutRuntime
from litellm_canary.decision import Decision, Pin, PinKind, Reason, Side, decide
from litellm_canary.flags import FlagReader, targeting_key
from litellm_canary.outcomes import Outcome, seconds_between, status_class
from litellm_canary.pins import Attempt

logger = logging.getLogger("litellm_canary.router_hook")

STAMP_KEY = "litellm_canary"
FORCED_SIDE_KEY = "litellm_canary_forced_side"  # a Side instance, never JSON: set by litellm_canary.proxy
COOLDOWN_VIEW_S = 0.05
_MAX_STAMPS = 32  # per metadata dict; only a dict reused across many requests gets near it
_METADATA_KEYS = ("metadata", "litellm_metadata")


@dataclass(slots=True)
class Stamp:
    """The side and the open attempt of one logical request in one managed group."""

    side: Side
    deployment_id: str
    attempt: Attempt


def _stamps_in(*containers: Mapping[str, object] | None) -> dict[str, Stamp] | None:
    """Our per-group stamps, wherever LiteLLM carried the request's metadata to."""
    for container in containers:
        for key in _METADATA_KEYS:
            bucket = container.get(key) if container else None
            if isinstance(bucket, dict) and isinstance(bucket.get(STAMP_KEY), dict):
                stamps: dict[str, Stamp] = bucket[STAMP_KEY]
                return stamps
    return None


def stamp_key(model_group: str, trace_id: object) -> str:
    return f"{model_group}|{trace_id}" if isinstance(trace_id, str) and trace_id else model_group


def _prune(stamps: dict[str, Stamp]) -> None:
    """Drop stamps of finished attempts from a metadata dict that the caller keeps reusing."""
    if len(stamps) >= _MAX_STAMPS:
        for key in [key for key, stamp in stamps.items() if stamp.attempt.outcome is not None]:
            stamps.pop(key, None)


def _session_id(request: Mapping[str, Any]) -> str | None:
    for key in _METADATA_KEYS:
        bucket = request.get(key)
        if isinstance(bucket, dict) and isinstance(bucket.get("session_id"), str) and bucket["session_id"]:
            return str(bucket["session_id"])
    session = request.get("litellm_session_id")
    return session if isinstance(session, str) and session else None


class CanaryRouting(CustomRoutingStrategyBase):
    """The routing strategy registered on the Router."""

    def __init__(
        self,
        router: Any,
        runtimes: Mapping[str, RolloutRuntime],
        flags: FlagReader,
        on_outcome: Callable[[Outcome], None],
    ) -> None:
        self._router = router
        self._on_outcome = on_outcome
        self._runtimes = runtimes
        self._flags = flags
        self._group_of_id = {
            deployment_id: runtime.config.model_group
            for runtime in runtimes.values()
            for deployment_id in (*runtime.config.stable, *runtime.config.canary)
        }
        self._deployments: dict[str, list[Mapping[str, Any]]] = {}
        self._cooling: dict[tuple[str, ...], tuple[float, frozenset[str]]] = {}
        self._registry_version = -1
        self.passthrough = False  # set by detach: every group routed as without the canary
        self.decision_listeners: list[Callable[[str, Decision, str], None]] = []
        self.pick_errors = 0

    # -- LiteLLM entry points --------------------------------------------------------------------

    async def async_get_available_deployment(  # type: ignore[override]
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: str | list[object] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, object] | None = None,
    ) -> Mapping[str, Any]:
        runtime = self._managed(model)
        if runtime is None:
            healthy = await self._router.select(model, request_kwargs, kind="healthy")
            if isinstance(healthy, Mapping):  # the caller addressed one deployment by id
                return healthy
            return self._shuffle(healthy, model, request_kwargs)
        return self._guarded_pick(runtime, request_kwargs)

    def get_available_deployment(  # type: ignore[override]
        self,
        model: str,
        messages: list[dict[str, str]] | None = None,
        input: str | list[object] | None = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, object] | None = None,
    ) -> Mapping[str, Any]:
        runtime = self._managed(model)
        if runtime is None:
            registry = self._router.registry()
            if registry.has_deployment(model):  # addressed by deployment id
                owner = registry.resolve(model, kind="group_of_id")
                return next(d for d in registry.deployments(owner) if d["model_info"]["id"] == model)
            group = list(registry.deployments(model) or [])
            return self._shuffle(self._without_cooldowns(group), model, request_kwargs)
        return self._guarded_pick(runtime, request_kwargs)

    # -- the decision ----------------------------------------------------------------------------

    def _managed(self, model: str) -> RolloutRuntime | None:
        if self.passthrough:
            return None
        runtime = self._runtimes.get(model)
        if runtime is None:
            # A caller addressing a managed deployment by id gets the group's decision, not a bypass.
            group = self._group_of_id.get(model)
            if group is not None:
                runtime = self._runtimes[group]
        return runtime

    def _guarded_pick(self, runtime: RolloutRuntime, request: dict[str, Any] | None) -> Mapping[str, Any]:
        """``pick``, except that nothing it could raise reaches the request: that goes to stable."""
        try:
            return self.pick(runtime, request if request is not None else {})
        except Exception:
            self.pick_errors += 1
            logger.exception("canary decision failed for %r; routing to stable", runtime.config.model_group)
            deployment = self._deployment_for(runtime, Decision(Side.STABLE, Reason.FLAG_ERROR))
            assert deployment is not None
            return deployment

    def pick(self, runtime: RolloutRuntime, request: dict[str, Any]) -> Mapping[str, Any]:
        config = runtime.config
        # LiteLLM's own metadata bucket (`litellm_metadata` for the Responses API), never the
        # OpenAI `metadata` that is sent upstream.
        bucket = get_metadata_variable_name_from_kwargs(request)
        metadata = request.get(bucket)
        if not isinstance(metadata, dict):
            metadata = request[bucket] = {}
        stamps: dict[str, Stamp] = metadata.setdefault(STAMP_KEY, {})
        key = stamp_key(config.model_group, request.get("litellm_trace_id"))
        stamp = stamps.get(key)
        session_id = _session_id(request)
        if stamp is not None:
            # This is a retry or fallback hop: the previous attempt ended without success. If no
            # failure callback reported it, count it here so that no attempt goes missing.
            if runtime.pins.close(stamp.attempt, "retried"):
                self._on_outcome(
                    Outcome(config.model_group, stamp.side, stamp.deployment_id, False, "retried")
                )
            pin: Pin | None = Pin(stamp.side, PinKind.REQUEST, stamp.deployment_id)
        else:
            pin = self._conversation_pin(runtime, request, session_id)

        forced = metadata.get(FORCED_SIDE_KEY)
        forced = forced if isinstance(forced, Side) else None  # only our own marker, never a client's str
        flag_side: Side | None = None
        if forced is None and not runtime.rolled_back and not (pin is not None and pin.side is Side.STABLE):
            read = self._flags.read(config.flag_key, self._context(request, metadata, session_id))
            runtime.last_flag_value = read.value
            flag_side = read.side
        drain_open = runtime.rolled_back and pin is not None and runtime.pins.drain_open()
        decision = decide(
            rolled_back=runtime.rolled_back,
            flag_side=flag_side,
            pin=pin,
            drain_open=drain_open,
            forced=forced,
        )

        deployment = self._deployment_for(runtime, decision)
        if deployment is None:  # no canary deployment out of cooldown: the canary is not serving
            decision = Decision(Side.STABLE, Reason.FLAG)
            deployment = self._deployment_for(runtime, decision)
            assert deployment is not None
        deployment_id: str = deployment["model_info"]["id"]
        attempt = runtime.pins.open(decision.side, deployment_id)
        _prune(stamps)
        stamps[key] = Stamp(decision.side, deployment_id, attempt)
        if session_id is not None:
            runtime.pins.pin_conversation(session_id, decision.side, deployment_id)
        for listener in self.decision_listeners:
            try:
                listener(config.model_group, decision, deployment_id)
            except Exception:  # an observer's bug must not change routing
                logger.exception("decision listener %r failed", listener)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(
                {
                    "litellm_canary.model_group": config.model_group,
                    "litellm_canary.side": decision.side.value,
                    "litellm_canary.deployment": deployment_id,
                    "litellm_canary.flag_variant": runtime.last_flag_value or "",
                    "litellm_canary.pinned": decision.pinned,
                    "litellm_canary.reason": decision.reason.value,
                }
            )
        return deployment

    def _conversation_pin(
        self, runtime: RolloutRuntime, request: Mapping[str, Any], session_id: str | None
    ) -> Pin | None:
        previous = request.get("previous_response_id")
        if isinstance(previous, str) and previous:
            try:
                deployment_id = ResponsesAPIRequestUtils.get_model_id_from_response_id(previous)
            except Exception:  # not one of LiteLLM's encoded ids: no deployment to stick to
                deployment_id = None
            side = runtime.config.side_of(deployment_id) if deployment_id else None
            if side is not None and deployment_id is not None:
                return Pin(Side(side), PinKind.CONVERSATION, deployment_id)
        if session_id is not None:
            return runtime.pins.conversation(session_id)
        return None

    def _context(
        self, request: Mapping[str, Any], metadata: Mapping[str, Any], session_id: object
    ) -> EvaluationContext:
        user = request.get("user") or metadata.get("user_api_key_end_user_id")
        key = targeting_key(
            session_id=session_id,
            user=user,
            api_key_hash=metadata.get("user_api_key_hash"),
            trace_id=request.get("litellm_trace_id"),
        )
        attributes: dict[str, Any] = {"model_group": metadata.get("model_group") or ""}
        if isinstance(user, str):
            attributes["user"] = user
        return EvaluationContext(key, attributes)

    # -- choosing a deployment within a side -----------------------------------------------------

    def _side_deployments(self, runtime: RolloutRuntime, side: Side) -> list[Mapping[str, Any]]:
        registry = self._router.registry()
        if registry.version != self._registry_version:
            self._registry_version = registry.version
            self._deployments = {}
        key = f"{runtime.config.model_group}\x00{side.value}"
        cached = self._deployments.get(key)
        if cached is None:
            ids = runtime.config.canary if side is Side.CANARY else runtime.config.stable
            by_id = {d["model_info"]["id"]: d for d in registry.deployments(runtime.config.model_group) or []}
            cached = self._deployments[key] = [by_id[i] for i in ids if i in by_id]
        return cached

    def canary_cooldowns(self, runtime: RolloutRuntime) -> list[str]:
        """The canary deployments LiteLLM has put into cooldown (for the cooldown trigger)."""
        ids = list(runtime.config.canary)
        return [
            deployment_id
            for deployment_id, _ in self._router.health().cooldowns.get_active_cooldowns(ids, None)
        ]

    def _without_cooldowns(self, deployments: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        ids = tuple(d["model_info"]["id"] for d in deployments)
        now = time.monotonic()
        cached = self._cooling.get(ids)
        if cached is None or cached[0] <= now:
            # LiteLLM's cooldown lookup costs ~30 us; cooldowns last seconds, so a 50 ms view is enough.
            active = self._router.health().cooldowns.get_active_cooldowns(list(ids), None)
            cached = self._cooling[ids] = (now + COOLDOWN_VIEW_S, frozenset(i for i, _ in active))
        cooling = cached[1]
        return (
            [d for d in deployments if d["model_info"]["id"] not in cooling] if cooling else list(deployments)
        )

    def _deployment_for(self, runtime: RolloutRuntime, decision: Decision) -> Mapping[str, Any] | None:
        side = self._side_deployments(runtime, decision.side)
        healthy = self._without_cooldowns(side)
        if decision.deployment_id is not None:
            for deployment in healthy:
                if deployment["model_info"]["id"] == decision.deployment_id:
                    return deployment
        if not healthy:
            if decision.side is Side.CANARY:
                return None
            # Every stable deployment is cooling down: stable is still the only place to go.
            healthy = side
        if len(healthy) == 1:
            return healthy[0]
        return self._shuffle(healthy, runtime.config.model_group, None)

    def _shuffle(
        self, deployments: Sequence[Mapping[str, Any]], model: str, request: Mapping[str, Any] | None
    ) -> Mapping[str, Any]:
        resolve: Callable[[str], str | None] = lambda name: None  # noqa: E731 - no aliases within a side
        chosen: Mapping[str, Any] = simple_shuffle(resolve, deployments, model, request)
        return chosen


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
        # Called with (outcome, logging kwargs, response) of each successful attempt (eval sampling).
        self.success_listeners: list[Callable[[Outcome, Mapping[str, Any], Any], None]] = []

    def _stamp(
        self, stamps: dict[str, Stamp] | None, deployment_id: object, trace_id: object
    ) -> tuple[RolloutRuntime, Stamp] | None:
        if stamps is None or not isinstance(deployment_id, str):
            return None
        group = self._group_of_id.get(deployment_id)
        if group is None:
            return None
        stamp = stamps.get(stamp_key(group, trace_id))
        if stamp is None:
            return None
        # With a trace id the stamp is this request's own. Without one, insist on the deployment: a
        # metadata dict shared by concurrent requests may carry another request's stamp. (LiteLLM
        # writes `model_info` into that shared dict too, so the logged deployment can be off.)
        if not trace_id and stamp.deployment_id != deployment_id:
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
            and stamp.deployment_id == deployment_id
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

    def _finished(
        self, kwargs: Mapping[str, Any], start_time: Any, end_time: Any, ok: bool, response: Any = None
    ) -> None:
        slo = kwargs.get("standard_logging_object") or {}
        deployment_id = slo.get("model_id") or (kwargs.get("model_info") or {}).get("id")
        trace_id = kwargs.get("litellm_trace_id") or slo.get("trace_id")
        stamps = _stamps_in(kwargs.get("litellm_params"), kwargs)
        found = self._stamp(stamps, deployment_id, trace_id)
        if found is None and slo.get("trace_id") and slo.get("trace_id") != trace_id:
            # In the proxy the logging object has its own trace id; the request's is in the payload.
            found = self._stamp(stamps, deployment_id, slo.get("trace_id"))
        if found is None:
            found = self._only_open_stamp(stamps, deployment_id)
        if found is None:
            return
        runtime, stamp = found
        latency = seconds_between(slo.get("startTime"), slo.get("endTime")) or seconds_between(
            start_time, end_time
        )
        ttft = seconds_between(slo.get("startTime"), slo.get("completionStartTime")) if ok else None
        status = "success" if ok else status_class(kwargs.get("exception"))
        outcome = Outcome(
            runtime.config.model_group,
            stamp.side,
            stamp.deployment_id,
            ok,
            status,
            latency,
            ttft,
            stream=bool(kwargs.get("stream")),
        )
        if self._close(found, outcome, status) and ok:
            for listener in self.success_listeners:
                try:
                    listener(outcome, kwargs, response)
                except Exception:  # an observer's bug must not break outcome reporting
                    logger.exception("success listener %r failed", listener)

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
        found = self._stamp(
            _stamps_in(request_data), model_info.get("id"), request_data.get("litellm_trace_id")
        )
        if found is None:
            return
        runtime, stamp = found
        status = status_class(exception)
        self._close(
            found, Outcome(runtime.config.model_group, stamp.side, stamp.deployment_id, False, status), status
        )

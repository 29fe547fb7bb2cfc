"""The side of one attempt: read the request's stamps and pins, the flag, decide, then stamp.

:class:`SideDecider` is what the async deployment filter and the opt-in sync strategy share:
:meth:`~SideDecider.decide` picks the side of an attempt (a retry keeps its request's side, a
conversation its pin, the rollback latch wins, else the flag), :meth:`~SideDecider.commit` opens the
attempt, stamps the request, pins its conversation and emits :attr:`SideDecider.decisions`
``(model_group, decision, deployment_id)`` (every listener guarded: an observer's bug never changes
routing).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from litellm.litellm_core_utils.core_helpers import get_metadata_variable_name_from_kwargs
from litellm.responses.utils import ResponsesAPIRequestUtils
from openfeature.evaluation_context import EvaluationContext
from opentelemetry import trace

from litellm_canary.core.controller import RolloutRuntime
from litellm_canary.core.decision import Decision, Pin, PinKind, Reason, Side, decide
from litellm_canary.core.events import Signal
from litellm_canary.core.flags import FlagReader, targeting_key
from litellm_canary.core.outcomes import Outcome
from litellm_canary.core.request_stamps import (
    FORCED_SIDE_KEY,
    STAMP_KEY,
    PendingStamp,
    Stamp,
    prune,
    session_id_of,
    stamp_key,
)

__all__ = ["SideDecider"]


class SideDecider:
    """Decides and stamps the side of each attempt of the managed groups."""

    def __init__(
        self,
        runtimes: Mapping[str, RolloutRuntime],
        flags: FlagReader,
        on_outcome: Callable[[Outcome], None],
    ) -> None:
        self._runtimes = runtimes
        self._flags = flags
        self._on_outcome = on_outcome
        self.decisions: Signal[[str, Decision, str]] = Signal("decision")
        self.canary_not_serving: Counter[str] = Counter()  # canary decisions sent to stable instead

    def decide(self, runtime: RolloutRuntime, request: dict[str, Any]) -> tuple[Decision, PendingStamp]:
        """The side of this attempt (before any look at which deployments can serve it)."""
        config = runtime.config
        # LiteLLM's own metadata bucket (`litellm_metadata` for the Responses API), never the
        # OpenAI `metadata` that is sent upstream.
        bucket = get_metadata_variable_name_from_kwargs(request)
        metadata = request.get(bucket)
        if not isinstance(metadata, dict):
            metadata = request[bucket] = {}
        stamps = metadata.get(STAMP_KEY)
        if not isinstance(stamps, dict):
            stamps = metadata[STAMP_KEY] = {}
        key = stamp_key(config.model_group, request.get("litellm_trace_id"))
        previous = stamps.get(key)
        session_id = session_id_of(request)
        canary_undispatched = False
        pin: Pin | None = None
        if isinstance(previous, Stamp):
            # A retry or fallback hop: the previous attempt ended without success.
            if previous.attempt.outcome is None:
                if previous.dispatched:
                    # No failure callback reported it: count it here so that no attempt goes missing.
                    if runtime.pins.close(previous.attempt, "retried"):
                        self._on_outcome(
                            Outcome(
                                config.model_group, previous.side, previous.deployment_id, False, "retried"
                            )
                        )
                else:
                    # LiteLLM found nothing to dispatch it to (e.g. every deployment of the side at its
                    # rpm/tpm limit): no deployment failed, so no outcome; a canary is not serving.
                    runtime.pins.close(previous.attempt, "not_dispatched")
                    canary_undispatched = previous.side is Side.CANARY
            if not canary_undispatched:
                pin = Pin(previous.side, PinKind.REQUEST)
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
        if canary_undispatched and decision.side is Side.CANARY:
            self.canary_not_serving[config.model_group] += 1
            decision = Decision(Side.STABLE, Reason.FLAG)
        return decision, PendingStamp(stamps, key, session_id)

    def commit(
        self,
        runtime: RolloutRuntime,
        pending: PendingStamp,
        decision: Decision,
        deployment_id: str,
        *,
        listed: str | None = None,
    ) -> None:
        """Open the attempt, stamp the request, pin its conversation, tell the listeners.

        ``deployment_id`` is the chosen deployment, or ``""`` when LiteLLM chooses it later;
        ``listed`` is what the listeners are told (the only deployment left, if just one)."""
        config = runtime.config
        attempt = runtime.pins.open(decision.side, deployment_id)
        prune(pending.stamps)
        pending.stamps[pending.key] = Stamp(decision.side, deployment_id, attempt, pending.session_id)
        if pending.session_id is not None:
            current = runtime.pins.conversation(pending.session_id)
            if deployment_id or current is None or current.side is not decision.side:
                runtime.pins.pin_conversation(pending.session_id, decision.side, deployment_id)
        self.decisions.emit(config.model_group, decision, deployment_id if listed is None else listed)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(
                {
                    "litellm_canary.model_group": config.model_group,
                    "litellm_canary.side": decision.side.value,
                    "litellm_canary.deployment": deployment_id if listed is None else listed,
                    "litellm_canary.flag_variant": runtime.last_flag_value or "",
                    "litellm_canary.pinned": decision.pinned,
                    "litellm_canary.reason": decision.reason.value,
                }
            )

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

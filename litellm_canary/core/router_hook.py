"""The LiteLLM glue: the only module of the core that imports litellm's routing.

What LiteLLM 1.110 offers (read from its installed source, ``litellm/router_rust/``)
------------------------------------------------------------------------------------
* ``CustomLogger.async_filter_deployments`` (a callback in ``litellm.callbacks``): the Rust core's
  ``callback_filters`` stage hands it the group's deployments **after cooldowns** and before tags,
  ``order``, pre-call checks, rpm/tpm limits and the configured strategy, on **every** attempt of
  every async endpoint (retries, weighted-failover and order hops, fallback hops with the fallback
  group as ``model``, aliases resolved to their target group). The request it sees is a copy that
  carries the hop's ``_excluded_deployment_ids`` / ``_retry_skipped_deployment_ids`` /
  ``_target_order``; its metadata dict is the request's own. It may only narrow (ids are kept among
  the candidates); ``[]`` means "no deployments" (LiteLLM's 429, then its retries and fallbacks).
  It is process-global (every Router's requests) and is **not run for**: sync endpoints
  (``RustCore._answer_select_sync``: "Only the async candidate lists run the callback filters") and
  requests that address one deployment by id (``model="<model_info.id>"``).
* ``router.register_plugin(CustomRoutingStrategyBase)``: the only hook on the sync path. It replaces
  the whole pick of **every** group, sync and async; the facade pops the narrowing fields before it
  runs and ``_custom_pick`` refuses ``None``, so it cannot hand a pick back to LiteLLM (issue 11).
* No sync filter, no sync pre-routing hook (``async_pre_routing_hook`` belongs to the auto-router
  strategies), ``Router(plugins=...)`` is async-only and sees ``litellm_params.model`` strings only,
  and per-request ``_router_weights`` / tags must be set by the caller before the call starts.
* ``CustomLogger.async_pre_call_deployment_hook`` runs once per dispatched async attempt, after the
  pick, with the chosen ``model_info`` and the request's metadata.

What this module does with it
-----------------------------
* :class:`CanaryRouting` is a ``CustomLogger`` whose ``async_filter_deployments`` makes the canary
  decision per attempt and narrows a managed group's candidates to the decided side; everything
  after that (cooldowns, tags, order, weighted failover, pre-call checks, limits, the configured
  strategy, retries, fallbacks) is LiteLLM's. Unmanaged groups, other Routers' requests and a
  detached canary get the list back untouched. A canary side with nothing left to serve this
  attempt (cooldown, excluded by a failover hop, outside the hop's ``order``, or dropped by the
  Router's own healthy chain: tags, context window) is not serving: the attempt goes to stable. A
  canary attempt that LiteLLM could not dispatch (rpm/tpm exhausted in the strategy) sends the
  request's next attempt to stable. A fault in this machinery never fails a request: unmanaged
  groups get LiteLLM's list, managed ones stable.
* Sync calls and id-addressed calls cannot be steered by a filter. By default they are served as
  LiteLLM routes them, and every outcome on a managed deployment that no decision covered is
  counted (``unsteered`` in ``status()``) and logged. :meth:`CanaryRouting.strategy` is the opt-in
  for applications that route managed groups through sync calls (``Canary.route_sync_calls()``):
  it registers the custom strategy, which decides every sync and async pick, at the documented
  price of LiteLLM parity (simple-shuffle within a side, no failover narrowing) for every group.
* :class:`CanaryCallbacks` closes each attempt exactly once — on success, on the per-attempt
  failure hook, or on a failure event for errors that only it sees (mid-stream errors, sync calls).

Per-request state lives in the request's own LiteLLM metadata: a stamp per model group and logical
request (keyed by ``litellm_trace_id``, which every retry and fallback hop of a request shares), so
retries keep their side, a metadata dict that the caller reuses for several requests (even
concurrently) keeps them apart, and nothing is left behind when the request ends.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from litellm.integrations.custom_logger import CustomLogger
from litellm.litellm_core_utils.core_helpers import get_metadata_variable_name_from_kwargs
from litellm.responses.utils import ResponsesAPIRequestUtils
from litellm.router_strategy.simple_shuffle import simple_shuffle
from litellm.types.router import CustomRoutingStrategyBase
from openfeature.evaluation_context import EvaluationContext
from opentelemetry import trace

from litellm_canary.core.controller import RolloutRuntime
from litellm_canary.core.decision import Decision, Pin, PinKind, Reason, Side, decide
from litellm_canary.core.flags import FlagReader, targeting_key
from litellm_canary.core.outcomes import Outcome, seconds_between, status_class
from litellm_canary.core.pins import Attempt
from litellm_canary.core.probe import is_probe

logger = logging.getLogger("litellm_canary.router_hook")

STAMP_KEY = "litellm_canary"
FORCED_SIDE_KEY = "litellm_canary_forced_side"  # a Side instance, never JSON: set by litellm_canary.proxy
COOLDOWN_VIEW_S = 0.05
_MAX_STAMPS = 32  # per metadata dict; only a dict reused across many requests gets near it
_METADATA_KEYS = ("metadata", "litellm_metadata")
_NARROWING_KEYS = ("_excluded_deployment_ids", "_retry_skipped_deployment_ids")
# Set while this module asks the Router for its own healthy chain: our filter then keeps out.
_NESTED: contextvars.ContextVar[bool] = contextvars.ContextVar("litellm_canary_nested", default=False)


@dataclass(slots=True)
class Stamp:
    """The side and the open attempt of one logical request in one managed group.

    ``deployment_id`` is empty until LiteLLM dispatches the attempt (the filter only chooses the
    side; LiteLLM chooses the deployment)."""

    side: Side
    deployment_id: str
    attempt: Attempt
    session_id: str | None = None

    @property
    def dispatched(self) -> bool:
        return bool(self.deployment_id)


@dataclass(slots=True)
class _Pending:
    """Where one decision's stamp goes."""

    stamps: dict[str, Stamp]
    key: str
    session_id: str | None


def deployment_id_of(deployment: object) -> str | None:
    info = deployment.get("model_info") if isinstance(deployment, Mapping) else None
    found = info.get("id") if isinstance(info, Mapping) else None
    return found if isinstance(found, str) else None


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


def _ids(value: object) -> set[str]:
    return (
        {item for item in value if isinstance(item, str)} if isinstance(value, list | tuple | set) else set()
    )


def _order(deployment: Mapping[str, Any]) -> object:
    params = deployment.get("litellm_params")
    return params.get("order") if isinstance(params, Mapping) else None


class CanaryRouting(CustomLogger):
    """The canary's routing: a deployment filter on every async attempt (and, opted in, a strategy)."""

    def __init__(
        self,
        router: Any,
        runtimes: Mapping[str, RolloutRuntime],
        flags: FlagReader,
        on_outcome: Callable[[Outcome], None],
    ) -> None:
        super().__init__()
        # LiteLLM de-duplicates loggers by class name and public scalar attributes: one per canary.
        self.canary_instance = f"{id(self):x}"
        self._router = router
        self._on_outcome = on_outcome
        self._runtimes = runtimes
        self._flags = flags
        self._sides = {
            group: {
                Side.STABLE: frozenset(runtime.config.stable),
                Side.CANARY: frozenset(runtime.config.canary),
            }
            for group, runtime in runtimes.items()
        }
        self._group_of_id = {
            deployment_id: runtime.config.model_group
            for runtime in runtimes.values()
            for deployment_id in (*runtime.config.stable, *runtime.config.canary)
        }
        self.passthrough = False  # set by detach: every group routed as without the canary
        self.decision_listeners: list[Callable[[str, Decision, str], None]] = []
        self.pick_errors = 0
        self.canary_not_serving: Counter[str] = Counter()  # canary decisions sent to stable instead
        self.tags_ignored: Counter[str] = Counter()  # request tags dropped: they matched no stable deployment

    # -- LiteLLM entry points --------------------------------------------------------------------

    async def async_filter_deployments(
        self,
        model: str,
        healthy_deployments: list[Any],
        messages: list[Any] | None,
        request_kwargs: dict[str, Any] | None = None,
        parent_otel_span: Any = None,
    ) -> list[Any]:
        runtime = None if self.passthrough or _NESTED.get() else self._runtimes.get(model)
        if runtime is None:
            return healthy_deployments  # not ours to touch: exactly LiteLLM's list
        try:
            if not any(deployment_id_of(d) in self._group_of_id for d in healthy_deployments):
                return healthy_deployments  # another Router's group of the same name
            return await self._narrow(runtime, healthy_deployments, messages, request_kwargs or {})
        except Exception:
            self.pick_errors += 1
            logger.exception("canary decision failed for %r; routing to stable", model)
            return self._on_side(runtime, Side.STABLE, healthy_deployments)

    async def async_pre_call_deployment_hook(self, kwargs: dict[str, Any], call_type: Any) -> None:
        """LiteLLM dispatched an attempt: note which deployment of the decided side it chose."""
        try:
            info = kwargs.get("model_info")
            if not isinstance(info, Mapping):
                bucket = kwargs.get(get_metadata_variable_name_from_kwargs(kwargs))
                info = bucket.get("model_info") if isinstance(bucket, Mapping) else None
            deployment_id = info.get("id") if isinstance(info, Mapping) else None
            group = self._group_of_id.get(deployment_id) if isinstance(deployment_id, str) else None
            stamps = _stamps_in(kwargs) if group is not None else None
            stamp = stamps.get(stamp_key(group, kwargs.get("litellm_trace_id"))) if stamps and group else None
            if isinstance(stamp, Stamp) and stamp.attempt.outcome is None and isinstance(deployment_id, str):
                self._dispatched(self._runtimes[str(group)], stamp, deployment_id)
        except Exception:  # bookkeeping only: never in the request's way
            logger.exception("canary dispatch bookkeeping failed")
        return None

    def strategy(self) -> CustomRoutingStrategyBase:
        """The custom routing strategy for ``router.register_plugin`` (the sync opt-in)."""
        return CanaryStrategy(self)

    # -- the decision ----------------------------------------------------------------------------

    async def _narrow(
        self, runtime: RolloutRuntime, healthy: list[Any], messages: object, request: dict[str, Any]
    ) -> list[Any]:
        decision, pending = self.decide(runtime, request)
        kept = self._on_side(runtime, decision.side, healthy)
        if decision.side is Side.CANARY and not await self._serving(runtime, kept, messages, request):
            self.canary_not_serving[runtime.config.model_group] += 1
            decision = Decision(Side.STABLE, Reason.FLAG)
            kept = self._on_side(runtime, Side.STABLE, healthy)
        if decision.side is Side.STABLE:
            await self._tags_never_empty_stable(runtime, kept, messages, request)
        if decision.deployment_id:  # a conversation stays on its deployment while it serves
            preferred = [d for d in kept if deployment_id_of(d) == decision.deployment_id]
            excluded = _ids(request.get(_NARROWING_KEYS[0])) | _ids(request.get(_NARROWING_KEYS[1]))
            if preferred and decision.deployment_id not in excluded:
                kept = preferred
        only = deployment_id_of(kept[0]) if len(kept) == 1 else None
        self.commit(runtime, pending, decision, "", listed=only or "")
        return kept

    def _on_side(self, runtime: RolloutRuntime, side: Side, deployments: Iterable[Any]) -> list[Any]:
        ids = self._sides[runtime.config.model_group][side]
        return [d for d in deployments if deployment_id_of(d) in ids]

    async def _serving(
        self, runtime: RolloutRuntime, kept: Sequence[Any], messages: object, request: Mapping[str, Any]
    ) -> bool:
        """Whether LiteLLM could serve this attempt from ``kept`` (canary deployments out of cooldown)."""
        excluded = _ids(request.get(_NARROWING_KEYS[0])) | _ids(request.get(_NARROWING_KEYS[1]))
        order = request.get("_target_order")
        by_order = isinstance(order, int) and not isinstance(order, bool)
        live = {
            deployment_id_of(d)
            for d in kept
            if deployment_id_of(d) not in excluded and (not by_order or _order(d) == order)
        }
        if not live:
            return False
        if not self._narrows_later(kept, request):
            return True
        # The Router's own healthy chain (tags, order, pre-call checks such as the context window),
        # asked only for canary decisions; our filter keeps out of that nested selection.
        token = _NESTED.set(True)
        try:
            chain = await self._router.select(
                runtime.config.model_group, dict(request), kind="healthy", messages=messages
            )
        except Exception:  # nothing healthy (or the Router refused): the canary is not serving
            return False
        finally:
            _NESTED.reset(token)
        chain = [chain] if isinstance(chain, Mapping) else chain
        return any(deployment_id_of(d) in live for d in chain)

    async def _tags_never_empty_stable(
        self, runtime: RolloutRuntime, kept: Sequence[Any], messages: object, request: dict[str, Any]
    ) -> None:
        """Request tags choose among the stable deployments, but never leave stable with none (a
        client tag naming the canary's deployments must not turn a stable request into an error):
        then the tags are dropped from this request's metadata and the drop is counted."""
        name = get_metadata_variable_name_from_kwargs(request)
        bucket = request.get(name)
        if not isinstance(bucket, dict) or not bucket.get("tags"):
            return
        if await self._serving(runtime, kept, messages, request):
            return
        untagged = {**request, name: {key: value for key, value in bucket.items() if key != "tags"}}
        if await self._serving(runtime, kept, messages, untagged):
            self.tags_ignored[runtime.config.model_group] += 1
            bucket.pop("tags", None)

    def _narrows_later(self, kept: Sequence[Any], request: Mapping[str, Any]) -> bool:
        """Whether LiteLLM's chain after the filter could still drop all of ``kept``: tag filtering,
        pre-call checks (context window) or ``order``. Without them (the common case) the extra
        healthy-chain lookup (~0.2 ms) is skipped."""
        settings = self._router.settings()
        if settings.enable_tag_filtering or settings.enable_pre_call_checks:
            return True
        if request.get("enable_tag_filtering") is True:
            return True
        for deployment in kept:
            info = deployment.get("model_info") if isinstance(deployment, Mapping) else None
            if _order(deployment) is not None or (
                isinstance(info, Mapping) and info.get("enable_tag_filtering")
            ):
                return True
        return False

    def decide(self, runtime: RolloutRuntime, request: dict[str, Any]) -> tuple[Decision, _Pending]:
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
        session_id = _session_id(request)
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
        return decision, _Pending(stamps, key, session_id)

    def commit(
        self,
        runtime: RolloutRuntime,
        pending: _Pending,
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
        _prune(pending.stamps)
        pending.stamps[pending.key] = Stamp(decision.side, deployment_id, attempt, pending.session_id)
        if pending.session_id is not None:
            current = runtime.pins.conversation(pending.session_id)
            if deployment_id or current is None or current.side is not decision.side:
                runtime.pins.pin_conversation(pending.session_id, decision.side, deployment_id)
        for listener in self.decision_listeners:
            try:
                listener(config.model_group, decision, deployment_id if listed is None else listed)
            except Exception:  # an observer's bug must not change routing
                logger.exception("decision listener %r failed", listener)
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

    def _dispatched(self, runtime: RolloutRuntime, stamp: Stamp, deployment_id: str) -> None:
        stamp.deployment_id = stamp.attempt.deployment_id = deployment_id
        repin_conversation(runtime, stamp, deployment_id)

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

    def canary_cooldowns(self, runtime: RolloutRuntime) -> list[str]:
        """The canary deployments LiteLLM has put into cooldown (for the cooldown trigger)."""
        ids = list(runtime.config.canary)
        return [
            deployment_id
            for deployment_id, _ in self._router.health().cooldowns.get_active_cooldowns(ids, None)
        ]


def repin_conversation(runtime: RolloutRuntime, stamp: Stamp, deployment_id: str) -> None:
    """Record the deployment LiteLLM chose for the stamp's conversation, if it is still pinned to
    the stamp's side (a rollback may have released it meanwhile: never re-create a released pin)."""
    if stamp.session_id is None:
        return
    current = runtime.pins.conversation(stamp.session_id)
    if current is not None and current.side is stamp.side and current.deployment_id != deployment_id:
        runtime.pins.pin_conversation(stamp.session_id, stamp.side, deployment_id)


class CanaryStrategy(CustomRoutingStrategyBase):
    """The opt-in custom routing strategy (``Canary.route_sync_calls()``).

    LiteLLM's only hook on the sync path, so it is the only way to steer sync ``Router.completion``
    calls. It replaces LiteLLM's pick for every group: managed groups get the canary decision, then
    a weighted ``simple_shuffle`` over the side's deployments out of cooldown; unmanaged groups get
    the Router's healthy list (cooldowns, tags, order) and ``simple_shuffle``. Not at parity with
    LiteLLM (no weighted-failover or order hops, no other strategy): see the README.
    """

    def __init__(self, routing: CanaryRouting) -> None:
        self._routing = routing
        self._router = routing._router
        self._deployments: dict[str, list[Mapping[str, Any]]] = {}
        self._cooling: dict[tuple[str, ...], tuple[float, frozenset[str]]] = {}
        self._registry_version = -1

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

    def _managed(self, model: str) -> RolloutRuntime | None:
        routing = self._routing
        if routing.passthrough:
            return None
        runtime = routing._runtimes.get(model)
        if runtime is None:
            # A caller addressing a managed deployment by id gets the group's decision, not a bypass.
            group = routing._group_of_id.get(model)
            if group is not None:
                runtime = routing._runtimes[group]
        return runtime

    def _guarded_pick(self, runtime: RolloutRuntime, request: dict[str, Any] | None) -> Mapping[str, Any]:
        """``pick``, except that nothing it could raise reaches the request: that goes to stable."""
        try:
            return self.pick(runtime, request if request is not None else {})
        except Exception:
            self._routing.pick_errors += 1
            logger.exception("canary decision failed for %r; routing to stable", runtime.config.model_group)
            deployment = self._deployment_for(runtime, Decision(Side.STABLE, Reason.FLAG_ERROR))
            assert deployment is not None
            return deployment

    def pick(self, runtime: RolloutRuntime, request: dict[str, Any]) -> Mapping[str, Any]:
        decision, pending = self._routing.decide(runtime, request)
        deployment = self._deployment_for(runtime, decision)
        if deployment is None:  # no canary deployment out of cooldown: the canary is not serving
            decision = Decision(Side.STABLE, Reason.FLAG)
            deployment = self._deployment_for(runtime, decision)
            assert deployment is not None
        deployment_id: str = deployment["model_info"]["id"]
        self._routing.commit(runtime, pending, decision, deployment_id)
        return deployment

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
        if decision.deployment_id:
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
        stamps = _stamps_in(kwargs.get("litellm_params"), kwargs)
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
        if ok and stamp.attempt.outcome is None:
            repin_conversation(runtime, stamp, served_by)
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
        deployment_id = model_info.get("id")
        found = self._stamp(_stamps_in(request_data), deployment_id, request_data.get("litellm_trace_id"))
        if found is None:
            return
        runtime, stamp = found
        served_by = deployment_id if isinstance(deployment_id, str) else stamp.deployment_id
        status = status_class(exception)
        self._close(found, Outcome(runtime.config.model_group, stamp.side, served_by, False, status), status)

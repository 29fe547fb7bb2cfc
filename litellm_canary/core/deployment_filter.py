"""The canary's LiteLLM entry point on the async path: a deployment filter on every attempt.

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
:class:`CanaryRouting` is a ``CustomLogger`` whose ``async_filter_deployments`` makes the canary
decision per attempt (:mod:`~litellm_canary.core.side_decision`) and narrows a managed group's
candidates to the decided side; everything after that (cooldowns, tags, order, weighted failover,
pre-call checks, limits, the configured strategy, retries, fallbacks) is LiteLLM's. Unmanaged
groups, other Routers' requests and a detached canary get the list back untouched. A canary side
with nothing left to serve this attempt (cooldown, excluded by a failover hop, outside the hop's
``order``, or dropped by the Router's own healthy chain: tags, context window) is not serving: the
attempt goes to stable. A canary attempt that LiteLLM could not dispatch (rpm/tpm exhausted in the
strategy) sends the request's next attempt to stable. A fault in this machinery never fails a
request: unmanaged groups get LiteLLM's list, managed ones stable. Sync calls and id-addressed calls
cannot be steered by a filter: :meth:`CanaryRouting.strategy` is the opt-in
(:mod:`~litellm_canary.core.sync_strategy`); the attempts' outcomes are closed by
:mod:`~litellm_canary.core.outcome_callbacks`.
"""

from __future__ import annotations

import contextvars
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from litellm.integrations.custom_logger import CustomLogger
from litellm.litellm_core_utils.core_helpers import get_metadata_variable_name_from_kwargs
from litellm.types.router import CustomRoutingStrategyBase

from litellm_canary.core.controller import RolloutRuntime
from litellm_canary.core.decision import Decision, Reason, Side
from litellm_canary.core.flags import FlagReader
from litellm_canary.core.outcomes import Outcome
from litellm_canary.core.request_stamps import (
    Stamp,
    deployment_id_of,
    repin_conversation,
    stamp_key,
    stamps_in,
)
from litellm_canary.core.side_decision import SideDecider
from litellm_canary.core.sync_strategy import CanaryStrategy

logger = logging.getLogger("litellm_canary.routing")

__all__ = ["CanaryRouting"]

_NARROWING_KEYS = ("_excluded_deployment_ids", "_retry_skipped_deployment_ids")
# Set while this module asks the Router for its own healthy chain: our filter then keeps out.
_NESTED: contextvars.ContextVar[bool] = contextvars.ContextVar("litellm_canary_nested", default=False)


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
        self._runtimes = runtimes
        self.decider = SideDecider(runtimes, flags, on_outcome)
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
        self.pick_errors = 0
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
            stamps = stamps_in(kwargs) if group is not None else None
            stamp = stamps.get(stamp_key(group, kwargs.get("litellm_trace_id"))) if stamps and group else None
            if isinstance(stamp, Stamp) and stamp.attempt.outcome is None and isinstance(deployment_id, str):
                self._dispatched(self._runtimes[str(group)], stamp, deployment_id)
        except Exception:  # bookkeeping only: never in the request's way
            logger.exception("canary dispatch bookkeeping failed")
        return None

    def strategy(self) -> CustomRoutingStrategyBase:
        """The custom routing strategy for ``router.register_plugin`` (the sync opt-in)."""
        return CanaryStrategy(self._router, self)

    def managed(self, model: str) -> RolloutRuntime | None:
        """The rollout deciding ``model`` (a group, or a managed deployment's id); None when the canary
        is detached or does not manage it. A caller addressing a managed deployment by id gets the
        group's decision, not a bypass."""
        if self.passthrough:
            return None
        runtime = self._runtimes.get(model)
        if runtime is None:
            group = self._group_of_id.get(model)
            if group is not None:
                runtime = self._runtimes[group]
        return runtime

    # -- the decision ----------------------------------------------------------------------------

    async def _narrow(
        self, runtime: RolloutRuntime, healthy: list[Any], messages: object, request: dict[str, Any]
    ) -> list[Any]:
        decision, pending = self.decider.decide(runtime, request)
        kept = self._on_side(runtime, decision.side, healthy)
        if decision.side is Side.CANARY and not await self._serving(runtime, kept, messages, request):
            self.decider.canary_not_serving[runtime.config.model_group] += 1
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
        self.decider.commit(runtime, pending, decision, "", listed=only or "")
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

    def _dispatched(self, runtime: RolloutRuntime, stamp: Stamp, deployment_id: str) -> None:
        stamp.deployment_id = stamp.attempt.deployment_id = deployment_id
        repin_conversation(runtime, stamp, deployment_id)

    def canary_cooldowns(self, runtime: RolloutRuntime) -> list[str]:
        """The canary deployments LiteLLM has put into cooldown (for the cooldown trigger)."""
        ids = list(runtime.config.canary)
        return [
            deployment_id
            for deployment_id, _ in self._router.health().cooldowns.get_active_cooldowns(ids, None)
        ]

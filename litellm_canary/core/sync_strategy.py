"""The opt-in sync path: a custom routing strategy that decides every pick (``route_sync_calls``).

``router.register_plugin(CustomRoutingStrategyBase)`` is LiteLLM's only hook on the sync path. It
replaces the whole pick of **every** group, sync and async; the facade pops the narrowing fields
before it runs and ``_custom_pick`` refuses ``None``, so it cannot hand a pick back to LiteLLM.
That is the documented price of this opt-in: no LiteLLM parity (simple-shuffle within a side, no
weighted-failover or order hops) for every group of the Router.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from litellm.router_strategy.simple_shuffle import simple_shuffle
from litellm.types.router import CustomRoutingStrategyBase

from litellm_canary.core.controller import RolloutRuntime
from litellm_canary.core.decision import Decision, Reason, Side
from litellm_canary.core.side_decision import SideDecider

logger = logging.getLogger("litellm_canary.routing")

__all__ = ["CanaryStrategy", "ManagedGroups"]

COOLDOWN_VIEW_S = 0.05


class ManagedGroups(Protocol):
    """What the strategy needs of the routing: the decider, which rollout decides a model, and
    the counter of decisions that failed (then routed to stable)."""

    decider: SideDecider
    pick_errors: int

    def managed(self, model: str) -> RolloutRuntime | None: ...


class CanaryStrategy(CustomRoutingStrategyBase):
    """The opt-in custom routing strategy (``Canary.route_sync_calls()``).

    LiteLLM's only hook on the sync path, so it is the only way to steer sync ``Router.completion``
    calls. It replaces LiteLLM's pick for every group: managed groups get the canary decision, then
    a weighted ``simple_shuffle`` over the side's deployments out of cooldown; unmanaged groups get
    the Router's healthy list (cooldowns, tags, order) and ``simple_shuffle``. Not at parity with
    LiteLLM (no weighted-failover or order hops, no other strategy): see the README.
    """

    def __init__(self, router: Any, routing: ManagedGroups) -> None:
        self._routing = routing
        self._router = router
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
        runtime = self._routing.managed(model)
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
        runtime = self._routing.managed(model)
        if runtime is None:
            registry = self._router.registry()
            if registry.has_deployment(model):  # addressed by deployment id
                owner = registry.resolve(model, kind="group_of_id")
                return next(d for d in registry.deployments(owner) if d["model_info"]["id"] == model)
            group = list(registry.deployments(model) or [])
            return self._shuffle(self._without_cooldowns(group), model, request_kwargs)
        return self._guarded_pick(runtime, request_kwargs)

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
        decision, pending = self._routing.decider.decide(runtime, request)
        deployment = self._deployment_for(runtime, decision)
        if deployment is None:  # no canary deployment out of cooldown: the canary is not serving
            decision = Decision(Side.STABLE, Reason.FLAG)
            deployment = self._deployment_for(runtime, decision)
            assert deployment is not None
        deployment_id: str = deployment["model_info"]["id"]
        self._routing.decider.commit(runtime, pending, decision, deployment_id)
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

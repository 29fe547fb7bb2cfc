"""The public handle: ``attach(router, config) -> Canary``, and what the handle can do.

``Canary`` wires the pieces together — config, flag reading and the flag store, the routing
filter and callbacks in LiteLLM (plus the opt-in sync strategy), the rollback controller — and
answers ``status()``. It owns no routing logic of its own.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import litellm

from litellm_canary.core.attach_steps import (
    make_flag_store,
    provider_restorer,
    remove_created,
    seed_flag_store,
    set_provider,
    validate_flag_store,
)
from litellm_canary.core.config import CanaryConfig, ConfigError, parse_config, validate_against_deployments
from litellm_canary.core.controller import (
    RollbackController,
    RolledBackError,
    RolloutRuntime,
    UnknownModelGroup,
)
from litellm_canary.core.decision import Decision, Side
from litellm_canary.core.deployment_filter import CanaryRouting
from litellm_canary.core.drain_wait import DrainWaiters
from litellm_canary.core.flags import FlagReader
from litellm_canary.core.outcome_callbacks import CanaryCallbacks
from litellm_canary.core.outcomes import Outcome, OutcomeRecorder
from litellm_canary.core.pins import RolloutPins
from litellm_canary.core.rollback_record import RollbackKind
from litellm_canary.core.route_probe import probe_route
from litellm_canary.detection.evals.sampling import EvalPipeline
from litellm_canary.detection.evaluation_loop import AutoRollback
from litellm_canary.detection.golden import replay_golden
from litellm_canary.detection.rules import EvalScores
from litellm_canary.integrations.broadcast import install_broadcast
from litellm_canary.release.lifecycle import Lifecycle
from litellm_canary.response.followup import FollowupSignals, golden_checks, install_followup

logger = logging.getLogger("litellm_canary")

__all__ = ["Canary", "attach"]


class Canary:
    """A canary attached to one ``litellm.Router``. Create it with :func:`attach`."""

    def __init__(
        self,
        router: Any,
        config: CanaryConfig | Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        # 1. Validate: every check that can fail on the config, before anything global is touched.
        self.config = parse_config(config)
        self._router = router
        self._clock = clock
        validate_against_deployments(self.config, _router_groups(router))
        validate_flag_store(self.config)
        # 2. Build this canary's own objects (nothing outside them changes yet).
        self._drain_waiters = DrainWaiters()
        self.runtimes: dict[str, RolloutRuntime] = {
            rollout.model_group: RolloutRuntime(
                config=rollout,
                pins=RolloutPins(
                    clock=clock,
                    max_attempt_s=self.config.max_attempt_s,
                    conversation_ttl_s=self.config.conversation_pin_ttl_s,
                    max_conversations=self.config.max_conversation_pins,
                    on_canary_idle=self._drain_waiters.wake,
                ),
            )
            for rollout in self.config.rollouts
        }
        self.outcomes = OutcomeRecorder()
        # faults an integration caught in its own request hooks (e.g. the proxy's pre-call guard)
        self.integration_errors: Counter[str] = Counter()
        self.evals = EvalPipeline(self.config, self.runtimes, router)  # loads scorers: may raise
        self.store, provider = make_flag_store(self.config)
        self.flags = FlagReader(
            self.config.openfeature_domain,
            clock=clock,
            budgets={rollout.flag_key: rollout.flag_read for rollout in self.config.rollouts},
            probe_in_background=background,
        )
        self.controller = RollbackController(self.runtimes, self.store, clock=clock)
        self._routing = CanaryRouting(router, self.runtimes, self.flags, self.outcomes.record)
        self.auto_rollback = AutoRollback(
            self.runtimes,
            self.controller,
            clock=clock,
            step_s=self.config.evaluation_step_s,
            cooling_down=self._routing.canary_cooldowns,
        )
        self.outcomes.recorded.connect(self.auto_rollback.record)
        self.evals.use_monitors(self.auto_rollback.monitors)
        self._callbacks = CanaryCallbacks(self.runtimes, self.outcomes.record)
        self._callbacks.successes.connect(self.evals.offer)
        # The controller is the one re-arm path: every re-arm side effect is a re-arm listener.
        self.controller.on_rearm(lambda group, _origin: self.outcomes.clear(group))
        self.controller.on_rearm(lambda group, _origin: self.auto_rollback.rearmed(group))
        self.controller.on_rearm(lambda group, _origin: self.evals.rearmed(group))
        self._attached = False
        # 3. Apply, undoing every step already done if a later one fails: the application is left
        #    exactly as it was (files we created removed, threads stopped, provider and hooks restored).
        undo: list[Callable[[], None]] = []
        try:
            seed_flag_store(self.store, self.config, undo)
            self.controller.restore()  # a rollback recorded with the flag outlives restarts
            # ... and one recorded (or cleared) by another worker or replica is followed as it lands
            self.flags.on_configuration_changed(self.controller.follow_store)
            # canary window + promotion, keep-warm prober, user feedback
            self.lifecycle = Lifecycle(
                self.config,
                self.runtimes,
                self.store,
                router,
                outcomes=self.outcomes.recorded,
                successes=self._callbacks.successes,
                rollbacks=self.controller.rollbacks,
                rearms=self.controller.rearms,
                clock=clock,
                wall_clock=wall_clock,
            )
            self.controller.unhealthy_stable = self.lifecycle.keep_warm.unhealthy
            self.lifecycle.feedback.add_listener(self.evals.on_feedback)  # evals.feedback: a series
            undo.append(self.lifecycle.stop)
            # incidents, post-rollback verification, the last drill
            if self.config.incidents is not None:
                undo.append(remove_created(directories=(self.config.incidents.dir,)))
            self.followup = install_followup(
                runtimes=self.runtimes,
                incidents=self.config.incidents,
                signals=FollowupSignals(
                    on_outcome=self.on_outcome,
                    on_decision=self.on_decision,
                    on_rollback=self.controller.on_rollback,
                    on_rearm=self.controller.on_rearm,
                ),
                drained=self.drained,
                max_attempt_s=self.config.max_attempt_s,
                feedback_sides=lambda group: self.lifecycle.feedback.status(group)["sides"],
                golden_baseline=lambda group: getattr(self.evals.golden_baseline(group), "mean_score", None),
                golden_checks=golden_checks(
                    [group for group, evals in self.evals.rollouts.items() if evals.golden is not None],
                    lambda group: replay_golden(self, group, Side.STABLE),
                ),
                clock=clock,
                wall_clock=wall_clock,
                auto=background,
            )
            undo.append(self.followup.stop)
            self.broadcast = install_broadcast(
                self.config.broadcast, self.controller, self.runtimes
            )  # reads the replicas' latch state before routing
            if self.broadcast is not None:
                undo.append(self.broadcast.stop)
            if provider is not None:
                undo.append(provider_restorer(self.config.openfeature_domain))
                set_provider(provider, self.config.openfeature_domain)
            # The canary decision narrows each async attempt's candidates; LiteLLM picks among them.
            self._strategy_registered = False
            litellm.logging_callback_manager.add_litellm_callback(self._routing)
            undo.append(
                lambda: litellm.logging_callback_manager.remove_callback_from_all_lists(self._routing)
            )
            litellm.logging_callback_manager.add_litellm_callback(self._callbacks)
            undo.append(
                lambda: litellm.logging_callback_manager.remove_callback_from_all_lists(self._callbacks)
            )
            self._attached = True
            if background:
                undo.extend((self.auto_rollback.stop, self.evals.stop))
                self.auto_rollback.start()
                self.evals.start()
                self.lifecycle.start()
        except BaseException:
            self._attached = False
            self._routing.passthrough = True
            for step in reversed(undo):
                try:
                    step()
                except Exception:  # undo the rest regardless; the original error is what matters
                    logger.exception("undoing a failed attach: %r failed", step)
            self.controller.close()
            self.flags.close()  # its provider-event handlers are global
            raise

    # -- operations ------------------------------------------------------------------------------

    def rollback(
        self,
        model_group: str,
        reason: str = "manual rollback",
        *,
        kind: RollbackKind = "manual",
        cause: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send ``model_group`` to stable now (a local latch, then the flag store). Idempotent."""
        return self.controller.rollback(model_group, reason, kind=kind, cause=cause).as_dict()

    def rearm(self, model_group: str, *, origin: str | None = None) -> bool:
        """Release the rollback latch; the flag decides again. Returns False if it was not latched.
        ``origin`` is set by the broadcast when another replica re-armed."""
        return self.controller.rearm(model_group, origin=origin)  # its re-arm listeners do the rest

    def set_canary_percent(self, model_group: str, percent: float) -> None:
        """Write a sticky percentage rollout of ``model_group``'s flag to the flag store.

        Raises ``RolledBackError`` while the group is rolled back: re-arm it first."""
        runtime = self.controller.refuse_if_rolled_back(model_group, "set a canary percentage for")
        if self.store is None:
            raise ConfigError("set_canary_percent needs a flag_store in the canary config")
        if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
            raise ValueError(f"percent must be a number within 0..100, got {percent!r}")
        self.store.set_canary_percent(runtime.config.flag_key, float(percent))

    def set_side(self, model_group: str, side: Side | str) -> None:
        """Write ``model_group``'s flag to serve one side to everybody (e.g. promote the canary)."""
        runtime = (
            self.controller.refuse_if_rolled_back(model_group, "serve the canary of")
            if Side(side) is Side.CANARY
            else self.controller.runtime(model_group)
        )
        if self.store is None:
            raise ConfigError("set_side needs a flag_store in the canary config")
        self.store.set_side(runtime.config.flag_key, Side(side))

    def promote(self, model_group: str, *, force: bool = False) -> dict[str, Any]:
        """Serve the canary to everybody for good and close the window (:mod:`litellm_canary.window`).

        Raises ``PromoteRefused`` while the group is rolled back, or before its window has ended
        unless ``force``."""
        runtime = self.controller.runtime(model_group)
        if self.store is None:
            raise ConfigError("promote needs a flag_store in the canary config")
        self.lifecycle.windows.promote(self.store, model_group, rolled_back=runtime.rolled_back, force=force)
        view = self.lifecycle.windows.view(model_group, rolled_back=runtime.rolled_back)
        assert view is not None
        return view

    def record_feedback(self, response_id: str, score: float) -> dict[str, Any]:
        """Record a user's ``score`` (0..1) for a served response, on the side that served it.

        Raises ``UnknownResponse`` (a ``KeyError``) for an unknown or expired id, ``ValueError``
        for a score outside 0..1."""
        return self.lifecycle.feedback.record(response_id, score)

    def feedback_scores(self, model_group: str) -> EvalScores | None:
        """User feedback per side as an ``eval_score`` series (``source="feedback"``)."""
        self.controller.runtime(model_group)
        return self.lifecycle.feedback.scores(model_group)

    def route_sync_calls(self) -> None:
        """Opt in to steering sync calls (``Router.completion``) and calls that address a managed
        deployment by id: registers the canary's custom routing strategy, LiteLLM's only hook on the
        sync path. It replaces LiteLLM's pick for **every** group of the Router, sync and async
        (simple-shuffle within a side, no weighted-failover or order hops): see the README's
        routing section. ``detach()`` restores the Router's strategy."""
        if self._attached and not self._strategy_registered:
            self._router.register_plugin(self._routing.strategy())
            self._strategy_registered = True

    def route(
        self, model_group: str, *, user: str | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """The side a new request of ``model_group`` would be routed to now, without any upstream
        call and without changing anything (:mod:`litellm_canary.core.route_probe`)."""
        runtime = self.controller.runtime(model_group)  # UnknownModelGroup for an unmanaged group
        return probe_route(runtime, self.flags, user=user, session_id=session_id)

    def on_outcome(self, listener: Callable[[Outcome], None]) -> None:
        """Call ``listener`` with every attempt's outcome (off the request path)."""
        self.outcomes.recorded.connect(listener)

    def on_decision(self, listener: Callable[[str, Decision, str], None]) -> None:
        """Call ``listener(model_group, decision, deployment_id)`` on every decision (on the request
        path: keep it to a few microseconds). ``deployment_id`` is ``""`` when LiteLLM chooses the
        deployment within the side after the decision (the default, async routing)."""
        self._routing.decider.decisions.connect(listener)

    def status(self) -> dict[str, Any]:
        """A JSON-serialisable view of every rollout."""
        groups: dict[str, Any] = {}
        for group, runtime in self.runtimes.items():
            last = runtime.last_rollback
            groups[group] = {
                **self.controller.status(group),  # state, flag, in-flight attempts, pins, drain
                "attempts": self.outcomes.summary(group),
                "flag_store": self.controller.flag_store_status(group),
                "triggers": self.auto_rollback.status(group),
                "evals": self.evals.status(group),
                **self.lifecycle.status(group),  # window, keep_warm, feedback
                "last_rollback": None
                if last is None
                else {**last.as_dict(), **(self.followup.status(group) or {})},
                "drill": self.followup.drill(group),
                "flag_read": self.flags.breaker_status(runtime.config.flag_key),
            }
        return {
            "groups": groups,
            "flag_errors": dict(self.flags.errors),
            "decision_errors": self._routing.pick_errors,
            "integration_errors": dict(self.integration_errors),
            # canary decisions sent to stable because no canary deployment could serve the attempt
            "canary_not_serving": dict(self._routing.decider.canary_not_serving),
            # outcomes on managed deployments that no decision covered (sync or by-id calls)
            "unsteered": dict(self._callbacks.unsteered),
            # request tags dropped because they matched no stable deployment (never a side change)
            "tags_ignored": dict(self._routing.tags_ignored),
            "flag_variants": dict(self.flags.variants),
            "flag_source": self.flags.source_status(),
            "broadcast": self.broadcast.status() if self.broadcast else None,
            "pid": os.getpid(),  # which process answered (one per proxy worker)
        }

    async def drained(self, model_group: str, timeout: float | None = None) -> bool:
        """Wait until ``model_group`` has no canary attempt in flight and no canary pin.

        Returns False on timeout. Waits on the event the last closing canary attempt sets; also wakes
        at the conversation-drain deadline and once a second to expire abandoned attempts.
        """
        return await self._drain_waiters.drained(self.controller.runtime(model_group).pins, timeout)

    def detach(self) -> None:
        """Remove every hook: the Router routes as if the canary had never been attached."""
        if not self._attached:
            return
        self._attached = False
        self._routing.passthrough = True
        if self._strategy_registered:
            self._restore_routing()
        litellm.logging_callback_manager.remove_callback_from_all_lists(self._routing)
        litellm.logging_callback_manager.remove_callback_from_all_lists(self._callbacks)
        self.auto_rollback.stop()
        self.evals.stop()
        self.lifecycle.stop()
        if self.broadcast is not None:
            self.broadcast.stop()
        self.followup.stop()
        self.controller.close()
        self.flags.close()

    # -- internals -------------------------------------------------------------------------------

    def _restore_routing(self) -> None:
        settings = self._router.settings()
        self._router.routing_strategy_init(
            settings.routing_strategy, settings.as_dict().get("routing_strategy_args") or {}
        )


def _router_groups(router: Any) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for deployment in router.registry().all():
        groups.setdefault(deployment["model_name"], []).append(deployment["model_info"]["id"])
    return groups


def attach(
    router: Any,
    config: CanaryConfig | Mapping[str, Any],
    *,
    clock: Callable[[], float] = time.monotonic,
    background: bool = True,
    wall_clock: Callable[[], float] = time.time,
) -> Canary:
    """Attach a canary to ``router``: from the next request on, managed groups follow their flag.

    ``clock`` (monotonic seconds) drives every window and deadline; with ``background=False`` no
    trigger-evaluation thread is started and the caller steps ``canary.auto_rollback.evaluate()``.
    """
    return Canary(router, config, clock=clock, background=background, wall_clock=wall_clock)


__all__ += ["ConfigError", "RolledBackError", "UnknownModelGroup"]

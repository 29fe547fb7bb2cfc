"""The eval pipeline: eval scores of a running canary, computed off the request path, judged by the
sequential test.

This module owns the eval pipeline of one canary (the composition root builds it with the config,
the rollouts' runtimes and the router):

* **sampling** — :meth:`EvalPipeline.offer` is called by the Router glue with every successful
  attempt of a managed group (from LiteLLM's success callback, never inside the request). A
  ``sample_rate`` fraction of the chat and Responses API answers (canary and stable alike; an
  embedding has no text answer and is never sampled) goes into the rollout's bounded
  :class:`SampleQueue`; a full queue drops the sample and counts it. ``offer`` takes one random
  draw and a lock held for a ``deque.append``: it cannot slow a response down, whatever the scorer
  does. Request messages and responses are held in memory until scored, never logged or written;
* **scoring** — one daemon thread (:class:`~.worker.EvalWorker`) runs its own event loop (so it
  works the same for sync SDK users, asyncio applications and the LiteLLM proxy), takes samples
  from the queues and awaits the rollout's scorer on each (with a timeout; a sync scorer runs in a
  worker thread, so the timeout holds for it too); a scorer error counts as a failed sample, logged
  by exception type only;
* **golden rounds** — on the same loop, every ``golden_interval_s`` (and once at start), the golden
  set is replayed against both sides (:mod:`litellm_canary.detection.golden`); the last stable
  result is kept as the baseline for post-rollback verification;
* **judgement** — per rollout, one :class:`~.sequential.SequentialEvalTest` (a betting
  e-process) per score source (``traffic``, ``golden``, ``feedback``); the rule rejects when the
  mean of their e-values reaches ``1 / alpha`` (:class:`~.judge.EvalJudge`), which keeps the
  false-alarm rate at most ``alpha`` without splitting it. Scores are not pooled across sources: canary and
  stable get sampled traffic at very different rates, so a pooled side mean would weigh golden and
  traffic scores differently on each side. Golden scores are fed as canary/stable pairs per case, so
  each case's difficulty cancels. The first rejection is latched until re-arm (Ville's inequality
  bounds the first crossing), and the verdict is pushed into the rollout's
  :class:`~litellm_canary.detection.rollout_monitor.RolloutMonitor`, where the ``eval_score`` rule
  fires exactly when it rejects.

With ``background=False`` no thread is started; tests drive :meth:`EvalPipeline.score_pending` and
:meth:`EvalPipeline.run_golden_round` on their own loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, Literal

from litellm_canary.core.config import CanaryConfig, ConfigError, EvalsConfig
from litellm_canary.core.controller import RolloutRuntime
from litellm_canary.core.decision import Side
from litellm_canary.core.outcomes import Outcome
from litellm_canary.detection.evals.answers import answer_kind
from litellm_canary.detection.evals.judge import EvalJudge
from litellm_canary.detection.evals.sample_queue import Sample, SampleQueue
from litellm_canary.detection.evals.scorers import Scorer, build_scorer, check_score
from litellm_canary.detection.evals.worker import EvalWorker
from litellm_canary.detection.golden import (
    GoldenCase,
    GoldenResult,
    GoldenSetError,
    load_golden_set,
    replay_cases,
)
from litellm_canary.detection.rollout_monitor import RolloutMonitor

logger = logging.getLogger("litellm_canary.evals")

__all__ = ["EvalPipeline"]

_SIDES = ("stable", "canary")


class _RolloutEvals:
    """Everything the pipeline keeps for one rollout."""

    def __init__(
        self,
        runtime: RolloutRuntime,
        config: EvalsConfig,
        scorer: Scorer | None,
        golden: tuple[GoldenCase, ...] | None,
        monitor: RolloutMonitor | None,
        on_ready: Callable[[], None],
    ) -> None:
        self.runtime = runtime
        self.config = config
        self.scorer = scorer
        self.golden = golden
        self.monitor = monitor
        self.queue = SampleQueue(config.queue_size, on_ready)
        self.judge = EvalJudge(runtime.config.triggers.eval_score, config.sources)
        self.scored: Counter[tuple[str, str, str]] = Counter()  # (source, side, ok|failed)
        self.golden_rounds = 0
        self.last_golden: dict[str, GoldenResult] = {}
        self.baseline: GoldenResult | None = None
        self.generation = 0  # bumped by re-arm: results of a round started before it are ignored
        self.listeners: list[Callable[[str], None]] = []

    def push(self) -> None:
        if self.monitor is not None and self.runtime.config.triggers.eval_score.enabled:
            self.monitor.record_scores(self.judge.eval_scores())
        for listener in self.listeners:
            try:
                listener(self.runtime.config.model_group)
            except Exception:  # an observer's bug must not stop the pipeline
                logger.exception("eval listener %r failed", listener)


def _side(value: object) -> Literal["stable", "canary"]:
    return "canary" if value == Side.CANARY or value == "canary" else "stable"


class EvalPipeline:
    """The eval pipeline of one canary (see the module docstring). Build it before attaching hooks:
    the constructor loads every scorer and golden set and raises :class:`ConfigError` naming the
    rollout's field when one cannot be used, so nothing is half-applied."""

    def __init__(
        self,
        config: CanaryConfig,
        runtimes: Mapping[str, RolloutRuntime],
        router: Any,
        monitors: Mapping[str, RolloutMonitor] | None = None,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._router = router
        self._rng = rng
        self.rollouts: dict[str, _RolloutEvals] = {}
        for index, rollout in enumerate(config.rollouts):
            if rollout.evals is None:
                continue
            where = f"rollouts[{index}].evals"
            scorer = None
            if rollout.evals.scorer is not None:
                try:
                    scorer = build_scorer(rollout.evals.scorer)
                except ValueError as exc:
                    raise ConfigError(f"{where}.scorer: {exc}") from None
            golden = None
            if rollout.evals.golden_set is not None:
                try:
                    golden = load_golden_set(rollout.evals.golden_set)
                except GoldenSetError as exc:
                    raise ConfigError(f"{where}.golden_set: {exc}") from None
            self.rollouts[rollout.model_group] = _RolloutEvals(
                runtimes[rollout.model_group],
                rollout.evals,
                scorer,
                golden,
                None if monitors is None else monitors.get(rollout.model_group),
                lambda: self._worker.notify(),
            )
        self._worker = EvalWorker(
            score_pending=self.score_pending,
            has_pending=lambda: any(len(e.queue) for e in self.rollouts.values()),
            run_golden_round=self.run_golden_round,
            golden_intervals={
                group: evals.config.golden_interval_s
                for group, evals in self.rollouts.items()
                if evals.golden is not None
            },
        )

    def on_update(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(model_group)`` (on the scoring thread) after each scored sample or golden round."""
        for evals in self.rollouts.values():
            evals.listeners.append(listener)

    def use_monitors(self, monitors: Mapping[str, RolloutMonitor]) -> None:
        """Push each rollout's verdict into its monitor from now on (the eval_score rule reads it)."""
        for group, evals in self.rollouts.items():
            evals.monitor = monitors.get(group)
            evals.push()

    # -- the request side (LiteLLM's success callback) --------------------------------------------

    def offer(self, outcome: Outcome, kwargs: Mapping[str, Any], response: Any) -> None:
        """Maybe queue one successful attempt for scoring. Cheap; never raises into the caller."""
        evals = self.rollouts.get(outcome.model_group)
        if evals is None or evals.scorer is None or evals.runtime.rolled_back:
            return
        messages = kwargs.get("messages")
        if not messages or self._rng() >= evals.config.sample_rate:
            return
        full = kwargs.get("complete_streaming_response") or kwargs.get("async_complete_streaming_response")
        answer = full or response
        # Chat completions and Responses API answers (their output text) are scored; embeddings,
        # images, audio... have no text answer to score and are never sampled.
        kind = answer_kind(answer)
        if kind is None:
            return
        request: dict[str, Any] = {"model": outcome.model_group, "messages": messages}
        if kind == "responses" and kwargs.get("input") is not None:
            request["input"] = kwargs["input"]  # LiteLLM also gives the input as chat messages
        evals.queue.offer(Sample(_side(outcome.side), outcome.deployment_id, request, answer))

    def on_feedback(self, model_group: str, side: Side, deployment_id: str, score: float) -> None:
        """A user feedback score (a :class:`~litellm_canary.detection.feedback.FeedbackBook` listener)."""
        evals = self.rollouts.get(model_group)
        if evals is None or not evals.config.feedback or evals.runtime.rolled_back:
            return
        evals.scored["feedback", _side(side), "ok"] += 1
        evals.judge.add("feedback", _side(side), score)
        evals.push()

    # -- scoring ----------------------------------------------------------------------------------

    async def _score(self, evals: _RolloutEvals, sample: Sample) -> None:
        assert evals.scorer is not None
        try:
            score = check_score(
                await asyncio.wait_for(
                    evals.scorer(sample.request, sample.response), evals.config.score_timeout_s
                ),
                "scorer result",
            )
        except Exception as exc:
            evals.scored["traffic", sample.side, "failed"] += 1
            failed = sum(evals.scored["traffic", side, "failed"] for side in _SIDES)
            if failed == 1 or failed % 100 == 0:  # the type only: a message could quote the prompt
                logger.warning(
                    "eval scorer failed on a %s sample of %r (%s); %d failures so far",
                    sample.side,
                    evals.runtime.config.model_group,
                    type(exc).__name__,
                    failed,
                )
            return
        evals.scored["traffic", sample.side, "ok"] += 1
        if evals.runtime.rolled_back:
            return
        evals.judge.add("traffic", sample.side, score)
        evals.push()

    async def score_pending(self) -> int:
        """Score every queued sample now, on the caller's loop; returns how many were taken."""
        taken = 0
        for evals in self.rollouts.values():
            while (sample := evals.queue.take()) is not None:
                taken += 1
                await self._score(evals, sample)
        return taken

    # -- golden rounds ----------------------------------------------------------------------------

    async def replay_golden(self, model_group: str, side: Side) -> GoldenResult:
        """Replay ``model_group``'s golden set against ``side`` (nothing recorded)."""
        evals = self.rollouts.get(model_group)
        if evals is None or evals.golden is None:
            raise ValueError(f"model group {model_group!r} has no golden set configured")
        rollout = evals.runtime.config
        ids = rollout.canary if Side(side) is Side.CANARY else rollout.stable
        return await replay_cases(
            self._router,
            evals.golden,
            Side(side),
            ids,
            max_tokens=evals.config.golden_max_tokens,
            timeout_s=evals.config.golden_timeout_s,
        )

    async def run_golden_round(self, model_group: str) -> dict[str, GoldenResult] | None:
        """Replay the golden set against canary and stable and feed the pairs to the golden test.

        Skipped (``None``) while the rollout is rolled back. The stable result becomes the baseline.
        """
        evals = self.rollouts[model_group]
        if evals.golden is None or evals.runtime.rolled_back:
            return None
        generation = evals.generation
        canary, stable = await asyncio.gather(
            self.replay_golden(model_group, Side.CANARY), self.replay_golden(model_group, Side.STABLE)
        )
        evals.golden_rounds += 1
        for result in (canary, stable):
            for case in result.cases:
                evals.scored["golden", result.side.value, "failed" if case.error else "ok"] += 1
        evals.last_golden = {"canary": canary, "stable": stable}
        if evals.runtime.rolled_back or generation != evals.generation:
            return evals.last_golden  # the rollout changed under the round: do not judge with it
        evals.baseline = stable
        evals.judge.add_pairs(
            "golden", [(c.score, s.score) for c, s in zip(canary.cases, stable.cases, strict=True)]
        )
        evals.push()
        return evals.last_golden

    def golden_baseline(self, model_group: str) -> GoldenResult | None:
        """The last stable golden result of a scheduled round while armed (the verifier's baseline)."""
        evals = self.rollouts.get(model_group)
        return None if evals is None else evals.baseline

    # -- lifecycle --------------------------------------------------------------------------------

    def rearmed(self, model_group: str) -> None:
        """Start the rollout's judgement afresh (queued samples from before are dropped unscored)."""
        evals = self.rollouts.get(model_group)
        if evals is None:
            return
        evals.generation += 1
        evals.queue.clear()
        evals.judge.reset()

    @property
    def running(self) -> bool:
        return self._worker.running

    def start(self) -> None:
        """Start the scoring thread (no-op without any rollout with evals, or when running)."""
        if self.rollouts:
            self._worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the scoring thread and its loop; pending samples are discarded."""
        self._worker.stop(timeout)

    # -- status -----------------------------------------------------------------------------------

    def status(self, model_group: str) -> dict[str, Any] | None:
        """A JSON-serialisable view of ``model_group``'s evals (no prompt or answer text)."""
        evals = self.rollouts.get(model_group)
        if evals is None:
            return None
        summary = evals.judge.eval_scores()
        return {
            "sample_rate": evals.config.sample_rate,
            "queue": {
                "size": evals.queue.size,
                "depth": len(evals.queue),
                "dropped": {side: evals.queue.dropped[side] for side in _SIDES},
            },
            "scored": {
                source: {
                    side: {r: evals.scored[source, side, r] for r in ("ok", "failed")} for side in _SIDES
                }
                for source in evals.judge.sources
            },
            "verdict": None if summary is None else asdict(summary),
            **evals.judge.status(),
            "golden": {
                "cases": None if evals.golden is None else len(evals.golden),
                "rounds": evals.golden_rounds,
                "last": {side: result.as_dict() for side, result in evals.last_golden.items()},
                "baseline_mean": None if evals.baseline is None else evals.baseline.mean_score,
            },
        }

"""Eval scores of a running canary, computed off the request path, judged by the sequential test.

This module owns the eval pipeline of a :class:`~litellm_canary.canary.Canary`:

* **sampling** — :meth:`EvalPipeline.offer` is called by the Router glue with every successful
  attempt of a managed group (from LiteLLM's success callback, never inside the request). A
  ``sample_rate`` fraction of the chat and Responses API answers (canary and stable alike; an
  embedding has no text answer and is never sampled) goes into the rollout's bounded
  :class:`SampleQueue`; a full queue drops the sample and counts it. ``offer`` takes one random
  draw and a lock held for a ``deque.append``: it cannot slow a response down, whatever the scorer
  does. Request messages and responses are held in memory until scored, never logged or written;
* **scoring** — one daemon thread runs its own event loop (so it works the same for sync SDK users,
  asyncio applications and the LiteLLM proxy), takes samples from the queues and awaits the
  rollout's scorer on each (with a timeout; a sync scorer runs in a worker thread, so the timeout
  holds for it too); a scorer error counts as a failed sample, logged by exception type only;
* **golden rounds** — on the same loop, every ``golden_interval_s`` (and once at start), the golden
  set is replayed against both sides (:mod:`litellm_canary.golden`); the last stable result is kept
  as the baseline for post-rollback verification;
* **judgement** — per rollout, one :class:`~litellm_canary.evals.SequentialEvalTest` (a betting
  e-process) per score source (``traffic``, ``golden``, ``feedback``); the rule rejects when the
  mean of their e-values reaches ``1 / alpha`` (:class:`EvalJudge`), which keeps the false-alarm
  rate at most ``alpha`` without splitting it. Scores are not pooled across sources: canary and
  stable get sampled traffic at very different rates, so a pooled side mean would weigh golden and
  traffic scores differently on each side. Golden scores are fed as canary/stable pairs per case, so
  each case's difficulty cancels. The first rejection is latched until re-arm (Ville's inequality
  bounds the first crossing), and the verdict is pushed into the rollout's
  :class:`~litellm_canary.triggers.RolloutMonitor`, where the ``eval_score`` rule fires exactly when
  it rejects.

With ``background=False`` no thread is started; tests drive :meth:`EvalPipeline.score_pending` and
:meth:`EvalPipeline.run_golden_round` on their own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from litellm_canary.core.config import (
    BuiltinScorer,
    CanaryConfig,
    ConfigError,
    EvalsConfig,
    EvalScoreTrigger,
    EvalSource,
)
from litellm_canary.core.controller import RolloutRuntime
from litellm_canary.core.decision import Side
from litellm_canary.core.outcomes import Outcome
from litellm_canary.detection.evals import (
    Scorer,
    SequentialEvalTest,
    answer_kind,
    check_score,
    exact_match,
    json_schema_valid,
    load_scorer,
    mean_log_e_value,
    reference_similarity,
    regex_match,
)
from litellm_canary.detection.golden import (
    GoldenCase,
    GoldenResult,
    GoldenSetError,
    load_golden_set,
    replay_cases,
)
from litellm_canary.detection.rules import EvalScores, RolloutMonitor

logger = logging.getLogger("litellm_canary.evals")

__all__ = ["EvalJudge", "EvalPipeline", "Sample", "SampleQueue", "build_scorer"]

Source = EvalSource
_SIDES = ("stable", "canary")


def build_scorer(spec: str | BuiltinScorer) -> Scorer:
    """The scorer a config names: a dotted path, or a built-in with its arguments."""
    if isinstance(spec, str):
        return load_scorer(spec)
    if spec.builtin == "regex":
        assert spec.pattern is not None
        return regex_match(spec.pattern)
    if spec.builtin == "exact":
        assert spec.reference is not None
        return exact_match(spec.reference, case_sensitive=spec.case_sensitive)
    if spec.builtin == "json_schema":
        assert spec.json_schema is not None
        return json_schema_valid(spec.json_schema)
    assert spec.reference is not None
    return reference_similarity(spec.reference)


@dataclass(frozen=True, slots=True)
class Sample:
    """One response waiting to be scored (request text in memory only)."""

    side: Literal["stable", "canary"]
    deployment_id: str
    request: Mapping[str, Any]
    response: Any

    def __repr__(self) -> str:  # never show the request or the response text
        return f"Sample(side={self.side!r}, deployment_id={self.deployment_id!r})"


class SampleQueue:
    """A bounded FIFO of samples; :meth:`offer` on a full queue drops the sample and counts it.

    Thread-safe. ``on_ready`` is called (outside the lock) when an offer makes an empty queue
    non-empty, so a consumer waiting for work is woken once per batch, not once per sample.
    """

    def __init__(self, size: int, on_ready: Callable[[], None] = lambda: None) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"queue size must be an int >= 1, got {size!r}")
        self.size = size
        self.on_ready = on_ready
        self.dropped: Counter[str] = Counter()
        self.offered: Counter[str] = Counter()
        self._items: deque[Sample] = deque()
        self._lock = threading.Lock()

    def offer(self, sample: Sample) -> bool:
        """Queue ``sample``; False (and counted in :attr:`dropped`) when the queue is full."""
        with self._lock:
            self.offered[sample.side] += 1
            if len(self._items) >= self.size:
                self.dropped[sample.side] += 1
                return False
            was_empty = not self._items
            self._items.append(sample)
        if was_empty:
            self.on_ready()
        return True

    def take(self) -> Sample | None:
        with self._lock:
            return self._items.popleft() if self._items else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class EvalJudge:
    """The sequential tests of one rollout, one per score source, and the rule's verdict.

    Thread-safe. Each source has its own :class:`~litellm_canary.evals.SequentialEvalTest` (a betting
    e-process); the rule rejects when the **average of the sources' e-values** reaches ``1 / alpha``
    (:func:`~litellm_canary.evals.mean_log_e_value`) while at least one source has ``min_samples``
    scores on each side. Why the average and not ``alpha / sources`` per source (the union bound the
    first version used): the average of e-processes on one filtration is itself an e-process, so
    Ville's inequality bounds its first crossing at the full ``alpha`` whatever the dependence
    between sources; and ``mean(E) >= 1/alpha`` holds whenever some ``E_i >= sources/alpha``, so it
    rejects at least as often as the union bound, and earlier when several sources see the drop. The
    product of the sources' e-values would grow faster when every source sees the drop, but it pays
    for every source that does not (its bets lose a little), which the average does not.

    :meth:`eval_scores` reports the source with the largest e-value (the one that drives the
    verdict) with the combined ``log_e_value`` and ``log(1 / alpha)``; a rejection is latched.
    """

    def __init__(self, rule: EvalScoreTrigger, sources: tuple[Source, ...]) -> None:
        if not sources:
            raise ValueError("an EvalJudge needs at least one score source")
        self.rule = rule
        self.sources = sources
        self.threshold = math.log(1.0 / rule.alpha)
        self._tests = {
            source: SequentialEvalTest(rule.max_drop, rule.alpha, rule.min_samples) for source in sources
        }
        self._lock = threading.Lock()
        self._rejected: tuple[Source, EvalScores] | None = None

    def add(self, source: Source, side: Literal["stable", "canary"], score: float) -> None:
        with self._lock:
            self._tests[source].add(side, score)
            self._latch()

    def add_pairs(self, source: Source, pairs: list[tuple[float, float]]) -> None:
        """``(canary, stable)`` score pairs, each added canary first so that the test pairs them."""
        with self._lock:
            test = self._tests[source]
            for canary, stable in pairs:
                test.add("canary", canary)
                test.add("stable", stable)
                self._latch()

    def _has_scores(self, source: Source) -> bool:
        verdict = self._tests[source].state()
        return bool(verdict.canary_samples or verdict.stable_samples)

    def _combined(self) -> float:
        return mean_log_e_value(test.log_e_value() for test in self._tests.values())

    def _latch(self) -> None:
        if self._rejected is not None:
            return
        ready = [s for s in self.sources if self._tests[s].ready]
        if ready and self._combined() >= self.threshold:
            # reported: the ready source with the most evidence (the rule checks its sample counts)
            top = max(ready, key=lambda s: self._tests[s].log_e_value())
            self._rejected = (top, self._summary(top, reject=True))

    def _summary(self, source: Source, *, reject: bool) -> EvalScores:
        verdict = self._tests[source].state()
        return EvalScores(
            canary_mean=verdict.canary_mean or 0.0,
            canary_samples=verdict.canary_samples,
            stable_mean=verdict.stable_mean or 0.0,
            stable_samples=verdict.stable_samples,
            reject=reject,
            log_e_value=self._combined(),
            log_threshold=self.threshold,
            source=source,
        )

    def eval_scores(self) -> EvalScores | None:
        """The summary for the eval_score rule; ``None`` before any score."""
        with self._lock:
            if self._rejected is not None:
                return self._rejected[1]
            scored = [s for s in self.sources if self._has_scores(s)]
            if not scored:
                return None
            ready = [s for s in scored if self._tests[s].ready]
            top = max(ready or scored, key=lambda s: self._tests[s].log_e_value())
            return self._summary(top, reject=False)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "combination": "mean_e_value",
                "log_e_value": self._combined(),
                "log_threshold": self.threshold,
                "rejected_by": None if self._rejected is None else self._rejected[0],
                # Per source: means, counts, log e-value, pairs. No per-source verdict: only the
                # mean e-value above decides, and a source past 1/alpha alone may not carry it.
                "series": {
                    source: {
                        k: v for k, v in test.state().as_dict().items() if k not in ("reject", "threshold")
                    }
                    for source, test in self._tests.items()
                },
            }

    def reset(self) -> None:
        with self._lock:
            for test in self._tests.values():
                test.reset()
            self._rejected = None


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
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
                self._notify,
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
        """A user feedback score (a :class:`~litellm_canary.feedback.FeedbackBook` listener)."""
        evals = self.rollouts.get(model_group)
        if evals is None or not evals.config.feedback or evals.runtime.rolled_back:
            return
        evals.scored["feedback", _side(side), "ok"] += 1
        evals.judge.add("feedback", _side(side), score)
        evals.push()

    def _notify(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                loop.call_soon_threadsafe(wake.set)

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
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the scoring thread (no-op without any rollout with evals, or when running)."""
        if not self.rollouts or self._thread is not None:
            return
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="litellm-canary-evals", daemon=True
        )
        self._thread.start()
        ready.wait(timeout=10)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the scoring thread and its loop; pending samples are discarded."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def _run(self, ready: threading.Event) -> None:
        # asyncio.run cancels whatever is left on the loop at the end, including tasks LiteLLM's
        # logging worker started here for the golden replays' callbacks.
        try:
            asyncio.run(self._main(ready))
        finally:
            self._loop = None

    async def _main(self, ready: threading.Event) -> None:
        self._wake, self._stopping = asyncio.Event(), asyncio.Event()
        self._loop = asyncio.get_running_loop()
        ready.set()
        tasks = [asyncio.create_task(self._consume())]
        tasks += [
            asyncio.create_task(self._golden_schedule(group))
            for group, evals in self.rollouts.items()
            if evals.golden is not None
        ]
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _consume(self) -> None:
        assert self._wake is not None
        while True:
            if not await self._guarded(self.score_pending()):
                self._wake.clear()
                if not any(len(e.queue) for e in self.rollouts.values()):
                    await self._wake.wait()

    async def _golden_schedule(self, group: str) -> None:
        assert self._stopping is not None
        interval = self.rollouts[group].config.golden_interval_s
        while True:
            await self._guarded(self.run_golden_round(group))
            try:
                await asyncio.wait_for(self._stopping.wait(), interval)
                return
            except TimeoutError:
                pass

    @staticmethod
    async def _guarded(work: Awaitable[Any]) -> Any:
        try:
            return await work
        except asyncio.CancelledError:
            raise
        except Exception:  # the worker must survive; the next round tries again
            logger.exception("eval pipeline step failed")
            return None

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
            "verdict": None if summary is None else _asdict(summary),
            **evals.judge.status(),
            "golden": {
                "cases": None if evals.golden is None else len(evals.golden),
                "rounds": evals.golden_rounds,
                "last": {side: result.as_dict() for side, result in evals.last_golden.items()},
                "baseline_mean": None if evals.baseline is None else evals.baseline.mean_score,
            },
        }


def _asdict(scores: EvalScores) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(scores)

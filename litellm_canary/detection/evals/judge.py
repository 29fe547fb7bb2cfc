"""The eval_score verdict of one rollout: one sequential test per score source, combined.

This module owns :class:`EvalJudge`, which keeps a :class:`~.sequential.SequentialEvalTest` per score
source (``traffic``, ``golden``, ``feedback``), rejects when the mean of their e-values reaches
``1 / alpha``, latches the first rejection until reset, and summarises the verdict as the
:class:`~litellm_canary.detection.rules.EvalScores` the ``eval_score`` rule reads.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Literal

from litellm_canary.core.config import EvalScoreTrigger, EvalSource
from litellm_canary.detection.evals.sequential import SequentialEvalTest, mean_log_e_value
from litellm_canary.detection.rules import EvalScores

__all__ = ["EvalJudge", "Source"]

Source = EvalSource


class EvalJudge:
    """The sequential tests of one rollout, one per score source, and the rule's verdict.

    Thread-safe. Each source has its own :class:`~.sequential.SequentialEvalTest` (a betting
    e-process); the rule rejects when the **average of the sources' e-values** reaches ``1 / alpha``
    (:func:`~.sequential.mean_log_e_value`) while at least one source has ``min_samples``
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

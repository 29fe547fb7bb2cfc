"""How sure a comparison over rounds is: a pooled ratio, a 95 % bootstrap interval, a verdict.

A benchmark that compares two configurations in rounds (``bench proxy``: baseline and canary
proxies, both loaded in every round) gets one figure per round for each. The rounds are the unit of
repetition: the machine's speed drifts between rounds, far less within one, so a round's baseline
and canary figures stay together (paired) and the uncertainty comes from how the rounds differ.

* :func:`pooled_ratio`: ``(sum of canary numerators / sum of canary denominators) / (the same for
  the baseline)`` over some rounds, e.g. requests / elapsed s (throughput) or CPU s / requests.
* :func:`bootstrap_interval`: the 95 % **percentile bootstrap over rounds**: ``RESAMPLES`` times,
  draw as many rounds as there are, with replacement (a fixed seed: the same rounds give the same
  interval), compute the statistic of the draw; the interval is the 2.5 % and 97.5 % quantiles of
  those. With fewer than ``MIN_ROUNDS`` rounds there is no interval (None). With few rounds (fewer
  than about 8) a percentile bootstrap is narrower than a true 95 % interval: read a quick run's
  intervals as rough.
* :func:`verdict`: ``met`` when the whole interval is on the target's good side, ``missed`` when
  the whole interval is on its bad side, ``not_resolved`` when the interval straddles the target
  (or there is none): the measurement cannot tell.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, TypeVar

from litellm_canary.bench.report import quantile

__all__ = [
    "MIN_ROUNDS",
    "RESAMPLES",
    "SEED",
    "VERDICTS",
    "RatioRound",
    "Verdict",
    "bootstrap_interval",
    "pooled_ratio",
    "verdict",
]

T = TypeVar("T")
Verdict = Literal["met", "missed", "not_resolved"]
VERDICTS: tuple[Verdict, ...] = ("met", "missed", "not_resolved")
RESAMPLES = 2000
SEED = 14  # fixed: the same rounds always give the same interval
MIN_ROUNDS = 2
LEVEL = 0.95


class RatioRound(NamedTuple):
    """One round's two figures as numerator / denominator each (canary first)."""

    canary: float
    canary_per: float
    baseline: float
    baseline_per: float


def pooled_ratio(rounds: Sequence[RatioRound]) -> float | None:
    """(Σ canary / Σ canary_per) / (Σ baseline / Σ baseline_per); None when it is undefined."""
    canary_per = sum(r.canary_per for r in rounds)
    baseline = sum(r.baseline for r in rounds)
    baseline_per = sum(r.baseline_per for r in rounds)
    if not canary_per or not baseline or not baseline_per:
        return None
    return (sum(r.canary for r in rounds) / canary_per) / (baseline / baseline_per)


def bootstrap_interval(
    rounds: Sequence[T],
    statistic: Callable[[Sequence[T]], float | None],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float] | None:
    """The 95 % percentile-bootstrap interval of ``statistic`` over ``rounds`` (resampled whole);
    None with fewer than ``MIN_ROUNDS`` rounds or when the statistic is undefined for most draws."""
    if len(rounds) < MIN_ROUNDS:
        return None
    draw = random.Random(seed)
    values = [
        value
        for _ in range(resamples)
        if (value := statistic([rounds[draw.randrange(len(rounds))] for _ in rounds])) is not None
    ]
    if len(values) < resamples / 2:
        return None
    low, high = quantile(values, (1 - LEVEL) / 2), quantile(values, (1 + LEVEL) / 2)
    assert low is not None and high is not None  # values is not empty
    return low, high


def verdict(interval: tuple[float, float] | None, target: float, *, at_least: bool) -> Verdict:
    """``met`` / ``missed`` / ``not_resolved`` for a target the figure must be at least
    (``at_least``) or at most ``target``, judged by the figure's interval."""
    if interval is None:
        return "not_resolved"
    low, high = interval
    good, bad = (low >= target, high < target) if at_least else (high <= target, low > target)
    return "met" if good else "missed" if bad else "not_resolved"

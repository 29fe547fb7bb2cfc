"""The always-valid sequential test that judges eval scores, and the sound way to combine several.

This module owns :class:`SequentialEvalTest`, which watches the stream of stable and canary scores and
says whether the canary's mean score is more than ``max_drop`` (relative) below stable's, with the
false-alarm probability held at ``alpha`` however often it is looked at (testing by betting on
paired differences, with the stake from :func:`plug_in_bet`); its state, :class:`EvalVerdict`; and
:func:`mean_log_e_value`, which combines several score sources' tests at the full ``alpha``
(averaging their e-values). Scheduling the scorers and acting on a rejection belong to the caller;
the test is pure arithmetic on running sums (no I/O, no clock, no locks — guard it with the
caller's lock when several threads add scores).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from litellm_canary.core.config import EvalScoreTrigger
from litellm_canary.detection.rules import EvalScores

EvalSide = Literal["stable", "canary"]

__all__ = [
    "MAX_BET",
    "PRIOR_VARIANCE",
    "TUNED_PAIRS",
    "EvalSide",
    "EvalVerdict",
    "SequentialEvalTest",
    "mean_log_e_value",
    "plug_in_bet",
]


@dataclass(frozen=True, slots=True)
class EvalVerdict:
    """The sequential test's state after the latest score.

    ``reject`` is True when the canary is judged worse (fire the rule). ``statistic`` is the log of
    the test's wealth (its e-process), ``threshold`` is ``log(1 / alpha)``: ``reject`` is
    ``statistic >= threshold`` once both sides have ``min_samples`` scores. ``canary_mean`` and
    ``stable_mean`` are plain sample means (``None`` with no scores yet); ``effective_pairs`` is the
    number of canary/stable pairs bet on so far (see :class:`SequentialEvalTest`).
    """

    reject: bool
    canary_mean: float | None
    stable_mean: float | None
    canary_samples: int
    stable_samples: int
    statistic: float
    threshold: float
    effective_pairs: float = 0.0

    def as_eval_scores(self) -> EvalScores:
        """The means and counts as the :class:`~litellm_canary.detection.rules.EvalScores` summary."""
        return EvalScores(
            canary_mean=self.canary_mean or 0.0,
            canary_samples=self.canary_samples,
            stable_mean=self.stable_mean or 0.0,
            stable_samples=self.stable_samples,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "reject": self.reject,
            "canary_mean": self.canary_mean,
            "stable_mean": self.stable_mean,
            "canary_samples": self.canary_samples,
            "stable_samples": self.stable_samples,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "effective_pairs": self.effective_pairs,
        }


#: Default cap on the bet: the fraction of wealth staked on one pair is in ``[0, MAX_BET]``.
MAX_BET = 0.5
#: Default prior variance of a pair's difference (the worst-case variance of a [0, 1] score).
PRIOR_VARIANCE = 0.25
#: Default number of pairs the bet is tuned for (see :func:`plug_in_bet`).
TUNED_PAIRS = 1500.0


def plug_in_bet(
    pairs: int,
    sum_z: float,
    sum_z2: float,
    *,
    threshold: float,
    tuned_pairs: float = TUNED_PAIRS,
    max_bet: float = MAX_BET,
    prior: float = PRIOR_VARIANCE,
) -> float:
    """The stake on the next pair, from the ``pairs`` pairs so far (their sum and sum of squares).

    The predictable plug-in bet of Waudby-Smith & Ramdas (2023), for a one-sided test:
    ``lambda = sqrt(2 threshold / (var * tuned_pairs))`` with ``var`` the empirical variance of the
    past differences (shrunk towards ``prior`` by one pseudo-pair), capped at ``max_bet``, and 0 while
    the past differences do not say the canary is behind (sum <= 0). It is the stake that makes the
    wealth reach ``exp(threshold)`` around ``tuned_pairs`` pairs for the smallest drift detectable
    there, scaled by the scores' actual spread: a low-variance score gets a larger stake.

    Why not the Kelly-like aGRAPA bet (``mean / second moment``, same paper): learning the mean's
    size from few pairs overbets early and pays for it; in the benchmark (10 % drop, 2880 pass/fail
    scores per side at 0.8) aGRAPA found 76 % of bad canaries, this bet 92 % (an oracle that knows
    the true distributions: 92-93 %). aGRAPA is faster for large drops (20 %: median 182 pass/fail
    samples against 287 here).
    """
    if sum_z <= 0.0:
        return 0.0
    n = pairs + 1.0
    variance = (prior + sum_z2 - sum_z * sum_z / n) / n
    return min(math.sqrt(2.0 * threshold / (variance * tuned_pairs)), max_bet)


class SequentialEvalTest:
    """Always-valid test of "the canary's mean score is more than ``max_drop`` (relative) below stable's".

    Hypotheses, with ``mu_c``, ``mu_s`` the canary and stable mean scores and ``k = 1 - max_drop``:
    ``H0: mu_c >= k * mu_s`` (canary acceptable) against ``H1: mu_c < k * mu_s`` (fire).

    **Method: testing by betting** (Shafer 2021; Waudby-Smith & Ramdas, "Estimating means of bounded
    random variables by betting", JRSS-B 2023; the two-sample form of Shekhar & Ramdas 2023):

    * *pairing* — scores are paired in arrival order with O(1) memory: each side keeps a running sum
      and count of its scores not yet paired; a score arriving while the *other* side has unpaired
      scores closes a pair ``(mean of the canary batch, mean of the stable batch)`` and empties both
      batches. With equal rates this is in-order pairing; with unequal rates (stable usually gets far
      more sampled traffic) each canary score is paired with the mean of the stable scores that came
      since the last pair, so no score is thrown away and nothing is buffered;
    * *the bet* — the pair's difference ``Z = k * stable_batch_mean - canary_batch_mean`` is in
      ``[-1, k]``. Before the pair is seen a fraction ``lambda`` in ``[0, max_bet]`` is fixed from the
      *previous* pairs only (:func:`plug_in_bet`), and the wealth is multiplied by ``1 + lambda Z``;
      the statistic is ``log K = sum log(1 + lambda_i Z_i)``. The stake scales with ``1 / sd`` of the
      actual differences, so the test adapts to the scores' real variance (Bernoulli(0.8): 0.16,
      Beta(4, 1): 0.027) instead of paying for the [0, 1] worst case 1/4.

    **Proof sketch (false-rollback bound)** — let ``F_i`` be everything seen before pair ``i`` closes
    (all earlier scores and which side each came from). Under H0, given ``F_i`` and the sides in the
    pair, each score has its side's mean, so ``E[Z_i | F_i] = k mu_s - mu_c <= 0``. ``lambda_i`` is
    ``F_i``-measurable and ``>= 0``, so ``E[1 + lambda_i Z_i | F_i] = 1 + lambda_i E[Z_i | F_i] <= 1``,
    and ``1 + lambda_i Z_i >= 1 - max_bet > 0``. Hence ``K_n = prod (1 + lambda_i Z_i)`` is a
    nonnegative supermartingale with ``K_0 = 1`` (a test supermartingale), and by Ville's inequality
    ``P_H0(exists n: K_n >= 1/alpha) <= alpha``. The test rejects the first time ``log K >=
    log(1/alpha)`` with both sides at ``min_samples``: every score is a look, optional stopping is
    free, and the ``min_samples`` gate only removes looks, so the bound holds over any number of looks
    and any watch length. At the boundary ``mu_c = k mu_s`` ``K`` is a martingale and the measured
    false-rollback rate comes close to ``alpha`` (``benchmarks/eval_sequential.py``:
    ``aa_boundary_false_rollbacks``); the gap is the overshoot at the crossing and the finite watch.

    **Assumptions** — scores are in [0, 1] (checked); within each side they are independent with a
    constant mean given the past (i.i.d. per side is enough — no normality, no variance known in
    advance); which side the next score comes from may depend on the past but not on that score. A
    drifting stable mean (e.g. a traffic mix change that hits one side only) is not covered.

    Not thread-safe; O(1) memory. ``add`` is a look: call :meth:`state` after any add.
    """

    def __init__(
        self,
        max_drop: float,
        alpha: float,
        min_samples: int,
        *,
        max_bet: float = MAX_BET,
        prior: float = PRIOR_VARIANCE,
        tuned_pairs: float = TUNED_PAIRS,
    ) -> None:
        if isinstance(max_drop, bool) or not isinstance(max_drop, int | float) or not 0 < max_drop < 1:
            raise ValueError(f"max_drop must be in (0, 1), got {max_drop!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
            raise ValueError(f"min_samples must be an int >= 1, got {min_samples!r}")
        if isinstance(max_bet, bool) or not isinstance(max_bet, int | float) or not 0 < max_bet < 1:
            raise ValueError(f"max_bet must be in (0, 1), got {max_bet!r}")
        if isinstance(prior, bool) or not isinstance(prior, int | float) or not prior > 0:
            raise ValueError(f"prior must be > 0, got {prior!r}")
        if isinstance(tuned_pairs, bool) or not isinstance(tuned_pairs, int | float) or not tuned_pairs > 0:
            raise ValueError(f"tuned_pairs must be > 0, got {tuned_pairs!r}")
        self.max_drop = float(max_drop)
        self.alpha = float(alpha)
        self.min_samples = min_samples
        self.max_bet = float(max_bet)
        self.prior = float(prior)
        self.tuned_pairs = float(tuned_pairs)
        self._k = 1.0 - self.max_drop
        self.threshold = math.log(1.0 / self.alpha)
        self.reset()

    @classmethod
    def from_rule(cls, rule: EvalScoreTrigger) -> SequentialEvalTest:
        """From the eval_score rule's config (its ``max_drop``, ``alpha`` and ``min_samples``)."""
        return cls(rule.max_drop, rule.alpha, rule.min_samples)

    def reset(self) -> None:
        """Forget every score (a re-armed rollout)."""
        self._n_c = 0
        self._n_s = 0
        self._sum_c = 0.0  # plain sums, for the reported means
        self._sum_s = 0.0
        self._batch_n_c = 0  # unpaired scores of each side
        self._batch_n_s = 0
        self._batch_c = 0.0
        self._batch_s = 0.0
        self._pairs = 0
        self._sum_z = 0.0
        self._sum_z2 = 0.0
        self._log_wealth = 0.0
        self._bet = 0.0  # fixed before the next pair is seen

    def add(self, side: EvalSide, score: float) -> None:
        """Record one score in [0, 1] of ``side`` (``"stable"`` or ``"canary"``)."""
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
            raise ValueError(f"score must be a number in [0, 1], got {score!r}")
        value = float(score)
        if side == "canary":
            self._n_c += 1
            self._sum_c += value
            self._batch_n_c += 1
            self._batch_c += value
            if self._batch_n_s:
                self._close_pair()
        elif side == "stable":
            self._n_s += 1
            self._sum_s += value
            self._batch_n_s += 1
            self._batch_s += value
            if self._batch_n_c:
                self._close_pair()
        else:
            raise ValueError(f"side must be 'stable' or 'canary', got {side!r}")

    def _close_pair(self) -> None:
        z = self._k * self._batch_s / self._batch_n_s - self._batch_c / self._batch_n_c
        self._batch_n_c = self._batch_n_s = 0
        self._batch_c = self._batch_s = 0.0
        self._log_wealth += math.log1p(self._bet * z)
        self._pairs += 1
        self._sum_z += z
        self._sum_z2 += z * z
        self._bet = plug_in_bet(
            self._pairs,
            self._sum_z,
            self._sum_z2,
            threshold=self.threshold,
            tuned_pairs=self.tuned_pairs,
            max_bet=self.max_bet,
            prior=self.prior,
        )

    def add_many(self, side: EvalSide, scores: Any) -> None:
        """``add`` each score of the iterable ``scores`` in turn (each one is a look)."""
        for score in scores:
            self.add(side, score)

    def log_e_value(self) -> float:
        """``log K``, the log wealth of the betting e-process after all pairs so far (0 with none)."""
        return self._log_wealth

    @property
    def ready(self) -> bool:
        """Both sides have ``min_samples`` scores (the test may reject)."""
        return min(self._n_c, self._n_s) >= self.min_samples

    @property
    def rejected(self) -> bool:
        """Whether :meth:`state` would say ``reject``."""
        return self.ready and self._log_wealth >= self.threshold

    def state(self) -> EvalVerdict:
        """The verdict now (see :class:`EvalVerdict`)."""
        return EvalVerdict(
            reject=self.rejected,
            canary_mean=self._sum_c / self._n_c if self._n_c else None,
            stable_mean=self._sum_s / self._n_s if self._n_s else None,
            canary_samples=self._n_c,
            stable_samples=self._n_s,
            statistic=self._log_wealth,
            threshold=self.threshold,
            effective_pairs=float(self._pairs),
        )


def mean_log_e_value(log_e_values: Any) -> float:
    """``log(mean(exp(x)))`` of the per-source log e-values, without overflow (0 for none).

    The mean of e-processes on one filtration is an e-process (a mixture of test supermartingales is
    one), whatever the dependence between them: so sources are combined by averaging their e-values
    and the average is tested at the full ``alpha``.
    """
    values = [float(v) for v in log_e_values]
    if not values:
        return 0.0
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))

"""Eval scores for the eval_score rule: scorers, and the always-valid sequential test that judges them.

This module owns two things:

* the **scorer interface** — :data:`Scorer`, an ``async (request, response) -> float`` in [0, 1];
  :func:`load_scorer` to import a user's scorer from a dotted path; and pure-Python built-in scorer
  factories (:func:`exact_match`, :func:`regex_match`, :func:`json_schema_valid`,
  :func:`reference_similarity`) that read the response text of an OpenAI-style chat completion (a
  dict or a litellm ``ModelResponse``) or of a plain string. No network, no model calls;
* the **sequential test** — :class:`SequentialEvalTest`, which watches the stream of stable and
  canary scores and says whether the canary's mean score is more than ``max_drop`` (relative) below
  stable's, with the false-alarm probability held at ``alpha`` however often it is looked at
  (testing by betting on paired differences), and :func:`mean_log_e_value`, the sound way to
  combine several score sources' tests at the full ``alpha`` (averaging their e-values).

Scheduling the scorers (which requests to score, on what budget) and acting on a rejection belong to
the caller; the test itself is pure arithmetic on running sums (no I/O, no clock, no locks — guard it
with the caller's lock when several threads add scores).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from litellm_canary.core.config import EvalScoreTrigger
from litellm_canary.detection.rules import EvalScores

#: ``async (request, response) -> score``; the score is a float in [0, 1], higher is better.
Scorer = Callable[[Mapping[str, Any], Any], Awaitable[float]]

EvalSide = Literal["stable", "canary"]


# --------------------------------------------------------------------------------------------------
# Response text
# --------------------------------------------------------------------------------------------------


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj[key]
    try:
        return getattr(obj, key)
    except AttributeError:
        raise KeyError(key) from None


def _maybe(obj: Any, key: str) -> Any:
    try:
        return _get(obj, key)
    except KeyError:
        return None


def answer_kind(response: Any) -> Literal["chat", "responses"] | None:
    """``"chat"`` for a chat completion (``choices``), ``"responses"`` for a Responses API answer
    (an ``output`` list), ``None`` for anything without a text answer (an embedding, an image...)."""
    if isinstance(_maybe(response, "choices"), list):
        return "chat"
    if isinstance(_maybe(response, "output"), list):
        return "responses"
    return None


def _responses_text(output: list[Any]) -> str:
    # The Responses API's output_text: the output_text parts of the message items, in order
    # (reasoning, tool calls and refusals carry no answer text).
    parts = []
    for item in output:
        if _maybe(item, "type") != "message":
            continue
        for part in _maybe(item, "content") or ():
            text = _maybe(part, "text")
            if _maybe(part, "type") == "output_text" and isinstance(text, str):
                parts.append(text)
    return "".join(parts)


def response_text(response: Any) -> str:
    """The text of ``response``: ``choices[0].message.content`` of a chat completion, the
    ``output_text`` of a Responses API answer, or the string.

    ``response`` may be a plain ``str``, an OpenAI-style dict, or an object with the same attributes
    (a litellm ``ModelResponse`` or ``ResponsesAPIResponse``). A ``None`` content (e.g. a
    tool-call-only answer) is ``""``; a list of content parts is joined from its ``text`` parts.
    Anything else raises :class:`ValueError`.
    """
    if isinstance(response, str):
        return response
    if answer_kind(response) == "responses":
        return _responses_text(_get(response, "output"))
    try:
        content = _get(_get(_get(response, "choices")[0], "message"), "content")
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(
            f"cannot read choices[0].message.content from a {type(response).__name__} response"
        ) from exc
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            text = part.get("text") if isinstance(part, Mapping) else getattr(part, "text", None)
            if isinstance(text, str):
                parts.append(text)
        return "".join(parts)
    raise ValueError(f"choices[0].message.content is a {type(content).__name__}, not text")


# --------------------------------------------------------------------------------------------------
# Built-in scorers
# --------------------------------------------------------------------------------------------------


def check_score(score: object, source: str = "score") -> float:
    """``score`` as a float in [0, 1], or :class:`ValueError` naming ``source`` and the value."""
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise ValueError(f"{source} must be a number in [0, 1], got {score!r}")
    value = float(score)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{source} must be in [0, 1], got {score!r}")
    return value


def exact_match(reference: str, *, strip: bool = True, case_sensitive: bool = True) -> Scorer:
    """1.0 when the response text equals ``reference`` (after stripping whitespace, by default), else 0.0."""
    if not isinstance(reference, str):
        raise ValueError(f"exact_match reference must be a str, got {type(reference).__name__}")

    def normalise(text: str) -> str:
        text = text.strip() if strip else text
        return text if case_sensitive else text.casefold()

    expected = normalise(reference)

    async def score(request: Mapping[str, Any], response: Any) -> float:
        return 1.0 if normalise(response_text(response)) == expected else 0.0

    return score


def regex_match(pattern: str | re.Pattern[str], *, flags: int = 0) -> Scorer:
    """1.0 when ``pattern`` matches anywhere in the response text (``re.search``), else 0.0.

    The pattern is compiled once, here; an invalid pattern raises :class:`ValueError` naming it.
    """
    if isinstance(pattern, re.Pattern):
        compiled = pattern
    elif isinstance(pattern, str):
        try:
            compiled = re.compile(pattern, flags)
        except re.error as exc:
            raise ValueError(f"invalid regex_match pattern {pattern!r}: {exc}") from exc
    else:
        raise ValueError(f"regex_match pattern must be a str or re.Pattern, got {type(pattern).__name__}")

    async def score(request: Mapping[str, Any], response: Any) -> float:
        return 1.0 if compiled.search(response_text(response)) else 0.0

    return score


_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)


def json_schema_valid(schema: Mapping[str, Any]) -> Scorer:
    """1.0 when the response text is JSON valid against ``schema`` (JSON Schema, via ``jsonschema``).

    The text may be wrapped in one markdown code fence (```` ```json ... ``` ````). Text that is not
    JSON scores 0.0. The schema is checked once, here, against its own draft's meta-schema (the draft
    named by ``$schema``, else the latest); an invalid schema raises :class:`ValueError`.
    """
    import jsonschema
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, Mapping):
        raise ValueError(f"json_schema_valid schema must be a mapping, got {type(schema).__name__}")
    schema_dict = dict(schema)
    validator_class = jsonschema.validators.validator_for(schema_dict)
    try:
        validator_class.check_schema(schema_dict)
    except SchemaError as exc:
        raise ValueError(f"invalid JSON schema for json_schema_valid: {exc.message}") from exc
    validator = validator_class(schema_dict)

    async def score(request: Mapping[str, Any], response: Any) -> float:
        text = response_text(response)
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1)
        try:
            instance = json.loads(text)
        except ValueError:  # json.JSONDecodeError, and RecursionError-free bad input
            return 0.0
        return 1.0 if validator.is_valid(instance) else 0.0

    return score


_TOKEN = re.compile(r"\w+", re.UNICODE)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


def token_f1(candidate: str, reference: str) -> float:
    """Token-level F1 of ``candidate`` against ``reference`` (case-folded ``\\w+`` tokens, as multisets).

    Both empty: 1.0; exactly one empty: 0.0.
    """
    cand, ref = _tokens(candidate), _tokens(reference)
    if not cand or not ref:
        return 1.0 if not cand and not ref else 0.0
    overlap = sum((Counter(cand) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(cand), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def reference_similarity(reference: str) -> Scorer:
    """Token-level F1 (SQuAD-style) between the response text and ``reference``, in [0, 1].

    Why token F1 rather than ``difflib.SequenceMatcher.ratio``: it is the standard answer-overlap
    metric for QA evals, symmetric, linear in the text length (``ratio`` is quadratic in the worst
    case), insensitive to word order and to whitespace/punctuation/case differences that do not
    change an answer, and free of ``SequenceMatcher``'s "autojunk" heuristic, which silently changes
    the score of texts of 200+ items. It does not see paraphrase (neither does ``difflib``).
    """
    if not isinstance(reference, str):
        raise ValueError(f"reference_similarity reference must be a str, got {type(reference).__name__}")

    async def score(request: Mapping[str, Any], response: Any) -> float:
        return token_f1(response_text(response), reference)

    return score


# --------------------------------------------------------------------------------------------------
# Loading a user's scorer
# --------------------------------------------------------------------------------------------------


def _import_attr(dotted_path: str) -> Any:
    if ":" in dotted_path:
        module_name, _, attr_path = dotted_path.partition(":")
        if not module_name or not attr_path:
            raise ValueError(f"scorer path {dotted_path!r} must look like 'package.module:attr'")
        module = importlib.import_module(module_name)
    else:
        module_name, _, attr_path = dotted_path.rpartition(".")
        if not module_name or not attr_path:
            raise ValueError(
                f"scorer path {dotted_path!r} must look like 'package.module:attr' or 'package.module.attr'"
            )
        module = importlib.import_module(module_name)
    obj: Any = module
    for name in attr_path.split("."):
        obj = getattr(obj, name)
    return obj


def load_scorer(dotted_path: str) -> Scorer:
    """Import the scorer at ``package.module:attr`` (or ``package.module.attr``; ``attr`` may be dotted).

    The object must be callable as ``(request, response)``; an ``async def`` function is returned as
    is, anything else callable (a plain function, an object with ``__call__``) is wrapped so that it
    runs in a worker thread (``asyncio.to_thread``: a slow or stuck sync scorer never blocks the
    caller's event loop, and a timeout around the returned coroutine does end the wait for it — the
    thread itself cannot be killed and finishes in the background), the result is awaited when it
    is awaitable, and always returned as a float. Every failure — bad path,
    module or attribute not found, an exception while importing, not callable — raises
    :class:`ValueError` naming the path.
    """
    if not isinstance(dotted_path, str) or not dotted_path.strip():
        raise ValueError(f"scorer path must be a non-empty string, got {dotted_path!r}")
    path = dotted_path.strip()
    try:
        obj = _import_attr(path)
    except ValueError:
        raise
    except Exception as exc:  # ImportError, AttributeError, or anything the module raised on import
        raise ValueError(f"cannot import scorer {path!r}: {type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise ValueError(f"scorer {path!r} is a {type(obj).__name__}, not a callable")
    if inspect.iscoroutinefunction(obj):
        scorer: Scorer = obj
        return scorer
    function: Callable[[Mapping[str, Any], Any], Any] = obj

    async def call(request: Mapping[str, Any], response: Any) -> float:
        result = await asyncio.to_thread(function, request, response)
        if inspect.isawaitable(result):
            result = await result
        return float(result)

    return call


# --------------------------------------------------------------------------------------------------
# The sequential test
# --------------------------------------------------------------------------------------------------


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
        """The means and counts as the :class:`~litellm_canary.triggers.EvalScores` summary."""
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


__all__ = [
    "MAX_BET",
    "EvalSide",
    "EvalVerdict",
    "Scorer",
    "SequentialEvalTest",
    "answer_kind",
    "check_score",
    "exact_match",
    "json_schema_valid",
    "load_scorer",
    "mean_log_e_value",
    "plug_in_bet",
    "reference_similarity",
    "regex_match",
    "response_text",
    "token_f1",
]

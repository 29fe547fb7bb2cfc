"""Eval scores for the eval_score rule: scorers, and the always-valid sequential test that judges them.

This module owns two things:

* the **scorer interface** — :data:`Scorer`, an ``async (request, response) -> float`` in [0, 1];
  :func:`load_scorer` to import a user's scorer from a dotted path; and pure-Python built-in scorer
  factories (:func:`exact_match`, :func:`regex_match`, :func:`json_schema_valid`,
  :func:`reference_similarity`) that read the response text of an OpenAI-style chat completion (a
  dict or a litellm ``ModelResponse``) or of a plain string. No network, no model calls;
* the **sequential test** — :class:`SequentialEvalTest`, which watches the stream of stable and
  canary scores and says whether the canary's mean score is more than ``max_drop`` (relative) below
  stable's, with the false-alarm probability held at ``alpha`` however often it is looked at.

Scheduling the scorers (which requests to score, on what budget) and acting on a rejection belong to
the caller; the test itself is pure arithmetic on running sums (no I/O, no clock, no locks — guard it
with the caller's lock when several threads add scores).
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from litellm_canary.config import EvalScoreTrigger
from litellm_canary.triggers import EvalScores

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


def response_text(response: Any) -> str:
    """The text of ``response``: ``choices[0].message.content`` of a chat completion, or the string.

    ``response`` may be a plain ``str``, an OpenAI-style dict, or an object with the same attributes
    (a litellm ``ModelResponse``). A ``None`` content (e.g. a tool-call-only answer) is ``""``; a list
    of content parts is joined from its ``text`` parts. Anything else raises :class:`ValueError`.
    """
    if isinstance(response, str):
        return response
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
    is, anything else callable (a plain function, an object with ``__call__``) is wrapped so that the
    result is awaited when it is awaitable and always returned as a float. Every failure — bad path,
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
        result = function(request, response)
        if inspect.isawaitable(result):
            result = await result
        return float(result)

    return call


# --------------------------------------------------------------------------------------------------
# The sequential test
# --------------------------------------------------------------------------------------------------


def _log_phi(z: float) -> float:
    """log of the standard normal CDF, accurate far into the lower tail."""
    if z > -30.0:
        return math.log(0.5 * math.erfc(-z / math.sqrt(2.0)))
    # Mills-ratio asymptotic: Phi(z) ~ phi(z) / |z| * (1 - 1/z^2)
    return -0.5 * z * z - math.log(-z * math.sqrt(2.0 * math.pi)) + math.log1p(-1.0 / (z * z))


@dataclass(frozen=True, slots=True)
class EvalVerdict:
    """The sequential test's state after the latest score.

    ``reject`` is True when the canary is judged worse (fire the rule). ``statistic`` is the log of
    the mixture likelihood ratio (the e-process), ``threshold`` is ``log(1 / alpha)``: ``reject`` is
    ``statistic >= threshold`` once both sides have ``min_samples`` scores. ``canary_mean`` and
    ``stable_mean`` are plain sample means (``None`` with no scores yet); ``effective_pairs`` is the
    canary weight that went into the statistic (see :class:`SequentialEvalTest`).
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


#: Default cap on how far the canary's weight may run ahead of stable's (see :class:`SequentialEvalTest`).
MAX_LEAD = 8.0


def mixture_precision(tuned_pairs: float, max_drop: float, alpha: float) -> float:
    """The prior precision ``rho`` that makes the boundary tightest near ``tuned_pairs`` pairs.

    Uses the tuning of the normal-mixture boundary in Howard et al. (2021): ``rho = V* / (2 log(1/alpha)
    + log(1 + 2 log(1/alpha)))`` with ``V*`` the variance proxy after ``tuned_pairs`` full pairs.
    """
    v_star = tuned_pairs * (1.0 + (1.0 - max_drop) ** 2) / 4.0
    log_inv = math.log(1.0 / alpha)
    return v_star / (2.0 * log_inv + math.log1p(2.0 * log_inv))


class SequentialEvalTest:
    """Always-valid test of "the canary's mean score is more than ``max_drop`` (relative) below stable's".

    Hypotheses, with ``mu_c``, ``mu_s`` the canary and stable mean scores and ``k = 1 - max_drop``:
    ``H0: mu_c >= k * mu_s`` (canary acceptable) against ``H1: mu_c < k * mu_s`` (fire).

    **Method** — a one-sided normal-mixture sequential probability ratio test (mSPRT; Robbins 1970,
    Johari et al., "Always Valid Inference: Continuous Monitoring of A/B Tests", Oper. Res. 2022) on
    the weighted difference process, made nonparametric by the sub-Gaussian argument of Howard et
    al. 2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences" (Ann. Stat.):

    * each score gets a weight in [0, 1] fixed *before* the score is seen (from the sample counts and
      weight sums so far only): canary ``a = max(0, min(1, (n_s+1)/(n_c+1), B + max_lead - A))``,
      stable ``b = max(0, min(1, (n_c+1)/(n_s+1), A - B))``, where ``A``, ``B`` are the canary and
      stable weight sums so far. So ``0 <= A - B <= max_lead`` always: with equal rates this is
      in-order pairing, with unequal rates the faster side's scores share the weight of the slower
      side's, and nothing is buffered (O(1) memory). A canary weight not yet matched by stable
      weight pulls ``X`` down by ``mu_c`` per unit, so the lead is capped (``max_lead``, default 8;
      without the cap, random arrival order cut the detection rate of a 10 % drop within 2880
      samples per side from ~72 % to ~52 % in simulation); scores beyond the cap get weight 0;
    * ``X = k * sum(b * stable) - sum(a * canary)`` (large when the canary is worse), and
      ``V = (sum(a^2) + k^2 * sum(b^2)) / 4``;
    * under H0 the drift of ``X`` is ``k*B*mu_s - A*mu_c <= k*mu_s*(B - A) <= 0``, and a weighted score
      in [0, 1] minus its mean is ``(w/2)``-sub-Gaussian (Hoeffding's lemma), so for every
      ``lambda >= 0`` ``exp(lambda X - lambda^2 V / 2)`` is a nonnegative supermartingale; so is its
      mixture over a half-normal prior on ``lambda`` with precision ``rho``, which is in closed form
      ``M = 2 sqrt(rho / (V + rho)) exp(X^2 / (2 (V + rho))) Phi(X / sqrt(V + rho))``;
    * Ville's inequality: ``P_H0(M_t >= 1/alpha for some t) <= alpha``. The test rejects when
      ``log M >= log(1/alpha)``. This holds over every look, however many, and optional stopping is
      free; the ``min_samples`` gate only removes looks, so it keeps the guarantee.

    ``rho`` is tuned (:func:`mixture_precision`) for the boundary to be tightest near
    ``tuned_pairs`` pairs (default 1000; checked numerically: within 0.1 % of the best ``rho`` there);
    any ``rho > 0`` is valid, it only moves where the power is.

    **Assumptions** — scores are in [0, 1] (checked); within each side they are independent with a
    constant mean given the past (i.i.d. per side is enough — no normality, no variance estimate:
    the variance bound 1/4 of a [0, 1] variable is used, which is conservative for low-variance
    scores); which side the next score comes from may depend on the past but not on that score. A
    drifting stable mean (e.g. a traffic mix change that hits one side only) is not covered.

    Not thread-safe; O(1) memory. ``add`` is a look: call :meth:`state` after any add.
    """

    def __init__(
        self,
        max_drop: float,
        alpha: float,
        min_samples: int,
        *,
        tuned_pairs: float = 1000.0,
        max_lead: float = MAX_LEAD,
    ) -> None:
        if isinstance(max_drop, bool) or not isinstance(max_drop, int | float) or not 0 < max_drop < 1:
            raise ValueError(f"max_drop must be in (0, 1), got {max_drop!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
            raise ValueError(f"min_samples must be an int >= 1, got {min_samples!r}")
        if isinstance(tuned_pairs, bool) or not isinstance(tuned_pairs, int | float) or not tuned_pairs > 0:
            raise ValueError(f"tuned_pairs must be > 0, got {tuned_pairs!r}")
        if isinstance(max_lead, bool) or not isinstance(max_lead, int | float) or not max_lead >= 1:
            raise ValueError(f"max_lead must be >= 1, got {max_lead!r}")
        self.max_drop = float(max_drop)
        self.alpha = float(alpha)
        self.min_samples = min_samples
        self.tuned_pairs = float(tuned_pairs)
        self.max_lead = float(max_lead)
        self._k = 1.0 - self.max_drop
        self._rho = mixture_precision(self.tuned_pairs, self.max_drop, self.alpha)
        self.threshold = math.log(1.0 / self.alpha)
        self.reset()

    @classmethod
    def from_rule(cls, rule: EvalScoreTrigger, *, tuned_pairs: float = 1000.0) -> SequentialEvalTest:
        """From the eval_score rule's config (its ``max_drop``, ``alpha`` and ``min_samples``)."""
        return cls(rule.max_drop, rule.alpha, rule.min_samples, tuned_pairs=tuned_pairs)

    def reset(self) -> None:
        """Forget every score (a re-armed rollout)."""
        self._n_c = 0
        self._n_s = 0
        self._sum_c = 0.0  # plain sums, for the reported means
        self._sum_s = 0.0
        self._a = 0.0  # weight sums
        self._b = 0.0
        self._x = 0.0  # k * sum(b * stable) - sum(a * canary)
        self._v = 0.0  # (sum(a^2) + k^2 sum(b^2)) / 4

    def add(self, side: EvalSide, score: float) -> None:
        """Record one score in [0, 1] of ``side`` (``"stable"`` or ``"canary"``)."""
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
            raise ValueError(f"score must be a number in [0, 1], got {score!r}")
        if side == "canary":
            weight = min(1.0, (self._n_s + 1) / (self._n_c + 1), self._b + self.max_lead - self._a)
            weight = max(weight, 0.0)
            self._n_c += 1
            self._sum_c += score
            if weight > 0.0:
                self._a += weight
                self._x -= weight * score
                self._v += 0.25 * weight * weight
        elif side == "stable":
            weight = min(1.0, (self._n_c + 1) / (self._n_s + 1), self._a - self._b)
            self._n_s += 1
            self._sum_s += score
            if weight > 0.0:
                self._b += weight
                kw = self._k * weight
                self._x += kw * score
                self._v += 0.25 * kw * kw
        else:
            raise ValueError(f"side must be 'stable' or 'canary', got {side!r}")

    def add_many(self, side: EvalSide, scores: Any) -> None:
        """``add`` each score of the iterable ``scores`` in turn (each one is a look)."""
        for score in scores:
            self.add(side, score)

    def log_e_value(self) -> float:
        """``log M``, the log mixture likelihood ratio of all scores so far (0 with none)."""
        if self._v == 0.0:
            return 0.0
        total = self._v + self._rho
        x = self._x
        return (
            math.log(2.0)
            + 0.5 * math.log(self._rho / total)
            + x * x / (2.0 * total)
            + _log_phi(x / math.sqrt(total))
        )

    @property
    def rejected(self) -> bool:
        """Whether :meth:`state` would say ``reject`` (cheaper: no log when the canary is not behind)."""
        if min(self._n_c, self._n_s) < self.min_samples or self._x <= 0.0:
            return False  # X <= 0 means M <= 1 < 1/alpha
        return self.log_e_value() >= self.threshold

    def state(self) -> EvalVerdict:
        """The verdict now (see :class:`EvalVerdict`)."""
        return EvalVerdict(
            reject=self.rejected,
            canary_mean=self._sum_c / self._n_c if self._n_c else None,
            stable_mean=self._sum_s / self._n_s if self._n_s else None,
            canary_samples=self._n_c,
            stable_samples=self._n_s,
            statistic=self.log_e_value(),
            threshold=self.threshold,
            effective_pairs=self._b,
        )


__all__ = [
    "EvalSide",
    "EvalVerdict",
    "Scorer",
    "SequentialEvalTest",
    "check_score",
    "exact_match",
    "json_schema_valid",
    "load_scorer",
    "mixture_precision",
    "reference_similarity",
    "regex_match",
    "response_text",
    "token_f1",
]

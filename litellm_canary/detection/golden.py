"""Golden prompt sets: their JSONL format, and replaying one against one side of a rollout.

A golden set is a JSONL file, one case per line::

    {"prompt": "What is 2+2?", "reference": "4", "expect": {"regex": "\\b4\\b"}, "tags": ["math"]}

* ``prompt`` — a string (sent as one user message) or a non-empty list of chat messages
  (``{"role": ..., "content": ...}``);
* ``expect`` — optional, exactly one of ``{"regex": PATTERN}``, ``{"json_schema": SCHEMA}`` or
  ``{"exact": TEXT}``: the case scores 1.0 when the answer meets it, else 0.0;
* ``reference`` — optional reference answer; without ``expect`` the case scores the token-F1
  similarity of the answer to it (:func:`litellm_canary.detection.evals.scorers.reference_similarity`);
* ``tags`` — optional list of strings, reported with the case's score.

A case needs ``expect`` or ``reference``. Blank lines and lines starting with ``#`` are skipped.
Every error names the file and the line. Prompt text stays in memory: a :class:`GoldenResult` carries
per-case scores by line number and tags, never the prompt or the answer.

:func:`replay_golden` sends every case of a rollout's golden set to one side (case ``i`` to the
side's deployment ``i mod n``) through :func:`litellm_canary.core.probe.call_deployment` — a direct call
that is not user traffic — and scores the answers. A case whose call fails scores 0.0 and counts as
a failure: an answer that never came is not a correct one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from litellm_canary.core.decision import Side
from litellm_canary.detection.evals.scorers import (
    Scorer,
    check_score,
    exact_match,
    json_schema_valid,
    reference_similarity,
    regex_match,
)

__all__ = [
    "GoldenCase",
    "GoldenCaseScore",
    "GoldenReplayer",
    "GoldenResult",
    "GoldenSetError",
    "HasGoldenReplayer",
    "load_golden_set",
    "replay_golden",
]

_KEYS = frozenset({"prompt", "reference", "expect", "tags"})
_EXPECTATIONS = ("regex", "json_schema", "exact")


class GoldenSetError(ValueError):
    """A golden set that cannot be used; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class GoldenCase:
    """One golden prompt, ready to send and score."""

    line: int
    messages: tuple[Mapping[str, Any], ...] = field(repr=False)
    scorer: Scorer = field(repr=False, compare=False)
    tags: tuple[str, ...] = ()
    reference: str | None = field(default=None, repr=False)

    def request(self) -> dict[str, Any]:
        """The ``request`` a scorer receives: the messages, the reference and the tags."""
        return {
            "messages": [dict(m) for m in self.messages],
            "reference": self.reference,
            "tags": list(self.tags),
        }


def _messages(prompt: object) -> tuple[Mapping[str, Any], ...]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("'prompt' is an empty string")
        return ({"role": "user", "content": prompt},)
    if isinstance(prompt, list) and prompt:
        for index, message in enumerate(prompt):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise ValueError(f"'prompt'[{index}] must be a message object with a string 'role'")
            if "content" not in message:
                raise ValueError(f"'prompt'[{index}] has no 'content'")
        return tuple(dict(m) for m in prompt)
    raise ValueError(f"'prompt' must be a non-empty string or list of messages, got {type(prompt).__name__}")


def _scorer(expect: object, reference: object) -> Scorer:
    if reference is not None and not isinstance(reference, str):
        raise ValueError(f"'reference' must be a string, got {type(reference).__name__}")
    if expect is None:
        if reference is None:
            raise ValueError("a case needs 'expect' or 'reference'")
        return reference_similarity(reference)
    if not isinstance(expect, dict) or len(expect) != 1:
        raise ValueError(f"'expect' must be an object with exactly one of {list(_EXPECTATIONS)}")
    ((kind, value),) = expect.items()
    if kind == "regex":
        if not isinstance(value, str):
            raise ValueError(f"'expect.regex' must be a string, got {type(value).__name__}")
        return regex_match(value)
    if kind == "json_schema":
        if not isinstance(value, dict):
            raise ValueError(f"'expect.json_schema' must be an object, got {type(value).__name__}")
        return json_schema_valid(value)
    if kind == "exact":
        if not isinstance(value, str):
            raise ValueError(f"'expect.exact' must be a string, got {type(value).__name__}")
        return exact_match(value)
    raise ValueError(f"unknown expectation 'expect.{kind}' (known: {list(_EXPECTATIONS)})")


def parse_case(data: object, line: int) -> GoldenCase:
    """One decoded JSONL line as a :class:`GoldenCase`; :class:`ValueError` says what is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"a case must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} (known: {sorted(_KEYS)})")
    if "prompt" not in data:
        raise ValueError("a case needs a 'prompt'")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("'tags' must be a list of strings")
    return GoldenCase(
        line=line,
        messages=_messages(data["prompt"]),
        scorer=_scorer(data.get("expect"), data.get("reference")),
        tags=tuple(tags),
        reference=data.get("reference"),
    )


def parse_golden_lines(lines: Sequence[str], source: str = "golden set") -> tuple[GoldenCase, ...]:
    """The cases of JSONL ``lines``; :class:`GoldenSetError` names ``source`` and the line number."""
    cases = []
    for number, text in enumerate(lines, start=1):
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise GoldenSetError(f"{source}:{number}: not valid JSON: {exc}") from None
        try:
            cases.append(parse_case(data, number))
        except ValueError as exc:
            raise GoldenSetError(f"{source}:{number}: {exc}") from None
    if not cases:
        raise GoldenSetError(f"{source}: no cases (every line is blank or a comment)")
    return tuple(cases)


def load_golden_set(path: str | Path) -> tuple[GoldenCase, ...]:
    """Read and validate the golden set at ``path`` (see the module docstring for the format)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise GoldenSetError(f"cannot read golden set {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise GoldenSetError(f"golden set {file} is not UTF-8: {exc.reason}") from None
    return parse_golden_lines(text.splitlines(), str(file))


@dataclass(frozen=True, slots=True)
class GoldenCaseScore:
    """One case's result: its line, the deployment that answered, the score; never the text."""

    line: int
    deployment_id: str
    score: float
    error: str | None = None  # the failure's class (exception type), when the call or scorer failed
    tags: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "deployment_id": self.deployment_id,
            "score": self.score,
            "error": self.error,
            "tags": list(self.tags),
        }


@dataclass(frozen=True, slots=True)
class GoldenResult:
    """A golden set replayed against one side: ``n`` cases, their mean score, how many failed."""

    side: Side
    n: int
    mean_score: float | None
    failures: int
    cases: tuple[GoldenCaseScore, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "side": self.side.value,
            "n": self.n,
            "mean_score": self.mean_score,
            "failures": self.failures,
            "cases": [case.as_dict() for case in self.cases],
        }


async def _one(
    router: Any,
    case: GoldenCase,
    deployment_id: str,
    *,
    max_tokens: int | None,
    timeout_s: float,
) -> GoldenCaseScore:
    from litellm_canary.core.probe import call_deployment

    try:
        result = await call_deployment(
            router,
            deployment_id,
            [dict(m) for m in case.messages],
            max_tokens=max_tokens,
            timeout_s=timeout_s,
            purpose="golden",
        )
    except Exception as exc:  # a probe that raises is a failed case, not a failed replay
        return GoldenCaseScore(case.line, deployment_id, 0.0, type(exc).__name__, case.tags)
    if not result.ok:
        # The type only: an error message may quote the request.
        error = (result.error or "error").split(":", 1)[0]
        return GoldenCaseScore(case.line, deployment_id, 0.0, error, case.tags)
    try:
        score = check_score(
            await asyncio.wait_for(case.scorer(case.request(), result.response), timeout_s), "golden score"
        )
    except Exception as exc:
        return GoldenCaseScore(case.line, deployment_id, 0.0, f"scorer: {type(exc).__name__}", case.tags)
    return GoldenCaseScore(case.line, deployment_id, score, None, case.tags)


async def replay_cases(
    router: Any,
    cases: Sequence[GoldenCase],
    side: Side,
    deployment_ids: Sequence[str],
    *,
    max_tokens: int | None = None,
    timeout_s: float = 30.0,
    concurrency: int = 8,
) -> GoldenResult:
    """Send each case to ``deployment_ids[i % n]`` (``concurrency`` at a time), score the answers.

    The result lists the cases in file order.
    """
    if not deployment_ids:
        raise ValueError(f"no {side.value} deployments to replay the golden set against")
    limit = asyncio.Semaphore(concurrency)

    async def bounded(i: int, case: GoldenCase) -> GoldenCaseScore:
        async with limit:
            deployment_id = deployment_ids[i % len(deployment_ids)]
            return await _one(router, case, deployment_id, max_tokens=max_tokens, timeout_s=timeout_s)

    scores = await asyncio.gather(*(bounded(i, case) for i, case in enumerate(cases)))
    n = len(scores)
    return GoldenResult(
        side=side,
        n=n,
        mean_score=sum(s.score for s in scores) / n if n else None,
        failures=sum(1 for s in scores if s.error is not None),
        cases=tuple(scores),
    )


class GoldenReplayer(Protocol):
    """Replays a rollout's configured golden set against one side (the eval pipeline does)."""

    async def replay_golden(self, model_group: str, side: Side) -> GoldenResult: ...


class HasGoldenReplayer(Protocol):
    """Anything whose ``evals`` replays golden sets (the canary handle, structurally)."""

    @property
    def evals(self) -> GoldenReplayer: ...


async def replay_golden(canary: HasGoldenReplayer, model_group: str, side: Side) -> GoldenResult:
    """Replay ``model_group``'s golden set against ``side`` now and score it.

    Nothing is recorded: the sequential test and the baseline are fed by the scheduled rounds only
    (:meth:`litellm_canary.detection.evals.sampling.EvalPipeline.run_golden_round`). The baseline to
    compare a post-rollback stable result with is
    :meth:`~litellm_canary.detection.evals.sampling.EvalPipeline.golden_baseline`.
    Raises :class:`ValueError` when the group has no golden set.
    """
    return await canary.evals.replay_golden(model_group, Side(side))

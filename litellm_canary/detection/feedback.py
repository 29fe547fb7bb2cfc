"""User feedback on served responses, attributed to the side and deployment that served them.

The success callback of every real canary-managed attempt hands :meth:`FeedbackBook.served` the
response id and who served it; a bounded map
(:class:`~litellm_canary.detection.served_responses.ServedResponses`: ``feedback.max_responses``
entries, each kept ``feedback.ttl_s``, no garbage-collected object per entry) remembers them, so
feedback arriving later —
``Canary.record_feedback(response_id, score)`` or ``POST /canary/feedback`` — lands on the right side.
Probes never enter the map (they are not user traffic). One score counts per response: a second
score for the same response replaces the first.

Per side (and deployment) the book keeps count, sum and mean since the rollout was (re-)armed; they
appear in ``status()`` and in metrics, and :meth:`FeedbackBook.scores` summarises them as
:class:`~litellm_canary.detection.rules.EvalScores` (``source="feedback"``) for the ``eval_score`` rule.
Listeners (``add_listener``) receive each response's *first* accepted score, e.g. to feed a
sequential test: a replacement changes the tallies but is not new evidence (one response, one
observation), so a listener never counts a response twice.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from litellm_canary.core.decision import Side
from litellm_canary.core.outcomes import Outcome
from litellm_canary.detection.rules import EvalScores
from litellm_canary.detection.served_responses import Served, ServedResponses

logger = logging.getLogger("litellm_canary.feedback")

__all__ = ["FeedbackBook", "Served", "UnknownResponse", "validate_score"]


class UnknownResponse(KeyError):
    """No recent response has this id (never served through a managed group, or expired)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown response id"


def validate_score(score: object) -> float:
    """``score`` as a float in [0, 1]; ``ValueError`` naming the value otherwise."""
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise ValueError(f"score must be a number within 0..1, got {score!r}")
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"score must be within 0..1, got {score!r}")
    return float(score)


def response_id_of(response: Any) -> str | None:
    """The id of a LiteLLM response object (chat, Responses API) or dict, if it has one."""
    value = response.get("id") if isinstance(response, Mapping) else getattr(response, "id", None)
    return value if isinstance(value, str) and value else None


class FeedbackBook:
    """The recent-responses map and the feedback tallies of a canary's rollouts."""

    def __init__(
        self,
        model_groups: Iterable[str],
        *,
        max_responses: int = 100_000,
        ttl_s: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._served = ServedResponses(max_responses, ttl_s, clock)
        self._lock = threading.Lock()
        self._groups = tuple(model_groups)
        # (group, side) -> [count, sum]; (group, side, deployment) -> [count, sum]
        self._sides: dict[tuple[str, str], list[float]] = {}
        self._deployments: dict[tuple[str, str, str], list[float]] = {}
        self._listeners: list[Callable[[str, Side, str, float], None]] = []
        self.unknown = 0  # feedback for unknown or expired response ids

    def add_listener(self, listener: Callable[[str, Side, str, float], None]) -> None:
        """Call ``listener(model_group, side, deployment_id, score)`` for each response's first score.

        A replacement score is not passed on: a sequential test fed by the listener has already
        counted the response once (and bet on that score), and counting it again would be evidence
        counted twice.
        """
        self._listeners.append(listener)

    # -- inputs ----------------------------------------------------------------------------------

    def served(self, outcome: Outcome, kwargs: Mapping[str, Any], response: Any) -> None:
        """A success listener of the canary's callbacks: remember who served this response."""
        response_id = response_id_of(response)
        if response_id is None:
            return
        with self._lock:
            self._served.remember(response_id, outcome.model_group, outcome.side, outcome.deployment_id)

    def record(self, response_id: str, score: object) -> dict[str, Any]:
        """Record ``score`` for ``response_id``; raises :class:`UnknownResponse` or ``ValueError``."""
        if not isinstance(response_id, str) or not response_id:
            raise ValueError(f"response_id must be a non-empty string, got {response_id!r}")
        value = validate_score(score)
        with self._lock:
            served = self._served.get(response_id)
            if served is None:
                self.unknown += 1
                raise UnknownResponse(
                    f"no recent response with id {response_id!r} (unknown, not served through a "
                    "canary-managed group, or older than the feedback TTL)"
                )
            previous = served.score
            self._served.set_score(response_id, value)
            group, side = served.model_group, served.side.value
            for tally in (
                self._sides.setdefault((group, side), [0.0, 0.0]),
                self._deployments.setdefault((group, side, served.deployment_id), [0.0, 0.0]),
            ):
                if previous is None:
                    tally[0] += 1
                    tally[1] += value
                else:
                    tally[1] += value - previous
        for listener in self._listeners if previous is None else ():
            try:
                listener(served.model_group, served.side, served.deployment_id, value)
            except Exception:
                logger.exception("feedback listener %r failed", listener)
        return {
            "response_id": response_id,
            "model_group": served.model_group,
            "side": served.side.value,
            "deployment": served.deployment_id,
            "score": value,
            "replaced": previous is not None,
        }

    def rearmed(self, model_group: str) -> None:
        """Start the group's tallies afresh (a re-armed canary is judged on new feedback)."""
        with self._lock:
            self._sides = {k: v for k, v in self._sides.items() if k[0] != model_group}
            self._deployments = {k: v for k, v in self._deployments.items() if k[0] != model_group}

    # -- reading ---------------------------------------------------------------------------------

    def status(self, model_group: str) -> dict[str, Any]:
        with self._lock:
            sides = {side.value: _summary(self._sides.get((model_group, side.value))) for side in Side}
            deployments = {
                deployment: {"side": side, **_summary(tally)}
                for (group, side, deployment), tally in sorted(self._deployments.items())
                if group == model_group
            }
        return {"sides": sides, "deployments": deployments}

    def scores(self, model_group: str) -> EvalScores | None:
        """Feedback per side as an ``eval_score`` series (``source="feedback"``); None without any."""
        with self._lock:
            canary = self._sides.get((model_group, Side.CANARY.value))
            stable = self._sides.get((model_group, Side.STABLE.value))
        if canary is None and stable is None:
            return None
        c, s = _summary(canary), _summary(stable)
        return EvalScores(
            canary_mean=c["mean"] or 0.0,
            canary_samples=c["count"],
            stable_mean=s["mean"] or 0.0,
            stable_samples=s["count"],
            source="feedback",
        )

    def remembered(self) -> int:
        with self._lock:
            return len(self._served)


def _summary(tally: list[float] | None) -> dict[str, Any]:
    if not tally or not tally[0]:
        return {"count": 0, "mean": None}
    return {"count": int(tally[0]), "mean": round(tally[1] / tally[0], 6)}

"""Wiring the follow-up: :func:`install_followup` builds the incident recorder (when ``incidents`` is
configured) and the :class:`PostRollback` from narrow callables the composition root hands it, and
:func:`golden_checks` turns a golden replay into one check per group."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from litellm_canary.core.config import ConfigError, IncidentsConfig
from litellm_canary.response.followup.post_rollback import FollowupSignals, GoldenCheck, PostRollback
from litellm_canary.response.incidents import IncidentRecorder, IncidentStore
from litellm_canary.response.incidents.recorder import Drained
from litellm_canary.response.verification import GoldenScore

if TYPE_CHECKING:
    from litellm_canary.core.controller import RolloutRuntime

__all__ = ["GoldenSummary", "golden_checks", "install_followup"]


class GoldenSummary(Protocol):
    """What a golden replay returns, as far as the verification reads it."""

    @property
    def n(self) -> int: ...
    @property
    def mean_score(self) -> float | None: ...
    @property
    def failures(self) -> int: ...


def golden_checks(
    groups: Iterable[str], replay_stable: Callable[[str], Awaitable[GoldenSummary]]
) -> dict[str, GoldenCheck]:
    """A golden check per group of ``groups``: ``replay_stable(group)`` replays its golden set
    against stable (:func:`litellm_canary.detection.golden.replay_golden`)."""
    checks: dict[str, GoldenCheck] = {}
    for group in groups:

        async def check(group: str = group) -> GoldenScore:
            result = await replay_stable(group)
            return GoldenScore(result.n, result.mean_score, result.failures)

        checks[group] = check
    return checks


def install_followup(
    *,
    runtimes: Mapping[str, RolloutRuntime],
    incidents: IncidentsConfig | None,
    signals: FollowupSignals,
    drained: Drained,
    max_attempt_s: float,
    feedback_sides: Callable[[str], dict[str, Any]],
    golden_baseline: Callable[[str], float | None],
    golden_checks: Mapping[str, GoldenCheck],
    clock: Callable[[], float],
    wall_clock: Callable[[], float] = time.time,
    auto: bool = True,
) -> PostRollback:
    """The follow-up of every rollback, with an incident recorder when ``incidents`` is configured
    (its directory is created now: an unusable one is a :class:`ConfigError`).

    The follow-up hands each rollback to the recorder itself (the recorder does not listen on its
    own), so there is no order between rollback listeners to get right."""
    recorder = None
    if incidents is not None:
        try:
            incidents.dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"incidents.dir: cannot create {incidents.dir}: {error.strerror}") from None
        if not os.access(incidents.dir, os.W_OK | os.X_OK):
            raise ConfigError(f"incidents.dir: {incidents.dir} is not writable")
        # The follow-up counts the decisions after the flip itself (status shows them without incidents).
        recorder = IncidentRecorder(IncidentStore(incidents.dir), drained=drained, wall_clock=wall_clock)
    return PostRollback(
        runtimes=runtimes,
        signals=signals,
        drained=drained,
        drain_timeout_s=lambda group: max_attempt_s + runtimes[group].config.conversation_drain_s,
        feedback_sides=feedback_sides,
        golden_baseline=golden_baseline,
        golden_checks=golden_checks,
        recorder=recorder,
        drill_overdue_days=None if incidents is None else incidents.drill_overdue_days,
        clock=clock,
        wall_clock=wall_clock,
        auto=auto,
    )

"""What happens after a rollback, in the background: drain, verification, the incident, escalation.

This module owns the *follow-up* of every rollback (automatic, alert, manual or drill):

* at the flip (on the controller's rollback event) it takes stable's pre-rollback
  :class:`~litellm_canary.response.verification.Baseline` and starts a
  :class:`~litellm_canary.response.verification.Verification`, and counts decisions still sent to the canary;
* one background worker (:class:`FollowupWorker`: a single daemon thread with one event loop, shared
  by every rollback of the canary, so it works for sync SDK users, asyncio apps and the gateway alike
  and a flip storm costs no threads) replays the golden set against stable right after the flip,
  evaluates the checks until a verdict, awaits the canary's drain, and completes the incident (drain,
  traffic facts, verdict);
* a re-arm cancels the group's pending follow-up, and a new rollback of the group supersedes it: its
  verdict is ``cancelled`` (``status()`` and the incident say why and when); incidents the directory
  could not take are kept and retried on the same worker with backoff (:mod:`.incident_retry`);
* ``not_recovered`` escalates: a CRITICAL log record (:mod:`.verdict`), the ``verdicts`` signal (its
  listeners, e.g. the ``litellm_canary_verification_total`` metric) and an incident that says the
  rollback did not restore service, so the cause is probably not the canary;
* :meth:`PostRollback.status` is what ``Canary.status()`` shows under a group's last rollback.

It receives narrow callables (the ``connect`` of each signal it listens to, ``drained``, the feedback
per side, the golden checks), never the canary. At the flip it hands the rollback to the incident
recorder itself (:meth:`IncidentRecorder.record`), so no listener order matters.

The judgement itself is :mod:`litellm_canary.response.verification`; the files are
:mod:`litellm_canary.response.incidents`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from litellm_canary.core.decision import Decision, Reason, Side
from litellm_canary.core.events import Signal
from litellm_canary.core.outcomes import Outcome
from litellm_canary.response.drill_status import drill_status
from litellm_canary.response.followup.incident_retry import IncidentRetry
from litellm_canary.response.followup.series import SeriesBuffer
from litellm_canary.response.followup.state import FOLLOW_UP_KEYS, FollowupState, followup_status
from litellm_canary.response.followup.verdict import incident_verification, log_verdict
from litellm_canary.response.followup.worker import FollowupWorker, log_failure
from litellm_canary.response.incidents import IncidentRecorder
from litellm_canary.response.incidents.recorder import DecisionListener, Drained, RollbackListener
from litellm_canary.response.verification import BaselineWatch, GoldenScore, Verification, VerificationResult

if TYPE_CHECKING:
    from litellm_canary.core.controller import RolloutRuntime
    from litellm_canary.core.rollback_record import RollbackRecord

logger = logging.getLogger("litellm_canary.followup")

__all__ = ["FOLLOW_UP_KEYS", "FollowupSignals", "GoldenCheck", "PostRollback"]

#: An async callable replaying the golden set against stable now; returns its summary.

#: An async callable replaying the golden set against stable now; returns its summary.
GoldenCheck = Callable[[], Awaitable[GoldenScore]]


@dataclass(frozen=True)
class FollowupSignals:
    """The ``connect`` of each signal the follow-up listens to (each takes a listener)."""

    on_outcome: Callable[[Callable[[Outcome], None]], object]
    on_decision: Callable[[DecisionListener], object]
    on_rollback: Callable[[RollbackListener], object]
    on_rearm: Callable[[Callable[[str, str | None], None]], object]


class PostRollback:
    """The follow-up of every rollback handed to it by ``signals.on_rollback`` (see the module docstring).

    With ``auto`` (the default; ``attach(background=False)`` turns it off) each rollback runs
    :meth:`follow` on the shared :class:`FollowupWorker`; without it, await :meth:`follow` yourself.
    """

    def __init__(
        self,
        *,
        runtimes: Mapping[str, RolloutRuntime],
        signals: FollowupSignals,
        drained: Drained,
        drain_timeout_s: Callable[[str], float],
        feedback_sides: Callable[[str], dict[str, Any]],
        golden_baseline: Callable[[str], float | None] = lambda group: None,
        golden_checks: Mapping[str, GoldenCheck] | None = None,
        recorder: IncidentRecorder | None,
        drill_overdue_days: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        auto: bool = True,
    ) -> None:
        self._runtimes = runtimes
        self._drained = drained
        self._drain_timeout_s = drain_timeout_s
        self._feedback_sides = feedback_sides
        self._golden_baseline = golden_baseline
        self.recorder = recorder
        self._drill_overdue_days = drill_overdue_days
        self._clock = clock
        self._wall_clock = wall_clock
        self._auto = auto
        self._watches = {
            group: BaselineWatch(runtime.config, clock=clock) for group, runtime in runtimes.items()
        }
        self._series = {group: SeriesBuffer(clock) for group in runtimes}
        self._golden_checks = dict(golden_checks or {})
        self._state: dict[str, FollowupState] = {}
        #: Every verification verdict: ``verdicts.emit(model_group, result)`` (each listener guarded).
        self.verdicts: Signal[[str, VerificationResult]] = Signal("verification verdict")
        self._closed = threading.Event()
        self.worker = FollowupWorker()
        if recorder is not None:
            IncidentRetry(recorder, self.worker, self._closed)
        signals.on_outcome(self._on_outcome)
        signals.on_decision(self._on_decision)
        signals.on_rollback(self._on_rollback)
        signals.on_rearm(self._on_rearm)

    def on_verdict(self, listener: Callable[[str, VerificationResult], None]) -> None:
        """Call ``listener(model_group, result)`` with every verification verdict."""
        self.verdicts.connect(listener)

    # -- listeners (outcome path, request path, rollback path) -----------------------------------

    def _on_outcome(self, outcome: Outcome) -> None:
        watch = self._watches.get(outcome.model_group)
        if watch is None:
            return
        ttft = outcome.ttft_s if outcome.ok else None
        if self.recorder is not None:
            self._series[outcome.model_group].record(outcome.side, outcome.ok, ttft)
        if outcome.side is not Side.STABLE:
            return
        watch.record(outcome.ok, ttft)
        state = self._state.get(outcome.model_group)
        if state is not None and state.verification.result is None:
            state.verification.record(outcome.ok, ttft)

    def _on_decision(self, model_group: str, decision: Decision, deployment_id: str) -> None:
        if decision.side is Side.CANARY:
            state = self._state.get(model_group)
            if state is not None and self._runtimes[model_group].rolled_back:
                state.after_flip[1 if decision.reason is Reason.DRAINING else 0] += 1

    def _on_rollback(self, record: RollbackRecord) -> None:
        if record.repeated:
            return
        group = record.model_group
        verification = Verification(
            self._runtimes[group].config,
            self._watches[group].baseline(self._golden_baseline(group)),
            clock=self._clock,
            started=record.decided_mono,
            golden_configured=group in self._golden_checks,
        )
        # The follow-up hands the rollback to the recorder itself: the incident exists before the
        # follow-up starts, whatever order the rollback listeners run in.
        incident_id = self.recorder.record(record) if self.recorder is not None else None
        state = FollowupState(record, verification, incident_id)
        previous = self._state.get(group)
        self._state[group] = state
        if previous is not None:
            self._cancel(group, previous, f"superseded by the rollback at {record.decided_at}")
        if self._auto and not self._closed.is_set():
            future = self.worker.submit(self._run(group, state))
            if future is not None:
                future.add_done_callback(log_failure(group))

    def _on_rearm(self, model_group: str, origin: str | None) -> None:
        state = self._state.get(model_group)
        if state is not None:
            wall = datetime.fromtimestamp(self._wall_clock(), UTC).isoformat(timespec="milliseconds")
            self._cancel(model_group, state, f"re-armed at {wall}" + (f" (from {origin})" if origin else ""))

    def _cancel(self, group: str, state: FollowupState, why: str) -> None:
        """Stop ``state``'s follow-up (a re-arm or a newer rollback): no verdict, the incident says why."""
        with state.lock:
            if state.done.done() or state.cancelled is not None:
                return
            state.cancelled = why
            task = state.task
        logger.info("post-rollback follow-up of %r cancelled: %s", group, why)
        if task is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed: nothing to cancel
                task.get_loop().call_soon_threadsafe(task.cancel)
        elif not self._auto:  # nobody may ever run follow(): settle it now
            self._finish_cancelled(group, state)

    async def _run(self, group: str, state: FollowupState) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # stop(): the status shows what is known
            await self._follow(group, state)

    # -- the follow-up ---------------------------------------------------------------------------

    def result(self, model_group: str) -> concurrent.futures.Future[dict[str, Any]]:
        """A future of the last rollback's follow-up summary (as :meth:`status`), set when complete."""
        state = self._state.get(model_group)
        if state is None:
            raise KeyError(f"no rollback of {model_group!r} to follow")
        return state.done

    async def follow(self, model_group: str) -> dict[str, Any]:
        """Verify, await the drain and complete the incident of ``model_group``'s last rollback.

        Returns early, with the verdict ``cancelled``, when the group is re-armed or rolled back again
        meanwhile."""
        return await self._follow(model_group, self._state[model_group])

    async def _follow(self, model_group: str, state: FollowupState) -> dict[str, Any]:
        task = asyncio.current_task()
        with state.lock:
            cancelled = state.cancelled is not None
            if not cancelled:
                state.task = task
        try:
            if cancelled:
                return self._finish_cancelled(model_group, state)
            result, _ = await asyncio.gather(
                self._verify(model_group, state), self._drain(model_group, state)
            )
            self._picture(model_group, state)
            if result is not None:
                self._report(model_group, state, result)
            summary = {**self._status(model_group, state), "complete": True}
        except asyncio.CancelledError as error:
            if state.cancelled is not None:  # our own cancellation (re-arm, supersede): not an error
                if task is not None:
                    task.uncancel()
                return self._finish_cancelled(model_group, state)
            if not state.done.done():
                state.done.set_exception(error)
            raise
        except BaseException as error:
            if not state.done.done():
                state.done.set_exception(error)
            raise
        finally:
            state.task = None
        if not state.done.done():
            state.done.set_result(summary)
        return summary

    def _finish_cancelled(self, group: str, state: FollowupState) -> dict[str, Any]:
        """Record the cancellation in the incident (once) and settle the follow-up's future."""
        with state.lock:
            record_it = not state.cancel_recorded
            state.cancel_recorded = True
        if record_it and self.recorder is not None and state.incident_id is not None:
            try:
                self.recorder.verify(
                    state.incident_id,
                    "cancelled",
                    {"cancelled": state.cancelled, "restored_service": None},
                    detail=f"cancelled: {state.cancelled}",
                )
            except Exception:
                logger.exception("could not record the cancellation in incident %s", state.incident_id)
        summary = {**self._status(group, state), "complete": True}
        if not state.done.done():
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                state.done.set_result(summary)
        return summary

    async def _verify(self, group: str, state: FollowupState) -> VerificationResult | None:
        verification = state.verification
        check = self._golden_checks.get(group)
        golden = None if check is None else asyncio.create_task(self._golden(check, verification))
        step = min(0.25, max(verification.within_s / 50, 0.005))
        try:
            while not self._closed.is_set():
                result = verification.evaluate()
                if result is not None:
                    return result
                await asyncio.sleep(step)  # a periodic evaluation, like the trigger loop
            return None
        finally:
            if golden is not None and not golden.done():
                golden.cancel()

    @staticmethod
    async def _golden(check: GoldenCheck, verification: Verification) -> None:
        try:
            verification.set_golden(await check())
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.warning("golden replay after the rollback failed: %s", type(error).__name__)
            verification.set_golden(error)

    async def _drain(self, group: str, state: FollowupState) -> None:
        timeout = self._drain_timeout_s(group)
        deadline = self._clock() + timeout
        drained = False
        while not self._closed.is_set():
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            if await self._drained(group, min(remaining, 1.0)):
                drained = True
                break
        if self._closed.is_set() and not drained:
            return
        state.drained = drained
        state.drained_after_ms = round((self._clock() - state.record.decided_mono) * 1e3, 3)
        if self.recorder is not None and state.incident_id is not None:
            try:
                await self.recorder.complete(
                    group,
                    drain_timeout=timeout,
                    drained=drained,
                    decisions_after_flip=(state.after_flip[0], state.after_flip[1]),
                )
            except Exception:
                logger.exception("could not complete incident %s", state.incident_id)

    def _picture(self, group: str, state: FollowupState) -> None:
        """Add the timeline picture (if matplotlib is installed; else the incident says so)."""
        if self.recorder is None or state.incident_id is None:
            return
        # the trigger's whole window before the decision (a 5-minute rule shows 5 minutes)
        window = (state.record.cause or {}).get("window_s")
        before_s = 120.0
        if isinstance(window, int | float) and not isinstance(window, bool):
            before_s = max(before_s, float(window) + 10.0)
        series = self._series[group].series(state.record.decided_mono, before_s=before_s)
        if series is None:
            return
        try:
            self.recorder.add_picture(state.incident_id, series)
        except Exception:
            logger.exception("could not add the timeline picture to incident %s", state.incident_id)

    def _report(self, group: str, state: FollowupState, result: VerificationResult) -> None:
        log_verdict(group, result)
        self.verdicts.emit(group, result)
        if self.recorder is not None and state.incident_id is not None:
            try:
                results = incident_verification(result, self._user_feedback(group))
                self.recorder.verify(state.incident_id, result.verdict, results)
            except Exception:
                logger.exception("could not record the verification in incident %s", state.incident_id)

    def _user_feedback(self, group: str) -> dict[str, Any]:
        """Feedback per side (count, mean) since the canary was armed: shown beside the checks, not
        one of them (feedback arrives too slowly to gate a verdict due within minutes)."""
        return self._feedback_sides(group)

    # -- status ----------------------------------------------------------------------------------

    def status(self, model_group: str) -> dict[str, Any] | None:
        """The follow-up of ``model_group``'s last rollback (``None`` before any rollback)."""
        state = self._state.get(model_group)
        if state is None:
            return None
        return self._status(model_group, state)

    def _status(self, model_group: str, state: FollowupState) -> dict[str, Any]:
        incident_writes = self.recorder.status(model_group) if self.recorder is not None else None
        return followup_status(state, self._user_feedback(model_group), incident_writes)

    def recent_series(self, model_group: str, seconds: int) -> dict[str, Any]:
        """Per-second requests, error rate and p99 TTFT of both sides over the last ``seconds``."""
        return self._series[model_group].recent(seconds)

    def drill(self, model_group: str) -> dict[str, Any] | None:
        """The last drill of ``model_group`` from the incidents directory (``None`` without one)."""
        if self.recorder is None or self._drill_overdue_days is None:
            return None
        return drill_status(
            self.recorder.store, model_group, overdue_days=self._drill_overdue_days, now=self._wall_clock()
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker: an unfinished follow-up ends ``cancelled`` (its incident says the canary
        was detached before a verdict)."""
        wall = datetime.fromtimestamp(self._wall_clock(), UTC).isoformat(timespec="milliseconds")
        for group, state in list(self._state.items()):
            self._cancel(group, state, f"the canary was detached at {wall}")
        self._closed.set()
        self.worker.stop(timeout)

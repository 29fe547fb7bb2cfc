"""What happens after a rollback, in the background: drain, verification, the incident, escalation.

This module owns the *follow-up* of every rollback (automatic, alert, manual or drill):

* at the flip (on the controller's rollback event) it takes stable's pre-rollback
  :class:`~litellm_canary.verification.Baseline` and starts a
  :class:`~litellm_canary.verification.Verification`, and counts decisions still sent to the canary;
* one background worker (:class:`FollowupWorker`: a single daemon thread with one event loop, shared
  by every rollback of the canary, so it works for sync SDK users, asyncio apps and the gateway alike
  and a flip storm costs no threads) replays the golden set against stable right after the flip,
  evaluates the checks until a verdict, awaits the canary's drain, and completes the incident (drain,
  traffic facts, verdict);
* a re-arm cancels the group's pending follow-up, and a new rollback of the group supersedes it: its
  verdict is ``cancelled`` (``status()`` and the incident say why and when); incidents the directory
  could not take are kept and retried on the same worker with backoff
  (:class:`~litellm_canary.incidents.IncidentRecorder`);
* ``not_recovered`` escalates: a CRITICAL log record, the verdict listeners (the
  ``litellm_canary_verification_total`` metric) and an incident that says the rollback did not restore
  service, so the cause is probably not the canary;
* :meth:`PostRollback.status` is what ``Canary.status()`` shows under a group's last rollback, and
  :func:`drill_status` what it shows about the last drill.

The judgement itself is :mod:`litellm_canary.verification`; the files are :mod:`litellm_canary.incidents`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from litellm_canary.core.config import ConfigError
from litellm_canary.core.decision import Decision, Reason, Side
from litellm_canary.core.outcomes import Outcome
from litellm_canary.response.incidents import Incident, IncidentRecorder, IncidentStore, TimelineSeries
from litellm_canary.response.verification import BaselineWatch, GoldenScore, Verification, VerificationResult

if TYPE_CHECKING:
    from litellm_canary.canary import Canary
    from litellm_canary.core.rollback_record import RollbackRecord

logger = logging.getLogger("litellm_canary.followup")
_T = TypeVar("_T")

__all__ = [
    "FOLLOW_UP_KEYS",
    "NOT_RESTORED_NOTE",
    "FollowupWorker",
    "GoldenCheck",
    "PostRollback",
    "drill_status",
    "install_followup",
]

#: The keys :meth:`PostRollback.status` adds to ``status()["groups"][G]["last_rollback"]``.
FOLLOW_UP_KEYS = frozenset(
    {
        "verification",
        "drained",
        "drained_after_ms",
        "canary_decisions_after_flip",
        "draining_decisions_after_flip",
        "incident_id",
        "complete",
        "incident_written",
        "incident_write_errors",
        "incident_write_error",
        "incidents_unwritten",
        "incidents_dropped",
    }
)  # (``canary_attempts`` is the rollback record's own field, kept up to date)

#: An async callable replaying the golden set against stable now; returns its summary.
GoldenCheck = Callable[[], Awaitable[GoldenScore]]

NOT_RESTORED_NOTE = (
    "The rollback did not restore service: stable is still unhealthy after the canary was taken out of "
    "traffic, so the cause is probably not the canary."
)


_NO_RECORDER: dict[str, Any] = {
    "incident_written": None,
    "incident_write_errors": 0,
    "incident_write_error": None,
    "incidents_unwritten": 0,
    "incidents_dropped": 0,
}


class _SeriesBuffer:
    """Per-second outcome counts and TTFT samples of both sides over the last ``keep_s`` seconds: the
    data of the incident's timeline picture (canary vs stable error rate and p99 TTFT)."""

    MAX_TTFTS = 500  # per side and second; a p99 over more is no more readable in a picture

    def __init__(self, clock: Callable[[], float], keep_s: int = 900) -> None:
        self._clock = clock
        self._keep_s = keep_s
        self._lock = threading.Lock()
        self._buckets: dict[int, dict[Side, tuple[list[int], list[float]]]] = {}

    def record(self, side: Side, ok: bool, ttft_s: float | None) -> None:
        second = math.floor(self._clock())
        with self._lock:
            bucket = self._buckets.get(second)
            if bucket is None:
                bucket = self._buckets[second] = {s: ([0, 0], []) for s in Side}
                for old in [k for k in self._buckets if k < second - self._keep_s]:
                    del self._buckets[old]
            counts, ttfts = bucket[side]
            counts[0] += 1
            counts[1] += 0 if ok else 1
            if ttft_s is not None and len(ttfts) < self.MAX_TTFTS:
                ttfts.append(ttft_s)

    def series(self, decided_mono: float, before_s: float = 120.0) -> TimelineSeries | None:
        """The series from ``before_s`` before the decision to now, ``t_s`` relative to the decision."""
        with self._lock:
            seconds = sorted(k for k in self._buckets if k >= decided_mono - before_s)
            rows = [
                (k, {side: (list(c), list(t)) for side, (c, t) in self._buckets[k].items()}) for k in seconds
            ]
        if not rows:
            return None

        def rate(counts: list[int]) -> float | None:
            return counts[1] / counts[0] if counts[0] else None

        def p99_ms(ttfts: list[float]) -> float | None:
            if not ttfts:
                return None
            ordered = sorted(ttfts)
            return ordered[max(math.ceil(0.99 * len(ordered)) - 1, 0)] * 1e3

        return TimelineSeries(
            t_s=[round(k + 0.5 - decided_mono, 3) for k, _ in rows],
            canary_error_rate=[rate(b[Side.CANARY][0]) for _, b in rows],
            stable_error_rate=[rate(b[Side.STABLE][0]) for _, b in rows],
            canary_ttft_p99_ms=[p99_ms(b[Side.CANARY][1]) for _, b in rows],
            stable_ttft_p99_ms=[p99_ms(b[Side.STABLE][1]) for _, b in rows],
        )


class FollowupWorker:
    """One daemon thread running one event loop: where every follow-up of a canary runs.

    Started on the first :meth:`submit`; a flip storm of any length adds one thread, not one per
    rollback. :meth:`stop` cancels what still runs and joins the thread.
    """

    def __init__(self, name: str = "litellm-canary-followup") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def thread(self) -> threading.Thread | None:
        """The worker thread (``None`` before the first :meth:`submit` or after :meth:`stop`)."""
        return self._thread

    def submit(self, coroutine: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T] | None:
        """Run ``coroutine`` on the worker's loop; ``None`` (and the coroutine closed) once stopped."""
        with self._lock:
            if self._stopped:
                coroutine.close()
                return None
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._serve, args=(loop, ready), name=self._name, daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every task still running, stop the loop and join the thread."""
        with self._lock:
            self._stopped = True
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # already closed
            loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            thread.join(timeout)


@dataclass
class _Followup:
    record: RollbackRecord
    verification: Verification
    incident_id: str | None
    after_flip: list[int] = field(default_factory=lambda: [0, 0])  # canary, draining decisions
    drained: bool | None = None
    drained_after_ms: float | None = None
    done: concurrent.futures.Future[dict[str, Any]] = field(default_factory=concurrent.futures.Future)
    # Set by a re-arm or a newer rollback: why the follow-up stopped without a verdict.
    cancelled: str | None = None
    cancel_recorded: bool = False  # the incident says it was cancelled
    task: asyncio.Task[Any] | None = None  # the running follow-up, once started
    lock: threading.Lock = field(default_factory=threading.Lock)


class PostRollback:
    """The follow-up of every rollback of ``canary`` (see the module docstring).

    With ``auto`` (the default; ``attach(background=False)`` turns it off) each rollback runs
    :meth:`follow` on the shared :class:`FollowupWorker`; without it, await :meth:`follow` yourself.
    """

    def __init__(
        self,
        canary: Canary,
        *,
        recorder: IncidentRecorder | None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        auto: bool = True,
        golden_checks: dict[str, GoldenCheck] | None = None,
    ) -> None:
        self._canary = canary
        self.recorder = recorder
        self._clock = clock
        self._wall_clock = wall_clock
        self._auto = auto
        self._watches = {
            group: BaselineWatch(runtime.config, clock=clock) for group, runtime in canary.runtimes.items()
        }
        self._series = {group: _SeriesBuffer(clock) for group in canary.runtimes}
        self._golden_checks = dict(golden_checks) if golden_checks is not None else self._wire_golden()
        self._state: dict[str, _Followup] = {}
        self._listeners: list[Callable[[str, VerificationResult], None]] = []
        self._closed = threading.Event()
        self.worker = FollowupWorker()
        self._retrying = False  # a retry of unwritten incidents is scheduled on the worker
        self._retry_lock = threading.Lock()
        if recorder is not None:
            recorder.on_unwritten = self._schedule_incident_retry
        canary.on_outcome(self._on_outcome)
        canary.on_decision(self._on_decision)
        canary.controller.on_rollback(self._on_rollback)
        canary.controller.on_rearm(self._on_rearm)

    def _wire_golden(self) -> dict[str, GoldenCheck]:
        """A golden check per rollout with a golden set (:func:`litellm_canary.golden.replay_golden`)."""
        from litellm_canary.detection.golden import replay_golden

        checks: dict[str, GoldenCheck] = {}
        for group, evals in self._canary.evals.rollouts.items():
            if evals.golden is None:
                continue

            async def check(group: str = group) -> GoldenScore:
                result = await replay_golden(self._canary, group, Side.STABLE)
                return GoldenScore(result.n, result.mean_score, result.failures)

            checks[group] = check
        return checks

    def on_verdict(self, listener: Callable[[str, VerificationResult], None]) -> None:
        """Call ``listener(model_group, result)`` with every verification verdict."""
        self._listeners.append(listener)

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
            if state is not None and self._canary.runtimes[model_group].rolled_back:
                state.after_flip[1 if decision.reason is Reason.DRAINING else 0] += 1

    def _on_rollback(self, record: RollbackRecord) -> None:
        if record.repeated:
            return
        group = record.model_group
        runtime = self._canary.runtimes[group]
        baseline_golden = self._canary.evals.golden_baseline(group)
        verification = Verification(
            runtime.config,
            self._watches[group].baseline(None if baseline_golden is None else baseline_golden.mean_score),
            clock=self._clock,
            started=record.decided_mono,
            golden_configured=group in self._golden_checks,
        )
        incident_id = self.recorder.incident_for(record) if self.recorder is not None else None
        state = _Followup(record, verification, incident_id)
        previous = self._state.get(group)
        self._state[group] = state
        if previous is not None:
            self._cancel(group, previous, f"superseded by the rollback at {record.decided_at}")
        if self._auto and not self._closed.is_set():
            future = self.worker.submit(self._run(group, state))
            if future is not None:
                future.add_done_callback(_log_failure(group))

    def _schedule_incident_retry(self) -> None:
        """Retry the incidents the directory did not take, on the worker, until none waits."""
        with self._retry_lock:
            if self._retrying or self._closed.is_set():
                return
            self._retrying = True
        if self.worker.submit(self._retry_incidents()) is None:
            with self._retry_lock:
                self._retrying = False

    async def _retry_incidents(self) -> None:
        assert self.recorder is not None
        try:
            while not self._closed.is_set():
                delay = self.recorder.retry_unwritten()
                if delay is None:
                    return
                await asyncio.sleep(delay)  # the backoff itself: nothing to await but time
        finally:
            with self._retry_lock:
                self._retrying = False
            if self.recorder.retry_unwritten() is not None and not self._closed.is_set():
                self._schedule_incident_retry()  # one became due while this loop was ending

    def _on_rearm(self, model_group: str, origin: str | None) -> None:
        state = self._state.get(model_group)
        if state is not None:
            wall = datetime.fromtimestamp(self._wall_clock(), UTC).isoformat(timespec="milliseconds")
            self._cancel(model_group, state, f"re-armed at {wall}" + (f" (from {origin})" if origin else ""))

    def _cancel(self, group: str, state: _Followup, why: str) -> None:
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

    async def _run(self, group: str, state: _Followup) -> None:
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

    async def _follow(self, model_group: str, state: _Followup) -> dict[str, Any]:
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

    def _finish_cancelled(self, group: str, state: _Followup) -> dict[str, Any]:
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

    async def _verify(self, group: str, state: _Followup) -> VerificationResult | None:
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

    async def _drain(self, group: str, state: _Followup) -> None:
        timeout = self._canary.config.max_attempt_s + self._canary.runtimes[group].config.conversation_drain_s
        deadline = self._clock() + timeout
        drained = False
        while not self._closed.is_set():
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            if await self._canary.drained(group, timeout=min(remaining, 1.0)):
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

    def _picture(self, group: str, state: _Followup) -> None:
        """Add the timeline picture (if matplotlib is installed; else the incident says so)."""
        if self.recorder is None or state.incident_id is None:
            return
        series = self._series[group].series(state.record.decided_mono)
        if series is None:
            return
        try:
            self.recorder.add_picture(state.incident_id, series)
        except Exception:
            logger.exception("could not add the timeline picture to incident %s", state.incident_id)

    def _report(self, group: str, state: _Followup, result: VerificationResult) -> None:
        if result.verdict == "not_recovered":
            logger.critical(
                "rollback of %r did not restore service within %gs: %s failed — the cause is probably "
                "not the canary",
                group,
                result.within_s,
                ", ".join(result.failed),
                extra={"litellm_canary_verification": result.as_dict()},
            )
        elif result.verdict == "insufficient_data":
            logger.warning(
                "rollback of %r: verification had insufficient data within %gs (%s)",
                group,
                result.within_s,
                "; ".join(c.summary for c in result.checks.values() if c.state == "insufficient_data"),
            )
        else:
            logger.info("rollback of %r verified: service restored after %.3fs", group, result.elapsed_s)
        for listener in self._listeners:
            try:
                listener(group, result)
            except Exception:
                logger.exception("verification listener %r failed", listener)
        if self.recorder is not None and state.incident_id is not None:
            try:
                results = incident_verification(result, self._user_feedback(group))
                self.recorder.verify(state.incident_id, result.verdict, results)
            except Exception:
                logger.exception("could not record the verification in incident %s", state.incident_id)

    def _user_feedback(self, group: str) -> dict[str, Any]:
        """Feedback per side (count, mean) since the canary was armed: shown beside the checks, not
        one of them (feedback arrives too slowly to gate a verdict due within minutes)."""
        sides: dict[str, Any] = self._canary.lifecycle.feedback.status(group)["sides"]
        return sides

    # -- status ----------------------------------------------------------------------------------

    def status(self, model_group: str) -> dict[str, Any] | None:
        """The follow-up of ``model_group``'s last rollback (``None`` before any rollback)."""
        state = self._state.get(model_group)
        if state is None:
            return None
        return self._status(model_group, state)

    def _status(self, model_group: str, state: _Followup) -> dict[str, Any]:
        verification = state.verification
        result = verification.result
        if state.cancelled is not None and result is None:
            shown: dict[str, Any] = {
                "verdict": "cancelled",
                "cancelled": state.cancelled,
                "within_s": verification.within_s,
            }
        elif result is None:
            checks = verification.checks()
            shown = {
                "verdict": "pending",
                "within_s": verification.within_s,
                "checks": {name: check.as_dict() for name, check in checks.items()},
                "baseline": verification.baseline.as_dict(),
            }
        else:
            shown = result.as_dict()
        shown["user_feedback"] = self._user_feedback(model_group)
        return {
            "verification": shown,
            "drained": state.drained,
            "drained_after_ms": state.drained_after_ms,
            "canary_decisions_after_flip": state.after_flip[0],
            "draining_decisions_after_flip": state.after_flip[1],
            "canary_attempts": state.record.canary_attempts.as_dict(),
            "incident_id": state.incident_id,
            "complete": state.done.done(),
            **(self.recorder.status(model_group) if self.recorder is not None else _NO_RECORDER),
        }

    def drill(self, model_group: str) -> dict[str, Any] | None:
        """The last drill of ``model_group`` from the incidents directory (``None`` without one)."""
        incidents = self._canary.config.incidents
        if self.recorder is None or incidents is None:
            return None
        return drill_status(
            self.recorder.store,
            model_group,
            overdue_days=incidents.drill_overdue_days,
            now=self._wall_clock(),
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker: an unfinished follow-up ends ``cancelled`` (its incident says the canary
        was detached before a verdict)."""
        wall = datetime.fromtimestamp(self._wall_clock(), UTC).isoformat(timespec="milliseconds")
        for group, state in list(self._state.items()):
            self._cancel(group, state, f"the canary was detached at {wall}")
        self._closed.set()
        self.worker.stop(timeout)


def _log_failure(group: str) -> Callable[[concurrent.futures.Future[None]], None]:
    def done(future: concurrent.futures.Future[None]) -> None:
        error = None if future.cancelled() else future.exception()
        if error is not None:  # the worker must never fail silently; the status shows what is known
            logger.error("post-rollback follow-up of %r failed", group, exc_info=error)

    return done


def incident_verification(
    result: VerificationResult, user_feedback: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The verification as an incident holds it (flat: one level of nesting per check), with the user
    feedback per side beside it."""
    data: dict[str, Any] = {
        "restored_service": result.restored,
        "failed_checks": result.failed,
        "elapsed_s": round(result.elapsed_s, 3),
        "within_s": result.within_s,
        "baseline": result.baseline.as_dict(),
    }
    for name, check in result.checks.items():
        data[name] = check.as_dict()
    if user_feedback is not None:  # flat, like the checks: {"canary_count": 5, "canary_mean": 0.5, ...}
        data["user_feedback"] = {
            f"{side}_{key}": value for side, tally in user_feedback.items() for key, value in tally.items()
        }
    if result.verdict == "not_recovered":
        data["note"] = NOT_RESTORED_NOTE
    return data


# -- the last drill --------------------------------------------------------------------------------


_drill_cache: dict[tuple[str, str], tuple[int, Incident | None]] = {}
_drill_cache_lock = threading.Lock()


def _latest_drill(store: IncidentStore, model_group: str) -> Incident | None:
    directory = store.directory
    try:
        stamp = os.stat(directory).st_mtime_ns  # every write renames a file into it
    except OSError:
        return None
    key = (str(directory), model_group)
    with _drill_cache_lock:
        cached = _drill_cache.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    latest = None
    for summary in store.list():  # newest first
        if summary.kind == "drill" and summary.model_group == model_group:
            try:
                latest = store.get(summary.id)
            except (OSError, ValueError, KeyError):
                continue
            break
    with _drill_cache_lock:
        _drill_cache[key] = (stamp, latest)
    return latest


def drill_status(
    store: IncidentStore, model_group: str, *, overdue_days: float, now: float | None = None
) -> dict[str, Any]:
    """When ``model_group``'s last drill ran (its latest ``drill`` incident), its result, and
    ``drill_overdue`` when there was none within ``overdue_days``."""
    incident = _latest_drill(store, model_group)
    now = time.time() if now is None else now
    if incident is None:
        return {"last_at": None, "incident_id": None, "result": None, "drill_overdue": True}
    decided = datetime.fromisoformat(incident.decided_at)
    if decided.tzinfo is None:
        decided = decided.replace(tzinfo=UTC)
    age_days = (now - decided.timestamp()) / 86400
    drill = incident.drill or {}
    if "passed" in drill:
        result = "passed" if drill["passed"] else "failed"
    elif incident.verification is not None:
        result = str(incident.verification.get("verdict"))
    else:
        result = "pending"
    return {
        "last_at": incident.decided_at,
        "incident_id": incident.id,
        "result": result,
        "age_days": round(age_days, 3),
        "drill_overdue": age_days > overdue_days,
    }


def install_followup(
    canary: Canary,
    *,
    clock: Callable[[], float],
    wall_clock: Callable[[], float] = time.time,
    auto: bool = True,
) -> PostRollback:
    """The follow-up of ``canary``'s rollbacks, with an incident recorder when ``incidents`` is
    configured (its directory is created now: an unusable one is a :class:`ConfigError`)."""
    recorder = None
    incidents = canary.config.incidents
    if incidents is not None:
        try:
            incidents.dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"incidents.dir: cannot create {incidents.dir}: {error.strerror}") from None
        if not os.access(incidents.dir, os.W_OK | os.X_OK):
            raise ConfigError(f"incidents.dir: {incidents.dir} is not writable")
        # The follow-up counts the decisions after the flip itself (status shows them without incidents).
        recorder = IncidentRecorder(
            canary, IncidentStore(incidents.dir), wall_clock=wall_clock, count_decisions=False
        )
    return PostRollback(canary, recorder=recorder, clock=clock, wall_clock=wall_clock, auto=auto)

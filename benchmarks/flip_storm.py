"""A flip storm: rollback/re-arm cycles as fast as they go, under streaming load. What does it leave?

Setup (the pieces of :mod:`litellm_canary.bench`): two ``FakeUpstream`` servers (stable, canary) in a child
process stream a few-word answer; a real ``litellm.Router`` group ``chat`` points at them; a canary is
attached with the memory flag store, its automatic-rollback triggers off, its follow-up on (the
default: every rollback is followed up, verified and, with ``--incidents``, recorded in a temporary
incidents directory). ``--clients`` client coroutines stream back to back without think time.

The controller, in its own thread (as an admin API or a webhook handler would call), loops for
``--seconds`` (or until ``--cycles`` cycles): ``rollback()``, hold a random 0..``--hold-ms``,
``rearm()`` and point the flag at the canary again, hold again. An ``on_decision`` listener notes
every canary decision with the start of its request; ``canary_after_rollback_returned`` counts those
of requests that started after a ``rollback()`` returned and were decided before its re-arm (the
latch makes it 0). Every client stream that raises is
``failed`` (the error texts are tallied in ``errors``).

Threads (``threading.active_count()``), RSS (``VmRSS``) and open file descriptors are read after
``--warm-s`` seconds of the same load without flips (``*_before``: LiteLLM's own thread pools have
grown to the load by then), and again after the drain: the clients stopped, the last re-arm done,
the canary drained and the last follow-up settled (``*_after_drain``). ``fds_max_during`` is the
most descriptors seen at the end of a cycle.

Targets: ``failed == 0``, ``canary_after_rollback_returned == 0``, threads within +10 and RSS within
+50 MB of the start after the drain, ``cycles >= 1000`` (in the default 45 s).

    python benchmarks/flip_storm.py [--json] [--quick] [--clients N] [--seconds S] [--cycles N]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import contextvars
import gc
import json
import logging
import math
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm.router import Router

import litellm_canary
from litellm_canary import Side
from litellm_canary.bench import switch_setup
from litellm_canary.bench.switch import warm_up
from litellm_canary.core.config import Triggers
from litellm_canary.core.decision import Decision

logger = logging.getLogger("benchmarks.flip_storm")

GROUP = switch_setup.GROUP
TARGETS = {"failed": 0, "canary_after_rollback_returned": 0, "threads_growth": 10, "rss_growth_mb": 50.0}
MIN_CYCLES = 1000


@dataclass(frozen=True)
class Settings:
    clients: int
    seconds: float
    cycles: int | None  # stop after this many cycles (else after ``seconds``)
    hold_ms: float  # random hold after a rollback and after a re-arm
    chunk_delay_ms: float
    words: int
    verify_within_s: float
    incidents: bool
    warm_s: float  # the same load without flips before the baseline is read
    upstreams: str  # "process": a child process serves them; "thread": threads of this process
    seed: int


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, bool]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run (small counts)")
    parser.add_argument("--clients", type=int, help="streaming clients (default 40)")
    parser.add_argument("--seconds", type=float, help="storm duration (default 45)")
    parser.add_argument("--cycles", type=int, help="stop after this many cycles instead")
    parser.add_argument("--hold-ms", type=float, default=20.0, help="max random hold per half-cycle")
    parser.add_argument("--chunk-delay-ms", type=float, default=5.0, help="upstream delay between chunks")
    parser.add_argument("--words", type=int, default=5, help="answer length in words")
    parser.add_argument(
        "--verify-within-s", type=float, default=180.0, help="the rollout's verify_within_s (default 180)"
    )
    parser.add_argument("--incidents", action="store_true", help="write incidents to a temporary directory")
    parser.add_argument(
        "--warm-s", type=float, help="load without flips before the baseline is read (default 5)"
    )
    parser.add_argument(
        "--upstreams",
        choices=("process", "thread"),
        default="process",
        help="serve the fake upstreams from a child process (default) or from threads of this process",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-level", default="ERROR", help="stderr log level (default ERROR)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(name)s: %(message)s")
    settings = Settings(
        clients=args.clients or (8 if args.quick else 40),
        seconds=args.seconds or (4.0 if args.quick else 45.0),
        cycles=args.cycles,
        hold_ms=args.hold_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        words=args.words,
        verify_within_s=args.verify_within_s,
        incidents=args.incidents,
        warm_s=args.warm_s if args.warm_s is not None else (1.0 if args.quick else 5.0),
        upstreams=args.upstreams,
        seed=args.seed,
    )
    if settings.clients < 1 or settings.seconds <= 0 or (settings.cycles is not None and settings.cycles < 1):
        parser.error("--clients and --cycles must be positive, --seconds above 0")
    if settings.hold_ms < 0 or settings.verify_within_s <= 0:
        parser.error("--hold-ms must be >= 0 and --verify-within-s above 0")
    return settings, args.json


_request_started: contextvars.ContextVar[float] = contextvars.ContextVar("request_started")


@dataclass
class Storm:
    """What the clients and the controller saw. The controller runs in its own thread (like an admin
    API or a webhook would); the clients and every routing decision run in the event loop."""

    decisions: int = 0
    requests: int = 0
    failed: int = 0
    cycles: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    # (rollback() returned, re-arm started) per cycle, perf_counter(): appended by the controller
    rolled_back: list[tuple[float, float]] = field(default_factory=list)
    # (request started, decided) of every canary decision, perf_counter()
    canary_decisions: list[tuple[float, float]] = field(default_factory=list)
    fds_max: int = 0  # open file descriptors, the most seen at a cycle's end

    def on_decision(self, model_group: str, decision: Decision, deployment_id: str) -> None:
        self.decisions += 1
        if decision.side is Side.CANARY:
            self.canary_decisions.append((_request_started.get(math.nan), time.perf_counter()))

    def canary_after_rollback_returned(self) -> int:
        """Canary decisions of requests that started after a ``rollback()`` returned and were decided
        before its re-arm began: the latch must make them stable. (Started after the return, decided
        before the re-arm: the decision itself fell inside; no clock race can fake or hide one.)"""
        starts = [returned for returned, _ in self.rolled_back]
        count = 0
        for started, decided in self.canary_decisions:
            index = bisect.bisect_left(starts, started) - 1  # the last rollback returned before the start
            if index >= 0 and decided < self.rolled_back[index][1]:
                count += 1
        return count


def rss_mb() -> float:
    """This process's resident set size (``VmRSS``) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    """This process's open file descriptors (each event loop holds three: epoll and a self-pipe)."""
    return len(os.listdir("/proc/self/fd"))


def count_incidents(directory: str | None) -> int | None:
    return None if directory is None else len(list(Path(directory).glob("*.json")))


def attach_canary(router: Router, settings: Settings, incidents_dir: str | None) -> litellm_canary.Canary:
    rollout = {
        "model_group": GROUP,
        "stable": [switch_setup.STABLE_ID],
        "canary": [switch_setup.CANARY_ID],
        "flag_key": switch_setup.FLAG_KEY,
        "triggers": dict.fromkeys(Triggers.model_fields, False),
        "verify_within_s": settings.verify_within_s,
    }
    config: dict[str, Any] = {"rollouts": [rollout], "flag_store": {"kind": "memory"}}
    if incidents_dir is not None:
        config["incidents"] = {"dir": incidents_dir}
    return litellm_canary.attach(router, config)


async def client(number: int, router: Router, storm: Storm, stop: asyncio.Event) -> None:
    iteration = 0
    while not stop.is_set():
        metadata: dict[str, Any] = {}
        storm.requests += 1
        _request_started.set(time.perf_counter())  # this task's context: the decision listener reads it
        try:
            stream = await router.acompletion(
                model=GROUP,
                messages=switch_setup.MESSAGES,
                stream=True,
                user=f"client-{number}-{iteration}",
                metadata=metadata,
            )
            async for _ in stream:
                pass
        except Exception as error:  # counted: the figure is how many failed
            storm.failed += 1
            storm.errors[f"{type(error).__name__}: {str(error)[:120]}"] += 1
        iteration += 1
        await asyncio.sleep(0)


def controller(canary: litellm_canary.Canary, storm: Storm, settings: Settings) -> None:
    """Rollback, hold, re-arm and serve the canary again, hold; until the time or the cycles are up.
    The holds are the storm's pace (a random 0..hold_ms), not a synchronisation."""
    rng = random.Random(settings.seed)
    hold_s = settings.hold_ms / 1e3
    deadline = time.monotonic() + settings.seconds
    while time.monotonic() < deadline and (settings.cycles is None or storm.cycles < settings.cycles):
        canary.rollback(GROUP, reason=f"flip storm, cycle {storm.cycles}")
        returned = time.perf_counter()
        time.sleep(rng.uniform(0, hold_s))
        storm.rolled_back.append((returned, time.perf_counter()))
        canary.rearm(GROUP)
        canary.set_side(GROUP, "canary")
        storm.cycles += 1
        storm.fds_max = max(storm.fds_max, open_fds())
        time.sleep(rng.uniform(0, hold_s))


async def execute(settings: Settings) -> dict[str, Any]:
    upstream_settings = switch_setup.Settings(
        clients=settings.clients,
        flips=1,
        idle_flips=0,
        think_ms=0.0,
        chunk_delay_ms=settings.chunk_delay_ms,
        words=settings.words,
        canary_percent=100.0,
        min_in_flight=1,
        flip_jitter_ms=0.0,
        drain_timeout_s=30.0,
        step_timeout_s=30.0,
        upstreams=settings.upstreams,
        seed=settings.seed,
    )
    storm = Storm()
    with contextlib.ExitStack() as stack:
        incidents_dir = None
        if settings.incidents:
            incidents_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="flip-storm-"))
        upstreams = stack.enter_context(switch_setup.start_upstreams(upstream_settings))
        router = switch_setup.build_router(upstreams)
        canary = attach_canary(router, settings, incidents_dir)
        try:
            await warm_up(router, canary, upstream_settings)  # both sides, then canary
            canary.on_decision(storm.on_decision)
            stop = asyncio.Event()
            clients = [asyncio.create_task(client(n, router, storm, stop)) for n in range(settings.clients)]
            try:
                # The same load without flips first: LiteLLM's own thread pools (asyncio's default
                # executor, AnyIO workers) grow with concurrency; the baseline includes them.
                await asyncio.sleep(settings.warm_s)
                gc.collect()
                threads_before, rss_before, fds_before = threading.active_count(), rss_mb(), open_fds()
                logger.info("threads before: %s", sorted(t.name for t in threading.enumerate()))
                warm_requests, storm.requests = storm.requests, 0
                started = time.perf_counter()
                try:
                    await asyncio.to_thread(controller, canary, storm, settings)
                finally:
                    elapsed = time.perf_counter() - started
            finally:
                stop.set()
                await asyncio.gather(*clients, return_exceptions=True)
            # the drain: the last follow-up settled (a re-arm cancels it), no canary attempt left
            canary.rearm(GROUP)
            drained = await canary.drained(GROUP, timeout=30.0)
            last_verdict = None  # None: no rollback at all
            try:
                last_followup = await asyncio.wait_for(
                    asyncio.wrap_future(canary.followup.result(GROUP)), 30.0
                )
                last_verdict = last_followup["verification"]["verdict"]
            except TimeoutError:
                last_verdict = "not settled within 30 s"
            except Exception as error:  # e.g. the follow-up could not start (counted, not fatal)
                last_verdict = f"failed: {type(error).__name__}: {error}"[:200]
            gc.collect()
            threads_after, rss_after, fds_after = threading.active_count(), rss_mb(), open_fds()
            logger.info("threads after the drain: %s", sorted(t.name for t in threading.enumerate()))
        finally:
            canary.detach()
        incidents = count_incidents(incidents_dir)
    return {
        "clients": settings.clients,
        "cycles": storm.cycles,
        "requests": storm.requests,
        "warm_up_requests": warm_requests,
        "failed": storm.failed,
        "canary_after_rollback_returned": storm.canary_after_rollback_returned(),
        "canary_decisions_checked": len(storm.canary_decisions),
        "threads_before": threads_before,
        "threads_after_drain": threads_after,
        "rss_mb_before": rss_before,
        "rss_mb_after_drain": rss_after,
        "fds_before": fds_before,
        "fds_max_during": storm.fds_max,
        "fds_after_drain": fds_after,
        "elapsed_s": round(elapsed, 2),
        "cycles_per_s": round(storm.cycles / elapsed, 1) if elapsed > 0 else None,
        "decisions": storm.decisions,
        "drained": drained,
        "last_followup_verdict": last_verdict,
        "incidents_written": incidents,
        "errors": dict(storm.errors.most_common(10)),
        "settings": asdict(settings),
    }


def judge(result: dict[str, Any]) -> dict[str, Any]:
    result["targets"] = {**TARGETS, "cycles": MIN_CYCLES}
    result["meets_targets"] = {
        "failed": result["failed"] == 0,
        "canary_after_rollback_returned": result["canary_after_rollback_returned"] == 0,
        "threads_growth": result["threads_after_drain"] - result["threads_before"]
        <= TARGETS["threads_growth"],
        "rss_growth_mb": result["rss_mb_after_drain"] - result["rss_mb_before"] <= TARGETS["rss_growth_mb"],
        "cycles": result["cycles"] >= MIN_CYCLES,
    }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    settings, as_json = parse_args(argv)
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # keep stray library prints out of the JSON
        result = judge(asyncio.run(execute(settings)))
    if as_json:
        stdout.write(json.dumps(result) + "\n")
    else:
        met = result["meets_targets"]
        stdout.write(
            f"flip storm: {result['clients']} streaming clients, {result['cycles']} rollback/re-arm cycles "
            f"in {result['elapsed_s']} s ({'met' if met['cycles'] else 'MISSED'} >= {MIN_CYCLES})\n"
            f"  requests {result['requests']}, failed {result['failed']}, canary after a rollback returned "
            f"{result['canary_after_rollback_returned']}\n"
            f"  threads {result['threads_before']} -> {result['threads_after_drain']}, RSS "
            f"{result['rss_mb_before']} -> {result['rss_mb_after_drain']} MB after the drain\n"
            f"  targets: {met}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How fast a rollback takes effect under streaming load, and what happens to streams in flight.

Setup. Two ``FakeUpstream`` servers on 127.0.0.1 (stable and canary; by default in a child process,
so their work does not compete for this process's GIL; ``--upstreams thread`` keeps them here)
stream a few-word answer with ``chunk_delay_s`` between chunks. A ``litellm.Router`` group ``chat``
points at them; a canary is attached with the memory flag store, its automatic-rollback triggers
off, and the flag set to the canary (``set_side``, or ``--canary-percent``). ``--clients`` client
coroutines each loop: stream ``acompletion(..., stream=True)``, consume the stream fully, think for an
exponentially distributed time (mean ``--think-ms``), repeat. Each stream is counted completed or
failed per side (the side is the request's canary stamp).

Load. LiteLLM spends ~30 ms of CPU per streamed call, so a 2-core machine sustains only ~15-25
streams/s. The default think time keeps 200 clients at about half of that. Without think time the
loop saturates: every stream (hence every drain) takes seconds, 100 flips take many minutes, and
LiteLLM starts failing connects (failed attempts the Router retries, on stable after a rollback).

A controller performs ``--flips`` rollback/re-arm cycles. Each cycle waits until canary attempts
are in flight (plus a random jitter, so flips land mid-stream), then ``t0 = perf_counter();
record = canary.rollback("chat", ...)``, waits for the first stable decision, waits for
``canary.drained("chat")``, reads the rollback record's in-flight canary attempts (completed /
failed / expired), re-arms and sets the flag back to the canary (the rollback wrote "stable").
Before the load starts, ``--idle-flips`` flips without any traffic time the ``rollback()`` call idle.

Every decision is logged by an ``on_decision`` listener as ``(perf_counter(), is_canary)``. Per flip:

* ``decision_to_restored`` = first stable decision after ``t0`` minus ``t0``. In one asyncio loop no
  decision can run while ``rollback()`` runs, so it is ``rollback_call`` (``t0`` until ``rollback()``
  returned: latch, flag-store write, log record, span) plus ``first_decision_wait`` (until the next
  request reaches the routing step: about the gap between requests, see ``decisions_per_s``).
* ``canary_after_flip`` counts canary decisions after ``rollback()`` returned and before the re-arm.

Targets (reported, not enforced): ``decision_to_restored_us_p99 <= 1000``, ``canary_after_flip == 0``,
``inflight_failed == 0``.

    python benchmarks/switch_latency.py [--json] [--quick] [--clients N] [--flips N] [--think-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import logging
import math
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm.router import Router

import litellm_canary
from litellm_canary import Side
from litellm_canary.core.config import Triggers
from litellm_canary.core.decision import Decision
from litellm_canary.core.outcomes import Outcome
from litellm_canary.core.request_stamps import STAMP_KEY
from litellm_canary.testing.fake_upstream import FakeUpstream

logger = logging.getLogger("benchmarks.switch_latency")

GROUP = "chat"
FLAG_KEY = "chat-canary"
STABLE_ID = "chat-stable"
CANARY_ID = "chat-canary"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
TARGET_RESTORED_P99_US = 1000.0


@dataclass(frozen=True)
class Settings:
    clients: int
    flips: int
    idle_flips: int  # flips without traffic first: the rollback() call's idle baseline
    think_ms: float  # mean think time between a client's streams (exponential)
    chunk_delay_ms: float  # upstream delay between stream chunks
    words: int  # words in the answer: one content chunk each
    canary_percent: float  # 100: set_side("canary"); else a sticky percentage
    min_in_flight: int  # canary attempts in flight before a flip
    flip_jitter_ms: float  # random extra wait before a flip, so flips land mid-stream
    drain_timeout_s: float
    step_timeout_s: float  # waiting for canary traffic or for the first post-flip decision
    upstreams: str  # "process": a child process serves them; "thread": threads of this process
    seed: int


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, bool]:
    """The run's settings and whether to print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run (small counts)")
    parser.add_argument("--clients", type=int, help="concurrent client coroutines (default 200)")
    parser.add_argument("--flips", type=int, help="rollback/re-arm cycles (default 100)")
    parser.add_argument("--idle-flips", type=int, help="flips without traffic first (default 20)")
    parser.add_argument(
        "--think-ms",
        type=float,
        help="mean think time between a client's streams (default 25000: about 8 streams/s from 200 "
        "clients, about half of what LiteLLM sustains on a busy 2-core machine; near saturation streams "
        "take seconds, so does every drain, and LiteLLM starts failing connects)",
    )
    parser.add_argument("--chunk-delay-ms", type=float, default=10.0, help="upstream delay between chunks")
    parser.add_argument("--words", type=int, default=5, help="answer length in words (content chunks)")
    parser.add_argument("--canary-percent", type=float, default=100.0, help="share of users on the canary")
    parser.add_argument("--min-in-flight", type=int, default=1, help="canary attempts in flight to flip")
    parser.add_argument("--flip-jitter-ms", type=float, default=30.0, help="random wait before a flip")
    parser.add_argument("--drain-timeout-s", type=float, default=30.0)
    parser.add_argument("--step-timeout-s", type=float, default=30.0)
    parser.add_argument(
        "--upstreams",
        choices=("process", "thread"),
        default="process",
        help="serve the fake upstreams from a child process (default: they do not compete for this "
        "process's GIL) or from threads of this process",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-level", default="WARNING", help="stderr log level (default WARNING)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(name)s: %(message)s")
    quick = args.quick
    settings = Settings(
        clients=args.clients or (20 if quick else 200),
        flips=args.flips or (5 if quick else 100),
        idle_flips=args.idle_flips if args.idle_flips is not None else (5 if quick else 20),
        think_ms=args.think_ms if args.think_ms is not None else (2000.0 if quick else 25000.0),
        chunk_delay_ms=args.chunk_delay_ms,
        words=args.words,
        canary_percent=args.canary_percent,
        min_in_flight=args.min_in_flight,
        flip_jitter_ms=args.flip_jitter_ms,
        drain_timeout_s=args.drain_timeout_s,
        step_timeout_s=args.step_timeout_s,
        upstreams=args.upstreams,
        seed=args.seed,
    )
    if min(settings.clients, settings.flips, settings.words, settings.min_in_flight) < 1:
        parser.error("--clients, --flips, --words and --min-in-flight must be positive")
    if not 0 < settings.canary_percent <= 100:
        parser.error("--canary-percent must be within (0, 100]")
    return settings, args.json


# -- observations --------------------------------------------------------------------------------


class DecisionLog:
    """The ``on_decision`` listener: one ``(perf_counter(), is_canary)`` per decision, in order.

    The controller may also wait for the next decision of one side (``expect``).
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self.canary: list[bool] = []
        self._waiter: tuple[bool, asyncio.Event] | None = None

    def __call__(self, model_group: str, decision: Decision, deployment_id: str) -> None:
        self.times.append(time.perf_counter())
        is_canary = decision.side is Side.CANARY
        self.canary.append(is_canary)
        waiter = self._waiter
        if waiter is not None and waiter[0] is is_canary:
            waiter[1].set()

    def expect(self, side: Side) -> asyncio.Event:
        """An event that the next decision for ``side`` sets (replaces any earlier one)."""
        event = asyncio.Event()
        self._waiter = (side is Side.CANARY, event)
        return event

    def stop_expecting(self) -> None:
        self._waiter = None


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One client stream: when it started and ended, on which side, and whether it completed."""

    start: float
    end: float
    side: Side | None  # None: no decision was made (the call failed before routing)
    ok: bool


@dataclass
class Flip:
    """One rollback/re-arm cycle, as the controller saw it."""

    t0: float
    returned: float
    rearmed: float = math.nan
    restored_seen: bool = False
    drained: bool = False
    drain_s: float = math.nan
    latch_us: float = math.nan
    in_flight_at_flip: int = 0
    completed: int = 0
    failed: int = 0
    expired: int = 0
    pending: int = 0


@dataclass
class Run:
    settings: Settings
    decisions: DecisionLog = field(default_factory=DecisionLog)
    streams: list[StreamRecord] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    upstream_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    idle_rollback_us: list[float] = field(default_factory=list)
    attempt_failures: Counter[str] = field(default_factory=Counter)  # "side:status_class" -> n


def record_failure(run: Run, outcome: Outcome) -> None:
    """Tally failed attempts by side and class (the rollback records only count them)."""
    if not outcome.ok:
        run.attempt_failures[f"{outcome.side.value}:{outcome.status_class}"] += 1


# -- setup ---------------------------------------------------------------------------------------


# The upstreams' child process: two FakeUpstreams; prints their base URLs, serves until its stdin
# closes, then prints their counters.
_UPSTREAM_PROCESS = """
import json, sys
from litellm_canary.testing.fake_upstream import FakeUpstream
spec = json.loads(sys.argv[1])
upstreams = {key: FakeUpstream(key, answer=answer).start() for key, answer in spec["answers"].items()}
for upstream in upstreams.values():
    upstream.set_faults(chunk_delay_s=spec["chunk_delay_s"])
print(json.dumps({key: upstream.base_url for key, upstream in upstreams.items()}), flush=True)
sys.stdin.read()
print(json.dumps({key: upstream.stats() for key, upstream in upstreams.items()}), flush=True)
for upstream in upstreams.values():
    upstream.stop()
"""


@dataclass
class Upstreams:
    """Where the deployments live (deployment id -> base URL), and their counters once stopped."""

    base_urls: dict[str, str]
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)


def answers(settings: Settings) -> dict[str, str]:
    words = " ".join(f"w{i}" for i in range(1, settings.words))
    return {STABLE_ID: f"stable {words}".strip(), CANARY_ID: f"canary {words}".strip()}


@contextlib.contextmanager
def upstreams_in_threads(settings: Settings) -> Iterator[Upstreams]:
    servers = {key: FakeUpstream(key, answer=answer) for key, answer in answers(settings).items()}
    try:
        for server in servers.values():
            server.start()
            server.set_faults(chunk_delay_s=settings.chunk_delay_ms / 1e3)
        upstreams = Upstreams({key: server.base_url for key, server in servers.items()})
        yield upstreams
        upstreams.stats = {key: dict(server.stats()) for key, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


@contextlib.contextmanager
def upstreams_in_process(settings: Settings) -> Iterator[Upstreams]:
    spec = {"answers": answers(settings), "chunk_delay_s": settings.chunk_delay_ms / 1e3}
    child = subprocess.Popen(
        [sys.executable, "-c", _UPSTREAM_PROCESS, json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        first_line = child.stdout.readline()
        if not first_line:
            raise RuntimeError("the upstream process exited before serving (see its stderr above)")
        upstreams = Upstreams(json.loads(first_line))
        yield upstreams
        child.stdin.close()
        upstreams.stats = json.loads(child.stdout.readline())
        child.wait(timeout=15)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def start_upstreams(settings: Settings) -> contextlib.AbstractContextManager[Upstreams]:
    return (
        upstreams_in_process(settings) if settings.upstreams == "process" else upstreams_in_threads(settings)
    )


def build_router(upstreams: Upstreams) -> Router:
    router: Router = Router(
        model_list=[
            {
                "model_name": GROUP,
                "litellm_params": {"model": "openai/fake", "api_key": "x", "api_base": base_url},
                "model_info": {"id": deployment_id},
            }
            for deployment_id, base_url in upstreams.base_urls.items()
        ]
    )
    return router


def attach_canary(router: Router) -> litellm_canary.Canary:
    """The canary under test; its automatic-rollback triggers are off: only the controller flips."""
    rollout = {
        "model_group": GROUP,
        "stable": [STABLE_ID],
        "canary": [CANARY_ID],
        "flag_key": FLAG_KEY,
        "triggers": dict.fromkeys(Triggers.model_fields, False),
    }
    return litellm_canary.attach(router, {"rollouts": [rollout], "flag_store": {"kind": "memory"}})


def serve_canary(canary: litellm_canary.Canary, settings: Settings) -> None:
    """Point the flag at the canary again (a rollback writes "stable" into the store)."""
    if settings.canary_percent >= 100:
        canary.set_side(GROUP, "canary")
    else:
        canary.set_canary_percent(GROUP, settings.canary_percent)


# -- load ----------------------------------------------------------------------------------------


def stamped_side(metadata: dict[str, Any]) -> Side | None:
    """The side the canary stamped on the request (the last attempt's, for a retried request)."""
    stamps = metadata.get(STAMP_KEY) or {}
    # One request per metadata dict here: its only stamp for the group is this request's.
    stamp = next((s for key, s in stamps.items() if key.split("|")[0] == GROUP), None)
    return None if stamp is None else Side(stamp.side)


async def stream_once(router: Router, user: str) -> tuple[Side | None, bool]:
    metadata: dict[str, Any] = {}
    try:
        stream = await router.acompletion(
            model=GROUP, messages=MESSAGES, stream=True, user=user, metadata=metadata
        )
        async for _ in cast("AsyncIterator[object]", stream):
            pass
    except Exception as error:  # counted, never fatal: the benchmark reports failures per side
        logger.debug("stream for %s failed: %r", user, error)
        return stamped_side(metadata), False
    return stamped_side(metadata), True


async def client(number: int, router: Router, run: Run, stop: asyncio.Event) -> None:
    rng = random.Random(run.settings.seed * 100_003 + number)
    think_s = run.settings.think_ms / 1e3
    if await _stopped_within(stop, rng.uniform(0, think_s)):  # stagger the first requests
        return
    iteration = 0
    while not stop.is_set():
        start = time.perf_counter()
        side, ok = await stream_once(router, f"client-{number}-{iteration}")
        run.streams.append(StreamRecord(start, time.perf_counter(), side, ok))
        iteration += 1
        if think_s > 0 and await _stopped_within(stop, rng.expovariate(1 / think_s)):
            return
        await asyncio.sleep(0)  # with no think time, still let others run between streams


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True if it was."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


# -- the controller ------------------------------------------------------------------------------


async def wait_for_canary_in_flight(canary: litellm_canary.Canary, run: Run, rng: random.Random) -> None:
    """Until ``min_in_flight`` canary attempts run, then a random jitter (and they still run)."""
    settings = run.settings
    pins = canary.runtimes[GROUP].pins
    async with asyncio.timeout(settings.step_timeout_s):
        while True:
            while pins.in_flight(Side.CANARY) < settings.min_in_flight:
                await run.decisions.expect(Side.CANARY).wait()
            run.decisions.stop_expecting()
            await asyncio.sleep(rng.uniform(0, settings.flip_jitter_ms / 1e3))
            if pins.in_flight(Side.CANARY) >= settings.min_in_flight:
                return


async def flip_once(canary: litellm_canary.Canary, run: Run, index: int, rng: random.Random) -> Flip:
    settings = run.settings
    await wait_for_canary_in_flight(canary, run, rng)
    stable_seen = run.decisions.expect(Side.STABLE)
    t0 = time.perf_counter()
    record = canary.rollback(GROUP, reason=f"switch_latency benchmark, flip {index}")
    flip = Flip(t0=t0, returned=time.perf_counter(), latch_us=record["latch_us"])
    flip.in_flight_at_flip = record["in_flight_at_flip"]["canary"]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(settings.step_timeout_s):
            await stable_seen.wait()
    run.decisions.stop_expecting()
    flip.restored_seen = stable_seen.is_set()
    drain_start = time.perf_counter()
    flip.drained = await canary.drained(GROUP, timeout=settings.drain_timeout_s)
    flip.drain_s = time.perf_counter() - drain_start
    last = canary.controller.runtime(GROUP).last_rollback
    assert last is not None
    attempts = last.canary_attempts
    flip.completed, flip.failed, flip.expired = attempts.completed, attempts.failed, attempts.expired
    flip.pending = attempts.pending
    flip.rearmed = time.perf_counter()
    canary.rearm(GROUP)
    serve_canary(canary, settings)
    return flip


async def controller(canary: litellm_canary.Canary, run: Run) -> None:
    rng = random.Random(run.settings.seed)
    for index in range(run.settings.flips):
        try:
            run.flips.append(await flip_once(canary, run, index, rng))
        except TimeoutError:
            logger.error(
                "flip %d: no canary traffic within %ss; stopping", index, run.settings.step_timeout_s
            )
            return
        logger.info("flip %d done", index)


async def warm_up(router: Router, canary: litellm_canary.Canary, settings: Settings) -> None:
    """LiteLLM's first stream in a process pays a one-time warm-up: pay it on both sides now."""
    for side in ("stable", "canary"):
        canary.set_side(GROUP, side)
        await stream_once(router, f"warm-up-{side}")
    serve_canary(canary, settings)


def idle_flips(canary: litellm_canary.Canary, run: Run) -> None:
    """Time ``rollback()`` with no traffic at all: the baseline of the call's cost under load."""
    for index in range(run.settings.idle_flips):
        start = time.perf_counter()
        canary.rollback(GROUP, reason=f"switch_latency benchmark, idle flip {index}")
        run.idle_rollback_us.append((time.perf_counter() - start) * 1e6)
        canary.rearm(GROUP)
        serve_canary(canary, run.settings)


async def execute(settings: Settings) -> Run:
    run = Run(settings)
    with start_upstreams(settings) as upstreams:
        router = build_router(upstreams)
        canary = attach_canary(router)
        await warm_up(router, canary, settings)
        idle_flips(canary, run)
        canary.on_decision(run.decisions)
        canary.on_outcome(lambda outcome: record_failure(run, outcome))
        stop = asyncio.Event()
        clients = [asyncio.create_task(client(n, router, run, stop)) for n in range(settings.clients)]
        run.started = time.perf_counter()
        try:
            await controller(canary, run)
        finally:
            run.ended = time.perf_counter()
            stop.set()
            await asyncio.gather(*clients, return_exceptions=True)
    run.upstream_stats = upstreams.stats
    return run


# -- analysis ------------------------------------------------------------------------------------


def quantile(samples: Sequence[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def first_stable_after(log: DecisionLog, start: float, end: float) -> float | None:
    index = bisect.bisect_right(log.times, start)
    while index < len(log.times) and log.times[index] < end:
        if not log.canary[index]:
            return log.times[index]
        index += 1
    return None


def flip_metrics(run: Run) -> dict[str, Any]:
    log = run.decisions
    restored_us: list[float] = []
    call_us: list[float] = []
    wait_us: list[float] = []
    canary_after = stable_while_rolled_back = 0
    for flip in run.flips:
        call_us.append((flip.returned - flip.t0) * 1e6)
        restored = first_stable_after(log, flip.t0, flip.rearmed)
        if restored is not None:
            restored_us.append((restored - flip.t0) * 1e6)
            wait_us.append((restored - flip.returned) * 1e6)
        window = slice(
            bisect.bisect_right(log.times, flip.returned), bisect.bisect_left(log.times, flip.rearmed)
        )
        in_window = log.canary[window]
        canary_after += sum(in_window)
        stable_while_rolled_back += len(in_window) - sum(in_window)
    elapsed = run.ended - run.started
    return {
        "decision_to_restored_us_p50": rounded(quantile(restored_us, 0.5)),
        "decision_to_restored_us_p99": rounded(quantile(restored_us, 0.99)),
        "decision_to_restored_us_max": rounded(max(restored_us, default=None)),
        "rollback_call_us_p50": rounded(quantile(call_us, 0.5)),
        "rollback_call_us_p99": rounded(quantile(call_us, 0.99)),
        "rollback_call_idle_us_p50": rounded(quantile(run.idle_rollback_us, 0.5)),
        "rollback_call_idle_us_p99": rounded(quantile(run.idle_rollback_us, 0.99)),
        "first_decision_wait_us_p50": rounded(quantile(wait_us, 0.5)),
        "first_decision_wait_us_p99": rounded(quantile(wait_us, 0.99)),
        "latch_us_p50": rounded(quantile([f.latch_us for f in run.flips], 0.5)),
        "latch_us_p99": rounded(quantile([f.latch_us for f in run.flips], 0.99)),
        "restore_timeouts": sum(not f.restored_seen for f in run.flips),
        "decisions": len(log.times),
        "decisions_per_s": rounded(len(log.times) / elapsed if elapsed > 0 else None),
        "canary_after_flip": canary_after,
        "stable_decisions_while_rolled_back": stable_while_rolled_back,
    }


def inflight_metrics(run: Run) -> dict[str, Any]:
    drains_ms = [f.drain_s * 1e3 for f in run.flips]
    return {
        "inflight_at_flip": sum(f.in_flight_at_flip for f in run.flips),
        "inflight_completed": sum(f.completed for f in run.flips),
        "inflight_failed": sum(f.failed for f in run.flips),
        "inflight_expired": sum(f.expired for f in run.flips),
        "inflight_pending": sum(f.pending for f in run.flips),
        "drain_timeouts": sum(not f.drained for f in run.flips),
        "drain_ms_p50": rounded(quantile(drains_ms, 0.5)),
        "drain_ms_p99": rounded(quantile(drains_ms, 0.99)),
        # Every failed attempt of the run, in flight at a flip or not; a failed attempt the Router
        # retried successfully is a failure here and a completed stream for the client.
        "attempt_failures": dict(sorted(run.attempt_failures.items())),
    }


def client_metrics(run: Run) -> dict[str, Any]:
    """The clients' view, to cross-check the controller's records."""
    per_side: dict[str, dict[str, int]] = {
        side: {"completed": 0, "failed": 0} for side in ("stable", "canary", "unrouted")
    }
    for stream in run.streams:
        side = stream.side.value if stream.side is not None else "unrouted"
        per_side[side]["completed" if stream.ok else "failed"] += 1
    canary_streams = [s for s in run.streams if s.side is Side.CANARY]
    spanning = [s for s in canary_streams if any(s.start < f.t0 < s.end for f in run.flips)]
    durations = [(s.end - s.start) * 1e3 for s in run.streams if s.ok]
    return {
        "client_streams": per_side,
        "client_canary_failed": per_side["canary"]["failed"],
        "client_inflight_at_flip": len(spanning),
        "client_inflight_failed": sum(not s.ok for s in spanning),
        "stream_ms_p50": rounded(quantile(durations, 0.5)),
        "stream_ms_p99": rounded(quantile(durations, 0.99)),
        "upstream_streams": {
            side: {
                key: stats.get(f"streams_{key}", 0) for key in ("started", "completed", "failed", "cancelled")
            }
            for side, stats in (
                ("stable", run.upstream_stats.get(STABLE_ID, {})),
                ("canary", run.upstream_stats.get(CANARY_ID, {})),
            )
        },
    }


def summarize(run: Run) -> dict[str, Any]:
    settings = run.settings
    result: dict[str, Any] = {"clients": settings.clients, "flips": len(run.flips)}
    result |= flip_metrics(run)
    result |= inflight_metrics(run)
    result |= client_metrics(run)
    p99 = result["decision_to_restored_us_p99"]
    result["elapsed_s"] = round(run.ended - run.started, 2)
    result["settings"] = asdict(settings)
    result["targets"] = {
        "decision_to_restored_us_p99": TARGET_RESTORED_P99_US,
        "canary_after_flip": 0,
        "inflight_failed": 0,
    }
    result["meets_targets"] = {
        "decision_to_restored_us_p99": p99 is not None and p99 <= TARGET_RESTORED_P99_US,
        "canary_after_flip": result["canary_after_flip"] == 0,
        "inflight_failed": result["inflight_failed"] == 0,
    }
    return result


def print_summary(result: dict[str, Any]) -> None:
    settings = result["settings"]
    met = result["meets_targets"]

    def verdict(key: str) -> str:
        return "met" if met[key] else "MISSED"

    streams = result["client_streams"]
    lines = [
        f"rollback under load: {result['clients']} streaming clients (think {settings['think_ms']:.0f} ms), "
        f"{result['flips']} flips in {result['elapsed_s']} s, {result['decisions_per_s']} decisions/s",
        f"  decision -> restored   p50 {result['decision_to_restored_us_p50']} µs, "
        f"p99 {result['decision_to_restored_us_p99']} µs (target <= {TARGET_RESTORED_P99_US:.0f}: "
        f"{verdict('decision_to_restored_us_p99')})",
        f"    = rollback() call    p50 {result['rollback_call_us_p50']} µs, "
        f"p99 {result['rollback_call_us_p99']} µs (latch p50 {result['latch_us_p50']} µs; "
        f"idle: p50 {result['rollback_call_idle_us_p50']} µs)",
        f"    + next decision      p50 {result['first_decision_wait_us_p50']} µs, "
        f"p99 {result['first_decision_wait_us_p99']} µs (waiting for the next request)",
        f"  canary after flip      {result['canary_after_flip']} of "
        f"{result['canary_after_flip'] + result['stable_decisions_while_rolled_back']} decisions "
        f"while rolled back ({verdict('canary_after_flip')})",
        f"  in flight at flips     {result['inflight_at_flip']} canary attempts: "
        f"{result['inflight_completed']} completed, {result['inflight_failed']} failed, "
        f"{result['inflight_expired']} expired, {result['inflight_pending']} pending "
        f"({verdict('inflight_failed')}); drain p50 {result['drain_ms_p50']} ms, "
        f"p99 {result['drain_ms_p99']} ms",
        f"  clients                stable {streams['stable']}, canary {streams['canary']}, "
        f"{result['client_inflight_at_flip']} canary streams spanned a flip, "
        f"{result['client_inflight_failed']} of them failed",
        f"  failed attempts        {result['attempt_failures'] or 'none'}",
    ]
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    settings, as_json = parse_args(argv)
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # keep stray library prints out of the JSON
        result = summarize(asyncio.run(execute(settings)))
    if as_json:
        stdout.write(json.dumps(result) + "\n")
    else:
        with contextlib.redirect_stdout(stdout):
            print_summary(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

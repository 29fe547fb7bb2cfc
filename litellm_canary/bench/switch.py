"""``bench switch --offline``: how fast a rollback takes effect under streaming load, and what
happens to the streams in flight.

``clients`` coroutines each loop: stream ``acompletion(..., stream=True)``, consume it, think for an
exponentially distributed time (mean ``think_ms``). A controller performs ``flips`` rollback/re-arm
cycles: each waits until canary attempts are in flight (plus a jitter, so flips land mid-stream), then
``t0 = perf_counter(); canary.rollback(...)``, waits for the first stable decision, waits for
``canary.drained``, reads the rollback record's in-flight canary attempts, re-arms and points the
flag at the canary again. Before the load, ``idle_flips`` flips without traffic time ``rollback()``
idle. Every decision is logged as ``(perf_counter(), is_canary)``; :mod:`.switch_report` turns the
run into figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any, cast

from litellm.router import Router

import litellm_canary
from litellm_canary import Side
from litellm_canary.bench.switch_report import summarize
from litellm_canary.bench.switch_setup import (
    GROUP,
    MESSAGES,
    Flip,
    Run,
    Settings,
    StreamRecord,
    attach_canary,
    build_router,
    record_failure,
    serve_canary,
    start_upstreams,
)
from litellm_canary.core.request_stamps import STAMP_KEY

__all__ = ["execute", "measure"]

logger = logging.getLogger("litellm_canary.bench.switch")


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


def measure(settings: Settings) -> dict[str, Any]:
    """Run the benchmark and return its figures (the ``--json`` object)."""
    return summarize(asyncio.run(execute(settings)))

"""``bench proxy``'s workers phase: a rollback sent to a ``--num_workers`` proxy reaching every worker.

The proxy's workers share one port, so a request lands on either; each worker's canary answers
``GET <mount>/canary/status`` and the routing-only probe ``GET <mount>/canary/route`` with its
process id (``pid``), which is how the workers are told apart. Per flip, with streaming traffic
running all along:

1. every worker is armed (``POST /canary/rearm`` until each worker's status says ``armed``: only
   the worker that took the rollback is latched) and the flag file serves the canary to everyone;
   wait until every worker's status shows it read ``canary``;
2. ``POST /canary/rollback`` (it lands on one worker: that one latches, then writes the flag file,
   which the other workers poll);
3. from the moment of the rollback call, probe ``GET <mount>/canary/route?group=chat&user=...``
   (the worker runs its routing decision, no upstream call) from several concurrent loops, each
   probe on a new connection so either worker may answer, until every worker pid has answered
   ``stable``; and wait until a request begun after the rollback call has finished.

``propagation_ms`` of a flip is the start of the last request served by the canary (the
``x-litellm-model-id`` header) that began after the rollback call, measured from that call (0 when
none): how long after the rollback some worker still routed to the canary (real traffic).
``follower_latch_ms`` is the propagation itself: how long after the worker that took the rollback
latched the other worker latched (each worker's own ``last_rollback.latched_at``; both clocks are
this machine's). ``confirmed_ms`` is from the rollback call to the arrival of the probe answer that
completed "every worker answered stable": the end-to-end upper bound, with the rollback call's
wait in a busy worker's event loop and one probe round trip (``probe_rtt_ms``) included.
``probe_regressions`` counts canary answers to probes sent after the same worker had answered
stable (0 expected). The worker that takes the rollback latches at once; the other
follows the flag file within its poll interval, or the Redis broadcast when the phase runs with
``workers_via="redis"`` (:mod:`litellm_canary.bench.proxy_setup`).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import httpx
import openai

from litellm_canary.bench.proxy_load import Request, Target, client_for, stream_once
from litellm_canary.bench.proxy_setup import CANARY_ID, FLAG_KEY, GROUP
from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagdFileStore
from litellm_canary.core.rollback_record import parse_wall

__all__ = ["StableConfirmation", "WorkerStatuses", "confirm_stable", "measure_propagation"]

TRAFFIC_CLIENTS = 8
WAIT_S = 60.0  # generous bound for each wait on a loaded machine
CLOSE = {"Connection": "close"}  # a new connection per admin call, so either worker may answer it
PROBE_USER = "bench-workers-probe"
PROBE_PAUSE_S = 0.002  # between a loop's route probes: let the traffic run
PROBERS = 4  # concurrent probe loops: each worker answers one every few ms


class WorkerStatuses:
    """Polls the proxy's ``/canary/status`` until every worker (distinct ``pid``) answered."""

    def __init__(self, client: httpx.AsyncClient, workers: int) -> None:
        self.client = client
        self.workers = workers

    async def collect(self) -> dict[int, dict[str, Any]]:
        """One fresh status per worker (new connection each call, so either worker may answer; a
        worker still starting answers later: ``WAIT_S`` bounds the wait)."""
        seen: dict[int, dict[str, Any]] = {}
        deadline = time.perf_counter() + WAIT_S
        while len(seen) < self.workers:
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"only {len(seen)} of {self.workers} workers answered /canary/status "
                    f"within {WAIT_S:g} s: {sorted(seen)}"
                )
            answer = await self.client.get("/canary/status", headers=CLOSE)
            answer.raise_for_status()
            status = answer.json()
            seen[int(status["pid"])] = status["groups"][GROUP]
        return seen

    async def wait_all(self, what: str, condition: Callable[[dict[str, Any]], bool]) -> float:
        """Wait until ``condition`` holds for every worker's group status; the seconds it took."""
        start = time.perf_counter()
        deadline = start + WAIT_S
        while True:
            statuses = await self.collect()
            if all(condition(group) for group in statuses.values()):
                return time.perf_counter() - start
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"timed out after {WAIT_S:g} s waiting until every worker {what}: {statuses}"
                )
            await asyncio.sleep(0.005)  # let the traffic run between polls


@dataclass(frozen=True)
class StableConfirmation:
    at: float  # time.perf_counter() when the answer completing "every worker stable" arrived
    probe_rtts_s: list[float]  # every probe's round trip
    regressions: int  # canary answers to probes sent after the same worker had answered stable


async def confirm_stable(
    admin: httpx.AsyncClient, pids: Collection[int], probers: int = PROBERS
) -> StableConfirmation:
    """Probe ``GET /canary/route`` from ``probers`` concurrent loops (a new connection each probe)
    until every worker in ``pids`` answered that a new request goes to stable.

    Started together with the rollback call, so that both workers are sampled every few
    milliseconds: the confirmation then waits for the workers, not for a lucky probe."""
    stable_at: dict[int, float] = {}  # pid -> arrival of its first stable answer
    rtts: list[float] = []
    regressions = 0
    done = asyncio.Event()
    deadline = time.perf_counter() + WAIT_S
    params = {"group": GROUP, "user": PROBE_USER}

    async def probe_loop() -> None:
        try:
            await probe_until_done()
        finally:
            done.set()  # one loop failing (timeout, HTTP error) stops the others too

    async def probe_until_done() -> None:
        nonlocal regressions
        while not done.is_set():
            sent = time.perf_counter()
            answer = await admin.get("/canary/route", params=params, headers=CLOSE)
            arrived = time.perf_counter()
            answer.raise_for_status()
            rtts.append(arrived - sent)
            body = answer.json()
            pid = int(body["pid"])
            if body["side"] == Side.STABLE.value:
                stable_at.setdefault(pid, arrived)
            elif pid in stable_at and sent > stable_at[pid]:
                regressions += 1
            if set(stable_at) >= set(pids):
                done.set()
            elif arrived > deadline:
                raise RuntimeError(
                    f"timed out after {WAIT_S:g} s probing until every worker routes stable: "
                    f"{sorted(stable_at)} of {sorted(pids)} did"
                )
            await asyncio.sleep(PROBE_PAUSE_S)

    await asyncio.gather(*(probe_loop() for _ in range(probers)))
    return StableConfirmation(max(stable_at[pid] for pid in pids), rtts, regressions)


async def _traffic(client: openai.AsyncOpenAI, stop: asyncio.Event, records: list[Request]) -> None:
    async def loop(number: int) -> None:
        iteration = 0
        while not stop.is_set():
            records.append(await stream_once(client, GROUP, f"workers-{number}-{iteration}"))
            iteration += 1

    await asyncio.gather(*(loop(n) for n in range(TRAFFIC_CLIENTS)))


async def _rearm_all(statuses: WorkerStatuses, admin: httpx.AsyncClient) -> None:
    """Re-arm until every worker is armed: a re-arm lands on either worker, and only the worker that
    took the rollback is latched (the others followed the flag file)."""
    deadline = time.perf_counter() + WAIT_S
    while not all(group["state"] == "armed" for group in (await statuses.collect()).values()):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out after {WAIT_S:g} s re-arming every worker")
        (await admin.post("/canary/rearm", json={"model_group": GROUP}, headers=CLOSE)).raise_for_status()


async def _flip(
    statuses: WorkerStatuses,
    admin: httpx.AsyncClient,
    flags: FlagdFileStore,
    records: list[Request],
    pids: Collection[int],
) -> dict[str, Any]:
    await _rearm_all(statuses, admin)
    flags.set_side(FLAG_KEY, Side.CANARY)
    await statuses.wait_all("reads the canary", lambda group: group["last_flag_value"] == Side.CANARY.value)
    before = len(records)
    start_wall = time.time()
    start = time.perf_counter()
    probing = asyncio.create_task(confirm_stable(admin, pids))
    answer = await admin.post(
        "/canary/rollback", json={"model_group": GROUP, "reason": "bench proxy workers"}, headers=CLOSE
    )
    returned = time.perf_counter()
    if answer.is_error:
        probing.cancel()
        answer.raise_for_status()
    confirmed = await probing
    deadline = time.perf_counter() + WAIT_S
    while not (after := [r for r in records[before:] if r.started >= start]):
        if time.perf_counter() > deadline:  # the flip's figures need a request begun after the call
            raise RuntimeError(f"no request began after the rollback call within {WAIT_S:g} s")
        await asyncio.sleep(0.01)
    late_canary = [r.started - start for r in after if r.ok and r.model_id == CANARY_ID]
    return {
        "follower_latch_ms": _follower_latch_ms(await statuses.collect(), start_wall),
        "propagation_ms": round(max(late_canary, default=0.0) * 1e3, 1),
        "confirmed_ms": round((confirmed.at - start) * 1e3, 1),
        "rollback_call_ms": round((returned - start) * 1e3, 1),
        "probes": len(confirmed.probe_rtts_s),
        "probe_rtt_ms": round(statistics.median(confirmed.probe_rtts_s) * 1e3, 1),
        "probe_regressions": confirmed.regressions,
        "canary_after_rollback_returned": sum(
            r.started >= returned for r in after if r.model_id == CANARY_ID
        ),
        "requests_after_rollback": len(after),
        "failed_after_rollback": sum(not r.ok for r in after),
    }


def _follower_latch_ms(statuses: dict[int, dict[str, Any]], since_wall: float) -> float | None:
    """How long after the worker that took the rollback latched the last other worker latched (each
    one's own ``last_rollback.latched_at``, wall clock, ms precision); None when some worker did not
    latch for this flip (it may still route stable through the flag it read)."""
    latched = []
    for group in statuses.values():
        record = group.get("last_rollback") or {}
        at = parse_wall(record["latched_at"]) if record.get("latched_at") else None
        if at is None or at < since_wall - 0.001:  # ms precision
            return None
        latched.append(at)
    return round((max(latched) - min(latched)) * 1e3, 1)


async def measure_propagation(
    target: Target, token: str, flags: FlagdFileStore, workers: int, flips: int
) -> dict[str, Any]:
    """Every worker attached, then one untimed first flip and ``flips`` rollbacks under traffic; the
    per-flip figures (the first one's apart)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=f"{target.url}/litellm-canary", headers=headers, timeout=10.0
    ) as admin:
        statuses = WorkerStatuses(admin, workers)
        pids = sorted(await statuses.collect())
        client = client_for(target, reconnect=True)
        records: list[Request] = []
        stop = asyncio.Event()
        traffic = asyncio.create_task(_traffic(client, stop, records))
        try:
            # The first flip of a process pays one-time costs (imports, first connections): kept
            # apart, so the quantiles are those of a warm proxy; it is reported as it was.
            first = await _flip(statuses, admin, flags, records, pids)
            rows = [await _flip(statuses, admin, flags, records, pids) for _ in range(flips)]
        finally:
            stop.set()
            await traffic
            await client.close()
    return {
        "worker_pids": pids,
        "first_flip": first,
        "flips": rows,
        "requests": len(records),
        "failed": sum(not r.ok for r in records),
    }

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
3. probe ``GET <mount>/canary/route?group=chat&user=...`` (the worker runs its routing decision, no
   upstream call), each probe on a new connection so either worker may answer, until every worker
   pid has answered ``stable`` after the rollback call returned; and wait until a request begun
   after the rollback call has finished.

``propagation_ms`` of a flip is the start of the last request served by the canary (the
``x-litellm-model-id`` header) that began after the rollback call, measured from that call (0 when
none): how long after the rollback some worker still routed to the canary (real traffic).
``confirmed_ms`` is from the rollback call to the arrival of the probe answer that completed "every
worker answered stable": an upper bound of the propagation, one probe round trip included
(``probe_rtt_ms``). ``probe_regressions`` counts canary answers from a worker that had already
answered stable (0 expected). The worker that takes the rollback latches at once; the other follows
the flag file within its poll interval.
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

__all__ = ["StableConfirmation", "WorkerStatuses", "confirm_stable", "measure_propagation"]

TRAFFIC_CLIENTS = 8
WAIT_S = 60.0  # generous bound for each wait on a loaded machine
CLOSE = {"Connection": "close"}  # a new connection per admin call, so either worker may answer it
PROBE_USER = "bench-workers-probe"
PROBE_PAUSE_S = 0.002  # between route probes: let the traffic run


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
    regressions: int  # canary answers from a worker that had answered stable before


async def confirm_stable(admin: httpx.AsyncClient, pids: Collection[int]) -> StableConfirmation:
    """Probe ``GET /canary/route`` (a new connection each) until every worker in ``pids`` answered
    that a new request goes to stable."""
    stable: set[int] = set()
    rtts: list[float] = []
    regressions = 0
    deadline = time.perf_counter() + WAIT_S
    params = {"group": GROUP, "user": PROBE_USER}
    while True:
        sent = time.perf_counter()
        answer = await admin.get("/canary/route", params=params, headers=CLOSE)
        arrived = time.perf_counter()
        answer.raise_for_status()
        rtts.append(arrived - sent)
        body = answer.json()
        pid = int(body["pid"])
        if body["side"] == Side.STABLE.value:
            stable.add(pid)
        elif pid in stable:
            regressions += 1
        if stable >= set(pids):
            return StableConfirmation(arrived, rtts, regressions)
        if arrived > deadline:
            raise RuntimeError(
                f"timed out after {WAIT_S:g} s probing until every worker routes stable: "
                f"{sorted(stable)} of {sorted(pids)} did"
            )
        await asyncio.sleep(PROBE_PAUSE_S)


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
    start = time.perf_counter()
    answer = await admin.post(
        "/canary/rollback", json={"model_group": GROUP, "reason": "bench proxy workers"}, headers=CLOSE
    )
    returned = time.perf_counter()
    answer.raise_for_status()
    confirmed = await confirm_stable(admin, pids)
    deadline = time.perf_counter() + WAIT_S
    while not (after := [r for r in records[before:] if r.started >= start]):
        if time.perf_counter() > deadline:  # the flip's figures need a request begun after the call
            raise RuntimeError(f"no request began after the rollback call within {WAIT_S:g} s")
        await asyncio.sleep(0.01)
    late_canary = [r.started - start for r in after if r.ok and r.model_id == CANARY_ID]
    return {
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


async def measure_propagation(
    target: Target, token: str, flags: FlagdFileStore, workers: int, flips: int
) -> dict[str, Any]:
    """Every worker attached, then ``flips`` rollbacks under traffic; the per-flip figures."""
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
            rows = [await _flip(statuses, admin, flags, records, pids) for _ in range(flips)]
        finally:
            stop.set()
            await traffic
            await client.close()
    return {
        "worker_pids": pids,
        "flips": rows,
        "requests": len(records),
        "failed": sum(not r.ok for r in records),
    }

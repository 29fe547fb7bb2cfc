"""How long a rollback takes to reach every replica: through the flag file, and through Redis.

Setup. ``--replicas`` gateway processes (``litellm-canary serve``: a real ``litellm.Router`` with the
canary attached, uvicorn, one worker each) share one flagd flag file (``flag_store: flagd_file``,
polled every ``--poll-ms``) and one ``redis-server`` on loopback (``broadcast: redis``). Their group
``chat`` has a stable and a canary deployment, two ``FakeUpstream`` servers answering ``"stable"``
and ``"canary"`` — so every response says which deployment served it.

Measurement. ``--probes`` chat-completion loops per replica (default 1, back to back, or
``--traffic-rps`` each) run all along: the replicas are under traffic. For each path, ``--flips``
times:

* wait until every replica serves the canary (flag canary, latch armed);
* ``t0 = perf_counter()``, then the rollback call: for ``flag_file`` the flag-file write
  (``FlagdFileStore.set_side(stable)``, what ``litellm-canary rollback --config`` does), for
  ``redis`` the publish (``publish_change``: connect, Lua script, PUBLISH — what the CLI does when
  the config has a broadcast; the flag file is left alone, so only the broadcast can flip it);
* right after the call, a sweep probes every replica every ``--sweep-ms`` (at most
  ``--sweep-inflight`` unanswered per replica) until each has answered from stable. The probe is
  the routing-only ``GET /canary/route?group=chat`` (the replica runs its decision, no upstream
  call); ``--probe chat`` uses chat completions instead (the measurement before the routing probe
  existed, which includes a round trip through LiteLLM);
* a replica has certainly switched by the time its first answer from stable *arrived* (the switch
  does not go back). ``p50_ms`` / ``p99_ms`` / ``max_ms`` are, per flip, the slowest replica's such
  time minus ``t0``: strict upper bounds that include up to one probe round trip (``probe_rtt_ms``,
  the median; a busy replica answers the probe after the request work its event loop is doing).
  ``lower_bound_*`` is the latest *send* of a probe a replica still answered from the canary: the
  true time lies in between. ``latch_ms_*`` (redis): the slowest replica's own latch time, which
  the routing probe reports (``latched_at``), minus the wall-clock time at ``t0`` — the propagation
  alone (same host: one clock). ``regressions`` counts canary answers to probes sent after their
  replica had answered from stable (must be 0). ``call_ms_*`` is the rollback call alone;
  ``status_latch_ms_*`` cross-checks with each replica's rollback record (1 ms resolution);
* re-arm (flag back to canary, or a published re-arm) and wait for every replica to serve canary.

Each path starts with one untimed rollback and re-arm (the first publish imports redis-py). Each
rollback is sent after a random pause of up to one poll interval, so that it does not always come
right after the replicas' last poll (which would make every flag-file flip its worst case).

Output: one JSON list on one line, one object per path: ``{"replicas", "flips", "path", "p50_ms",
"p99_ms", "max_ms", "probe_rtt_ms", ...}``. The figures depend on the machine's load: compare the
paths within one run. Targets (reported, not enforced): flag file p99 <= ``--poll-ms`` + 50 ms,
Redis p99 <= 50 ms.

    python benchmarks/propagation.py [--replicas N] [--flips N] [--poll-ms MS] [--json] [--quick]
                                     [--probes K] [--traffic-rps R] [--probe route|chat]
                                     [--sweep-ms MS] [--sweep-inflight K]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx

from litellm_canary.core.config import BroadcastConfig
from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagdFileStore
from litellm_canary.integrations.broadcast import publish_change
from litellm_canary.testing.fake_upstream import FakeUpstream
from litellm_canary.testing.gateway_process import GatewayProcess
from litellm_canary.testing.redis_server import RedisServer

REDIS_TARGET_MS = 50.0  # p99 across the replicas
FLAG_FILE_MARGIN_MS = 50.0  # the flag-file target: p99 <= the poll interval + this
FLAG_KEY = "chat-canary"
TOKEN = "propagation-benchmark-token"
FLIP_TIMEOUT_S = 15.0


@dataclass
class Probe:
    """One probe loop: sends requests to one replica back to back."""

    url: str
    replica: int
    rtts: list[float] = field(default_factory=list)
    errors: int = 0


@dataclass
class Flip:
    """One change being watched: per replica, every request sent after ``t0`` and who answered it."""

    replicas: int
    target: str = "canary"
    t0: float = math.inf
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    answers: list[tuple[int, float, float, bool]] = field(
        default_factory=list
    )  # replica, sent, received, new?
    in_flight: dict[int, tuple[int, float]] = field(default_factory=dict)  # request number -> replica, sent
    cutoff: dict[int, float] = field(default_factory=dict)  # replica -> certainly switched by then
    t0_wall: float = math.inf  # time.time() at t0
    latched_at: dict[int, float] = field(default_factory=dict)  # replica -> its own latch (Unix time)
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    def sending(self, replica: int, sent: float) -> int:
        number = next(self._numbers)
        self.in_flight[number] = (replica, sent)
        return number

    def record(self, number: int, received: float, side: str | None) -> None:
        replica, sent = self.in_flight.pop(number)
        if side is not None and sent >= self.t0:  # sent before the change: says nothing about it
            self.answers.append((replica, sent, received, side == self.target))
        self.changed.set()

    def switched_by(self, replica: int) -> float | None:
        """When ``replica`` had certainly switched: the earliest answer from the new side (it was
        routed before it arrived; the switch is monotonic). None until there is one."""
        return min((a[2] for a in self.answers if a[0] == replica and a[3]), default=None)

    def lower_bound(self) -> float:
        """Some replica still routed the old side after this: the latest send answered by it."""
        return max((a[1] for a in self.answers if not a[3]), default=self.t0)

    def regressions(self) -> int:
        """Old-side answers to requests sent after their replica had answered from the new side."""
        return sum(
            1
            for replica, sent, _, new in self.answers
            if not new and replica in self.cutoff and sent > self.cutoff[replica]
        )


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def _probe(
    client: httpx.AsyncClient, probe: Probe, flips: list[Flip], measure: bool, interval_s: float
) -> None:
    """Chat completions on one replica, one at a time, started every ``interval_s`` (0: back to back):
    the traffic. With ``measure`` (the chat probe) their answers also count as observations of the
    switch; with the routing probe they do not."""
    body = {"model": "chat", "messages": [{"role": "user", "content": "which side?"}]}
    next_start = time.perf_counter()
    while True:
        if interval_s > 0:  # pacing, not waiting for a condition: the load is a rate
            next_start = max(next_start + interval_s, time.perf_counter())
            await asyncio.sleep(max(0.0, next_start - time.perf_counter()))
        flip = flips[-1] if measure else None  # the change current when this request was sent
        sent = time.perf_counter()
        number = flip.sending(probe.replica, sent) if flip is not None else 0
        side = None
        try:
            response = await client.post(f"{probe.url}/v1/chat/completions", json=body)
            response.raise_for_status()
            side = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, KeyError, ValueError):
            probe.errors += 1
        finally:
            received = time.perf_counter()
            if flip is not None:
                flip.record(number, received, side)
        if side is not None:
            probe.rtts.append(received - sent)


@dataclass(frozen=True)
class FlipTime:
    upper_ms: float  # every replica had answered a request from the new side this long after t0
    call_ms: float  # the rollback call itself
    switch_ms: float | None  # the slowest replica's own latch time after t0 (redis; route probe)
    flip: Flip  # its answers keep arriving: the lower bound and regressions are computed at the end

    @property
    def lower_ms(self) -> float:
        return (self.flip.lower_bound() - self.flip.t0) * 1e3


_BODY = {"model": "chat", "messages": [{"role": "user", "content": "which side?"}]}


class Sweeper:
    """Right after a rollback call, probes every replica every ``interval_s`` (at most
    ``max_inflight`` unanswered per replica) until each has answered from the new side, so that the
    send times sample the switch finely.

    A probe is ``GET /canary/route?group=chat`` (``probe="route"``: the replica runs its routing
    decision for the group and answers the side, no upstream call) or, with ``probe="chat"``, a chat
    completion through LiteLLM answered by the deployment that served it (the measurement before the
    routing probe existed: it includes a request round trip through LiteLLM)."""

    def __init__(
        self,
        urls: list[str],
        interval_s: float,
        max_inflight: int,
        headers: dict[str, str],
        probe: Literal["route", "chat"] = "route",
    ) -> None:
        self.urls = urls
        self.interval_s = interval_s
        self.max_inflight = max_inflight
        self.probe = probe
        self.client = httpx.AsyncClient(
            timeout=30, limits=httpx.Limits(max_connections=len(urls) * max_inflight), headers=headers
        )
        self.tasks: set[asyncio.Task[None]] = set()
        self.errors = 0
        self.rtts: list[float] = []

    async def _ask(self, replica: int) -> tuple[str, float | None]:
        """The side this replica routes to now, and when it latched (None: not latched, or unknown)."""
        if self.probe == "chat":
            response = await self.client.post(f"{self.urls[replica]}/v1/chat/completions", json=_BODY)
            response.raise_for_status()
            return str(response.json()["choices"][0]["message"]["content"]), None
        response = await self.client.get(f"{self.urls[replica]}/canary/route", params={"group": "chat"})
        response.raise_for_status()
        answer = response.json()
        latched_at = answer.get("latched_at")
        return str(answer["side"]), float(latched_at) if latched_at is not None else None

    async def _one(self, replica: int, flip: Flip, number: int, inflight: list[int]) -> None:
        side = None
        sent = time.perf_counter()
        try:
            side, latched_at = await self._ask(replica)
            if latched_at is not None and side == flip.target and latched_at >= flip.t0_wall:
                flip.latched_at[replica] = max(latched_at, flip.latched_at.get(replica, latched_at))
        except (httpx.HTTPError, KeyError, ValueError):
            self.errors += 1
        finally:
            received = time.perf_counter()
            inflight[replica] -= 1
            flip.record(number, received, side)
        if side is not None:
            self.rtts.append(received - sent)

    async def sweep(self, flip: Flip, stop: asyncio.Event) -> None:
        inflight = [0] * len(self.urls)
        while not stop.is_set():
            for replica in range(len(self.urls)):
                if replica in flip.cutoff or inflight[replica] >= self.max_inflight:
                    continue
                inflight[replica] += 1
                number = flip.sending(replica, time.perf_counter())  # now: the next flip waits for it
                task = asyncio.create_task(self._one(replica, flip, number, inflight))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()


async def _flip(
    flips: list[Flip], sweeper: Sweeper, target: str, action: Callable[[], None]
) -> FlipTime | None:
    """Run ``action``; return once every replica visibly switched to ``target`` (None: timed out)."""
    replicas = len(sweeper.urls)
    previous = flips[-1]
    flip = Flip(replicas, target)
    flips.append(flip)  # new requests go here (and count once t0 is set)
    while previous.in_flight:  # the previous flip's requests must not see this change
        previous.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(previous.changed.wait(), FLIP_TIMEOUT_S)
    flip.t0_wall = time.time()
    flip.t0 = t0 = time.perf_counter()
    action()  # blocking on purpose: no request is sent while the call runs; replies still arrive
    called = time.perf_counter()
    stop = asyncio.Event()
    sweep = asyncio.create_task(sweeper.sweep(flip, stop))
    deadline = called + FLIP_TIMEOUT_S
    try:
        while True:
            for replica in range(replicas):
                if replica not in flip.cutoff and (switched := flip.switched_by(replica)) is not None:
                    flip.cutoff[replica] = switched
            if len(flip.cutoff) == replicas:
                break
            flip.changed.clear()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flip.changed.wait(), remaining)
    finally:
        stop.set()
        await sweep
    switch_ms = (
        (max(flip.latched_at.values()) - flip.t0_wall) * 1e3 if len(flip.latched_at) == replicas else None
    )
    return FlipTime(
        upper_ms=(max(flip.cutoff.values()) - t0) * 1e3,
        call_ms=(called - t0) * 1e3,
        switch_ms=switch_ms,
        flip=flip,
    )


async def _latch_delay_ms(client: httpx.AsyncClient, gateways: list[GatewayProcess]) -> float:
    """From each replica's own rollback record: its latch time minus the publish time, slowest
    replica (wall clock, millisecond resolution; a cross-check of the probes, not the measurement)."""
    delays = []
    for gateway in gateways:
        status = (await client.get(f"{gateway.url}/canary/status", headers=gateway.headers)).json()
        record = status["groups"]["chat"]["last_rollback"]
        decided = datetime.fromisoformat(record["decided_at"])
        published = datetime.fromisoformat(record["cause"]["origin_at"])
        delays.append((decided - published).total_seconds() * 1e3)
    return max(delays)


def _summary(path: str, flip_times: list[FlipTime], flips: int, target: float) -> dict[str, Any]:
    def ms(values: list[float], q: float | None = None) -> float | None:
        if not values:
            return None
        return round(statistics.median(values) if q is None else _percentile(values, q), 2)

    upper = [t.upper_ms for t in flip_times]
    switch = [t.switch_ms for t in flip_times if t.switch_ms is not None]
    lower = [t.lower_ms for t in flip_times]
    p99 = ms(upper, 0.99)
    return {
        "path": path,
        "flips": flips,
        "p50_ms": ms(upper),
        "p99_ms": p99,
        "max_ms": ms(upper, 1.0),
        "min_ms": ms(upper, 0.0),
        "lower_bound_p50_ms": ms(lower),
        "lower_bound_p99_ms": ms(lower, 0.99),
        "call_ms_p50": ms([t.call_ms for t in flip_times]),
        "call_ms_p99": ms([t.call_ms for t in flip_times], 0.99),
        # from each replica's own latch time (the routing probe reports it): propagation alone
        "latch_ms_p50": ms(switch),
        "latch_ms_p99": ms(switch, 0.99),
        "latch_ms_max": ms(switch, 1.0),
        "latch_flips": len(switch),
        "reached_every_replica": len(flip_times),
        "regressions": sum(t.flip.regressions() for t in flip_times),
        "target_p99_ms": target,
        "meets_target": p99 is not None and p99 <= target and len(flip_times) == flips,
    }


async def _measure(
    gateways: list[GatewayProcess],
    flag_file: Path,
    broadcast: BroadcastConfig,
    flips: int,
    poll_ms: int,
    probes_per_replica: int,
    sweep_ms: float,
    sweep_inflight: int,
    probe: Literal["route", "chat"],
    traffic_rps: float,
) -> list[dict[str, Any]]:
    replicas = len(gateways)
    probes = [Probe(g.url, i) for i, g in enumerate(gateways) for _ in range(probes_per_replica)]
    watched: list[Flip] = [Flip(replicas)]
    store = FlagdFileStore(flag_file)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(timeout=30, limits=limits) for _ in probes]
    status_client = httpx.AsyncClient(timeout=30)
    sweeper = Sweeper([g.url for g in gateways], sweep_ms / 1e3, sweep_inflight, gateways[0].headers, probe)
    measure = probe == "chat"
    tasks = [
        asyncio.create_task(_probe(c, p, watched, measure, 1 / traffic_rps if traffic_rps else 0.0))
        for c, p in zip(clients, probes, strict=True)
    ]

    def publish(op: Literal["rollback", "rearm"]) -> Callable[[], None]:
        def call() -> None:
            publish_change(broadcast, "chat", op, reason="benchmark", origin="benchmark")

        return call

    paths: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
        "flag_file": (
            lambda: store.set_side(FLAG_KEY, Side.STABLE),
            lambda: store.set_side(FLAG_KEY, Side.CANARY),
        ),
        "redis": (publish("rollback"), publish("rearm")),
    }
    results = []
    phase = random.Random()
    try:
        if await _flip(watched, sweeper, "canary", lambda: None) is None:  # all up and warmed up
            raise RuntimeError("the replicas did not all serve the canary at start")
        for path, (rollback, rearm) in paths.items():
            # One untimed rollback and re-arm first: the first publish imports redis-py (~0.3 s), the
            # first script run and the provider's first reload are not what is measured.
            for target, action in (("stable", rollback), ("canary", rearm)):
                if await _flip(watched, sweeper, target, action) is None:
                    raise RuntimeError(f"{path}: the warm-up flip to {target} did not reach every replica")
            flip_times: list[FlipTime] = []
            rearm_times: list[float] = []
            rtts_before = [len(p.rtts) for p in probes]
            probe_rtts_before = len(sweeper.rtts)
            latch_ms: list[float] = []
            for _ in range(flips):
                # A random phase, not a wait for a condition: the previous re-arm was seen right after
                # the replicas' flag-file poll, so a rollback sent at once would always wait out a
                # whole poll interval (every flip the worst case); rollbacks come at any time.
                await asyncio.sleep(phase.uniform(0, poll_ms / 1e3))
                elapsed = await _flip(watched, sweeper, "stable", rollback)
                if elapsed is not None:
                    flip_times.append(elapsed)
                if path == "redis":
                    latch_ms.append(await _latch_delay_ms(status_client, gateways))
                back = await _flip(watched, sweeper, "canary", rearm)
                if back is None:
                    raise RuntimeError(f"{path}: the replicas did not return to the canary after a re-arm")
                rearm_times.append(back.upper_ms)
            rtts = [rtt for p, n in zip(probes, rtts_before, strict=True) for rtt in p.rtts[n:]]
            probe_rtts = sweeper.rtts[probe_rtts_before:] + (rtts if measure else [])
            target = poll_ms + FLAG_FILE_MARGIN_MS if path == "flag_file" else REDIS_TARGET_MS
            probe_rtt = round(statistics.median(probe_rtts) * 1e3, 2) if probe_rtts else None
            results.append(
                {
                    "replicas": replicas,
                    **_summary(path, flip_times, flips, target),
                    "probe": probe,
                    "probe_rtt_ms": probe_rtt,
                    "rearm_p50_ms": round(statistics.median(rearm_times), 2),
                    "status_latch_ms_p50": round(statistics.median(latch_ms), 1) if latch_ms else None,
                    "status_latch_ms_max": round(max(latch_ms), 1) if latch_ms else None,
                    "probe_rtt_ms_median": probe_rtt,
                    "probe_rtt_ms_p99": round(_percentile(probe_rtts, 0.99) * 1e3, 2) if probe_rtts else None,
                    "probe_requests": len(probe_rtts),
                    "traffic_rtt_ms_median": round(statistics.median(rtts) * 1e3, 2) if rtts else None,
                    "traffic_requests": len(rtts),
                    "traffic_loops_per_replica": probes_per_replica,
                    "traffic_rps_per_loop": traffic_rps or "back to back",
                    "poll_ms": poll_ms if path == "flag_file" else None,
                    "replica_kind": "litellm-canary serve processes (real litellm.Router)",
                    "probe_errors": sum(p.errors for p in probes) + sweeper.errors,
                    "sweep_ms": sweep_ms,
                }
            )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in [*clients, status_client]:
            await client.aclose()
        await sweeper.close()
    return results


def run(
    replicas: int,
    flips: int,
    poll_ms: int,
    probes_per_replica: int = 1,
    sweep_ms: float = 5.0,
    sweep_inflight: int = 2,
    probe: Literal["route", "chat"] = "route",
    traffic_rps: float = 0.0,
) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="propagation-") as temp:
        directory = Path(temp)
        flag_file = directory / "flags.json"
        FlagdFileStore(flag_file).set_side(FLAG_KEY, Side.CANARY)
        upstreams = {
            "chat-stable": FakeUpstream("chat-stable", answer="stable").start(),
            "chat-canary": FakeUpstream("chat-canary", answer="canary").start(),
        }
        gateways: list[GatewayProcess] = []
        try:
            with RedisServer() as redis_server:
                broadcast = BroadcastConfig(kind="redis", url=redis_server.url, channel="propagation")
                config = {
                    "model_list": [u.deployment("chat", d) for d, u in upstreams.items()],
                    "litellm_canary": {
                        "rollouts": [
                            {
                                "model_group": "chat",
                                "stable": ["chat-stable"],
                                "canary": ["chat-canary"],
                                "flag_key": FLAG_KEY,
                                "triggers": {
                                    name: False
                                    for name in (
                                        "error_rate",
                                        "ttft_p99",
                                        "fast_fail",
                                        "eval_score",
                                        "cooldown",
                                    )
                                },
                            }
                        ],
                        "flag_store": {"kind": "flagd_file", "path": str(flag_file), "poll_ms": poll_ms},
                        "broadcast": broadcast.model_dump(mode="json"),
                    },
                }
                gateways = [GatewayProcess(directory, config, token=TOKEN) for _ in range(replicas)]
                with ThreadPoolExecutor(replicas) as pool:
                    list(pool.map(lambda g: g.start(timeout=120), gateways))
                return asyncio.run(
                    _measure(
                        gateways,
                        flag_file,
                        broadcast,
                        flips,
                        poll_ms,
                        probes_per_replica,
                        sweep_ms,
                        sweep_inflight,
                        probe,
                        traffic_rps,
                    )
                )
        finally:
            for gateway in gateways:
                gateway.stop()
            for upstream in upstreams.values():
                upstream.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3, help="gateway processes (default 3)")
    parser.add_argument("--flips", type=int, default=20, help="rollbacks per path (default 20)")
    parser.add_argument("--poll-ms", type=int, default=100, help="flag file poll interval (default 100)")
    parser.add_argument(
        "--probes",
        type=int,
        default=1,
        help="traffic: chat-completion loops per replica, running all along (default 1)",
    )
    parser.add_argument(
        "--traffic-rps",
        type=float,
        default=0.0,
        help="requests per second of each traffic loop (default 0: back to back)",
    )
    parser.add_argument(
        "--probe",
        choices=("route", "chat"),
        default="route",
        help="what observes the switch: GET /canary/route (default) or chat requests (the old way)",
    )
    parser.add_argument(
        "--sweep-ms", type=float, default=5.0, help="after a rollback call, a request per replica this often"
    )
    parser.add_argument("--sweep-inflight", type=int, default=2, help="unanswered sweep requests per replica")
    parser.add_argument("--quick", action="store_true", help="3 flips per path (a smoke test)")
    parser.add_argument("--json", action="store_true", help="print one JSON list on stdout")
    args = parser.parse_args(argv)
    if min(args.replicas, args.flips, args.probes, args.sweep_inflight) < 1 or args.poll_ms < 10:
        parser.error("--replicas, --flips, --probes, --sweep-inflight must be >= 1, --poll-ms >= 10")
    if args.traffic_rps < 0:
        parser.error("--traffic-rps must be >= 0")
    if not args.sweep_ms > 0:
        parser.error("--sweep-ms must be > 0")
    flips = 3 if args.quick else args.flips
    results = run(
        args.replicas,
        flips,
        args.poll_ms,
        args.probes,
        args.sweep_ms,
        args.sweep_inflight,
        args.probe,
        args.traffic_rps,
    )
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            verdict = "meets" if r["meets_target"] else "MISSES"
            print(
                f"{r['path']:>9}: {r['replicas']} replicas, {r['reached_every_replica']}/{r['flips']} flips "
                f"reached every replica; p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms "
                f"({verdict} p99 <= {r['target_p99_ms']:g} ms); lower bound p50 "
                f"{r['lower_bound_p50_ms']} ms; {r['probe']} probe round trip {r['probe_rtt_ms']} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

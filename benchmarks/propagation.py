"""How long a rollback takes to reach every replica: through the flag file, and through Redis.

Setup. ``--replicas`` gateway processes (``litellm-canary serve``: a real ``litellm.Router`` with the
canary attached, uvicorn, one worker each) share one flagd flag file (``flag_store: flagd_file``,
polled every ``--poll-ms``) and one ``redis-server`` on loopback (``broadcast: redis``). Their group
``chat`` has a stable and a canary deployment, two ``FakeUpstream`` servers answering ``"stable"``
and ``"canary"`` — so every response says which deployment served it.

Measurement. ``--probes`` coroutines per replica (default 2) each send chat completions back to back
and record ``(sent, received, side)``. For each path, ``--flips`` times:

* wait until every replica serves the canary (flag canary, latch armed);
* ``t0 = perf_counter()``, then the rollback call: for ``flag_file`` the flag-file write
  (``FlagdFileStore.set_side(stable)``, what ``litellm-canary rollback --config`` does), for
  ``redis`` the publish (``publish_change``: connect, Lua script, PUBLISH — what the CLI does when
  the config has a broadcast; the flag file is left alone, so only the broadcast can flip it);
* right after the call, a sweep adds a request to every replica every ``--sweep-ms`` (at most
  ``--sweep-inflight`` unanswered per replica) until each has answered from stable;
* a replica has certainly switched by the time its first answer from stable *arrived* (that request
  was routed before it arrived, and a switch does not go back). ``p50_ms`` / ``p99_ms`` /
  ``max_ms`` are, per flip, the slowest replica's such time minus ``t0``: strict upper bounds that
  include up to a request round trip (``probe_rtt_ms_median``). ``lower_bound_*`` is the latest
  *send* of a request a replica still answered from the canary: the true time lies in between.
  ``regressions`` counts canary answers to requests sent after their replica had answered from
  stable (must be 0). ``call_ms_p50`` is the rollback call alone; for redis,
  ``status_latch_ms_*`` cross-checks with each replica's own rollback record (latch time minus
  publish time, wall clock, 1 ms resolution);
* re-arm (flag back to canary, or a published re-arm) and wait for every replica to serve canary.

Output: one JSON list on one line, one object per path:
``{"replicas", "flips", "path", "p50_ms", "p99_ms", "max_ms", ...}``. The figures depend on the
machine's load (the probes' round trip through LiteLLM bounds the resolution): compare the paths
within one run, and keep the round trip in mind. Targets (reported, not enforced): flag file
p99 <= 500 ms, Redis p99 <= 50 ms.

    python benchmarks/propagation.py [--replicas N] [--flips N] [--poll-ms MS] [--json] [--quick]
                                     [--probes K] [--sweep-ms MS] [--sweep-inflight K]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
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

TARGETS_MS = {"flag_file": 500.0, "redis": 50.0}
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


async def _probe(client: httpx.AsyncClient, probe: Probe, flips: list[Flip]) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "which side?"}]}
    while True:
        flip = flips[-1]  # the change current when this request was sent
        sent = time.perf_counter()
        number = flip.sending(probe.replica, sent)
        side = None
        try:
            response = await client.post(f"{probe.url}/v1/chat/completions", json=body)
            response.raise_for_status()
            side = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, KeyError, ValueError):
            probe.errors += 1
        finally:
            received = time.perf_counter()
            flip.record(number, received, side)
        if side is not None:
            probe.rtts.append(received - sent)


@dataclass(frozen=True)
class FlipTime:
    upper_ms: float  # every replica had answered a request from the new side this long after t0
    call_ms: float  # the rollback call itself
    flip: Flip  # its answers keep arriving: the lower bound and regressions are computed at the end

    @property
    def lower_ms(self) -> float:
        return (self.flip.lower_bound() - self.flip.t0) * 1e3


_BODY = {"model": "chat", "messages": [{"role": "user", "content": "which side?"}]}


class Sweeper:
    """Right after a rollback call, sends a request to every replica every ``interval_s`` (at most
    ``max_inflight`` unanswered per replica) until each has answered from the new side, so that the
    send times sample the switch finely however slow one round trip is."""

    def __init__(self, urls: list[str], interval_s: float, max_inflight: int) -> None:
        self.urls = urls
        self.interval_s = interval_s
        self.max_inflight = max_inflight
        self.client = httpx.AsyncClient(
            timeout=30, limits=httpx.Limits(max_connections=len(urls) * max_inflight)
        )
        self.tasks: set[asyncio.Task[None]] = set()
        self.errors = 0

    async def _one(self, replica: int, flip: Flip, number: int, inflight: list[int]) -> None:
        side = None
        try:
            response = await self.client.post(f"{self.urls[replica]}/v1/chat/completions", json=_BODY)
            response.raise_for_status()
            side = response.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, KeyError, ValueError):
            self.errors += 1
        finally:
            inflight[replica] -= 1
            flip.record(number, time.perf_counter(), side)

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
    return FlipTime(upper_ms=(max(flip.cutoff.values()) - t0) * 1e3, call_ms=(called - t0) * 1e3, flip=flip)


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


def _summary(path: str, flip_times: list[FlipTime], flips: int) -> dict[str, Any]:
    def ms(values: list[float], q: float | None = None) -> float | None:
        if not values:
            return None
        return round(statistics.median(values) if q is None else _percentile(values, q), 2)

    upper = [t.upper_ms for t in flip_times]
    lower = [t.lower_ms for t in flip_times]
    p99 = ms(upper, 0.99)
    target = TARGETS_MS[path]
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
) -> list[dict[str, Any]]:
    replicas = len(gateways)
    probes = [Probe(g.url, i) for i, g in enumerate(gateways) for _ in range(probes_per_replica)]
    watched: list[Flip] = [Flip(replicas)]
    store = FlagdFileStore(flag_file)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(timeout=30, limits=limits) for _ in probes]
    status_client = httpx.AsyncClient(timeout=30)
    sweeper = Sweeper([g.url for g in gateways], sweep_ms / 1e3, sweep_inflight)
    tasks = [asyncio.create_task(_probe(c, p, watched)) for c, p in zip(clients, probes, strict=True)]

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
    try:
        if await _flip(watched, sweeper, "canary", lambda: None) is None:  # all up and warmed up
            raise RuntimeError("the replicas did not all serve the canary at start")
        for path, (rollback, rearm) in paths.items():
            flip_times: list[FlipTime] = []
            rearm_times: list[float] = []
            rtts_before = [len(p.rtts) for p in probes]
            latch_ms: list[float] = []
            for _ in range(flips):
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
            results.append(
                {
                    "replicas": replicas,
                    **_summary(path, flip_times, flips),
                    "rearm_p50_ms": round(statistics.median(rearm_times), 2),
                    "status_latch_ms_p50": round(statistics.median(latch_ms), 1) if latch_ms else None,
                    "status_latch_ms_max": round(max(latch_ms), 1) if latch_ms else None,
                    "probe_rtt_ms_median": round(statistics.median(rtts) * 1e3, 2),
                    "probe_requests": len(rtts),
                    "probes_per_replica": probes_per_replica,
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
        "--probes", type=int, default=1, help="background probe loops per replica (default 1)"
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
    if not args.sweep_ms > 0:
        parser.error("--sweep-ms must be > 0")
    flips = 3 if args.quick else args.flips
    results = run(args.replicas, flips, args.poll_ms, args.probes, args.sweep_ms, args.sweep_inflight)
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            verdict = "meets" if r["meets_target"] else "MISSES"
            print(
                f"{r['path']:>9}: {r['replicas']} replicas, {r['reached_every_replica']}/{r['flips']} flips "
                f"reached every replica; p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms "
                f"({verdict} p99 <= {r['target_p99_ms']:g} ms); lower bound p50 "
                f"{r['lower_bound_p50_ms']} ms; probe round trip {r['probe_rtt_ms_median']} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

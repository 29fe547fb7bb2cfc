"""``litellm-canary bench proxy``: what the canary callback costs a real LiteLLM proxy under load.

What is measured
----------------
The same ``litellm --config`` proxy runs twice against one bundled fake upstream (answers at once):
``baseline`` without the canary, ``canary`` with ``callbacks: ["litellm_canary.proxy.canary"]`` and
a flagd flag file serving the canary to ``canary_percent`` % of users (setup:
:mod:`litellm_canary.bench.proxy_setup`). In each round ``clients`` concurrent
``openai.AsyncOpenAI`` coroutines stream ``requests`` chat completions to each proxy: with the
``paired`` schedule (the default) both proxies at the same time, with ``alternating`` one after the
other, alternating which goes first (:mod:`litellm_canary.bench.proxy_load`). Reported for both,
over all rounds and per round: requests/s, latency p50/p99 (call to end of stream), TTFT p50/p99
(call to first content token), ``cpu_ms_per_request`` (the proxy process's CPU time during its
rounds, from ``/proc/<pid>/stat``, per request: :mod:`litellm_canary.bench.proc_cpu`; null with
``cpu_unavailable`` saying why where it cannot be read), failures and the deployments that served.

The comparison: ``cpu_ratio`` (canary / baseline CPU per request over all rounds; also
``cpu_ratio_round_median``), ``throughput_ratio`` (canary / baseline requests/s; also the round
median), ``p99_added_ms`` (canary p99 minus baseline p99) and the p50 / TTFT differences. For the
three targeted figures a 95 % interval: a **percentile bootstrap over rounds** (whole rounds
resampled with replacement, 2000 times, fixed seed; :mod:`litellm_canary.bench.round_stats`), and a
verdict per target: ``met`` / ``missed`` / ``not_resolved`` (the interval straddles the target).
Targets (reported, not enforced): CPU per request ratio <= 1.03, throughput ratio >= 0.97, p99
added <= 1 ms. The CPU ratio is the robust one: the machine's speed drifts between rounds, the CPU a
request costs much less, and in a paired round both proxies see the same machine. The figures and
the readable table: :mod:`litellm_canary.bench.proxy_report`.

Then, unless ``flips`` is 0, the canary proxy runs with ``--num_workers 2``: both workers attach,
and ``flips`` rollbacks sent to the proxy under traffic measure how long until every worker routes
stable (:mod:`litellm_canary.bench.proxy_workers`); target: the flag file path's ``confirmed_ms``
p99 <= the flag poll interval + 50 ms.

The load generator shares the machine with the proxies: on a small machine the wall-time figures
are the proxies and the clients together, alike for both configurations; the CPU figures are each
proxy process's own.

    litellm-canary bench proxy [--json] [--quick] [--clients N] [--requests N] [--rounds N]
        [--flips N] [--schedule paired|alternating]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from litellm_canary.bench.proc_cpu import ProcessCpu
from litellm_canary.bench.proxy_load import (
    RoundRun,
    Target,
    alternating_rounds,
    client_for,
    run_round,
    scheduled_round,
)
from litellm_canary.bench.proxy_report import NAMES, comparison, workers_figures
from litellm_canary.bench.proxy_setup import GROUP, Rig, Settings, rig, workers_proxy
from litellm_canary.bench.proxy_workers import measure_propagation
from litellm_canary.testing.redis_server import RedisServer

__all__ = ["measure"]

logger = logging.getLogger("litellm_canary.bench.proxy_overhead")


async def _load(the_rig: Rig, settings: Settings) -> dict[str, list[RoundRun]]:
    proxies = {"baseline": the_rig.baseline, "canary": the_rig.canary}
    clients = {name: client_for(Target(name, p.url, p.master_key)) for name, p in proxies.items()}
    cpus = {name: ProcessCpu(proxy.pid) for name, proxy in proxies.items()}
    runs: dict[str, list[RoundRun]] = {name: [] for name in NAMES}

    def runner(requests: int, user_prefix: str) -> Callable[[str], Awaitable[RoundRun]]:
        async def run(name: str) -> RoundRun:
            return await run_round(
                clients[name], name, GROUP, requests, settings.clients, user_prefix, cpus[name]
            )

        return run

    try:  # warm-up: connections, LiteLLM's first-call work, the flag file read
        await scheduled_round(settings.schedule, NAMES, runner(settings.warmup, "warmup"))
        for index, order in enumerate(alternating_rounds(*NAMES, settings.rounds)):
            logger.info("round %d/%d (%s): %s", index + 1, settings.rounds, settings.schedule, order)
            for run in await scheduled_round(
                settings.schedule, order, runner(settings.requests, f"r{index}")
            ):
                runs[run.target].append(run)
    finally:
        for client in clients.values():
            await client.close()
    return runs


def _workers(the_rig: Rig, settings: Settings) -> dict[str, Any] | None:
    if settings.flips == 0:
        return None
    with contextlib.ExitStack() as stack:
        broadcast_url = None
        if settings.workers_via == "redis":
            broadcast_url = stack.enter_context(RedisServer()).url
        proxy, flags = stack.enter_context(workers_proxy(the_rig, settings.workers, broadcast_url))
        target = Target("workers", proxy.url, proxy.master_key)
        result = asyncio.run(
            measure_propagation(target, proxy.token, flags, settings.workers, settings.flips)
        )
    return workers_figures(result, settings.workers, settings.workers_via)


def measure(settings: Settings) -> dict[str, Any]:
    """Run the benchmark and return its figures (the ``--json`` object)."""
    with rig(settings) as the_rig:
        logger.info(
            "proxies ready: %d %s rounds of %d requests each",
            settings.rounds,
            settings.schedule,
            settings.requests,
        )
        runs = asyncio.run(_load(the_rig, settings))
        result = {**comparison(runs, settings.schedule), "settings": asdict(settings)}
        logger.info("--num_workers %d phase: %d flips", settings.workers, settings.flips)
        result["workers_phase"] = _workers(the_rig, settings)
    return result

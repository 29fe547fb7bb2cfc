"""``litellm-canary bench proxy``: what the canary callback costs a real LiteLLM proxy under load.

What is measured
----------------
The same ``litellm --config`` proxy runs twice against one bundled fake upstream (answers at once):
``baseline`` without the canary, ``canary`` with ``callbacks: ["litellm_canary.proxy.canary"]`` and
a flagd flag file serving the canary to ``canary_percent`` % of users (setup:
:mod:`litellm_canary.bench.proxy_setup`). ``clients`` concurrent ``openai.AsyncOpenAI`` coroutines
stream ``requests`` chat completions per configuration per round, rounds alternating which proxy
goes first (:mod:`litellm_canary.bench.proxy_load`). Reported for both, over all rounds and per
round: requests/s, latency p50/p99 (call to end of stream), TTFT p50/p99 (call to first content
token), failures and the deployments that served; and the comparison: ``throughput_ratio`` (canary
/ baseline requests/s; also the median of the per-round ratios) and ``p99_added_ms`` (canary p99
minus baseline p99). Targets (reported, not enforced): ratio >= 0.97, p99 added <= 1 ms.

Then, unless ``flips`` is 0, the canary proxy runs with ``--num_workers 2``: both workers attach,
and ``flips`` rollbacks sent to the proxy under traffic measure how long until every worker routes
stable (:mod:`litellm_canary.bench.proxy_workers`).

The load generator shares the machine with the proxy: on a small machine the figures are the
proxy and the clients together, alike for both configurations.

    litellm-canary bench proxy [--json] [--quick] [--clients N] [--requests N] [--rounds N] [--flips N]
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections import Counter
from dataclasses import asdict
from typing import Any

from litellm_canary.bench.proxy_load import RoundRun, Target, alternating_rounds, client_for, run_round
from litellm_canary.bench.proxy_setup import GROUP, Rig, Settings, rig, workers_proxy
from litellm_canary.bench.proxy_workers import measure_propagation
from litellm_canary.bench.report import quantile, rounded

__all__ = ["TARGET_P99_ADDED_MS", "TARGET_THROUGHPUT_RATIO", "figures", "measure", "summary_lines"]

logger = logging.getLogger("litellm_canary.bench.proxy_overhead")

TARGET_THROUGHPUT_RATIO = 0.97
TARGET_P99_ADDED_MS = 1.0
NAMES = ("baseline", "canary")


def figures(runs: list[RoundRun]) -> dict[str, Any]:
    """requests/s, latency and TTFT quantiles, failures and served deployments of some rounds."""
    requests = [r for run in runs for r in run.requests]
    latencies = [r.latency_ms for r in requests if r.ok]
    ttfts = [r.ttft_ms for r in requests if r.ok and r.ttft_ms is not None]
    elapsed = sum(run.elapsed_s for run in runs)
    served: Counter[str] = Counter()
    for run in runs:
        served.update(run.served)
    return {
        "requests": len(requests),
        "failed": sum(run.failed for run in runs),
        "served_by": dict(sorted(served.items())),
        "requests_per_s": round(len(requests) / elapsed, 1) if elapsed else None,
        "latency_ms_p50": rounded(quantile(latencies, 0.5), 2),
        "latency_ms_p99": rounded(quantile(latencies, 0.99), 2),
        "latency_ms_max": rounded(max(latencies, default=None), 2),
        "ttft_ms_p50": rounded(quantile(ttfts, 0.5), 2),
        "ttft_ms_p99": rounded(quantile(ttfts, 0.99), 2),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 4)


def _added(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


async def _load(the_rig: Rig, settings: Settings) -> dict[str, list[RoundRun]]:
    targets = {
        "baseline": Target("baseline", the_rig.baseline.url, the_rig.baseline.master_key),
        "canary": Target("canary", the_rig.canary.url, the_rig.canary.master_key),
    }
    clients = {name: client_for(target) for name, target in targets.items()}
    runs: dict[str, list[RoundRun]] = {name: [] for name in NAMES}
    try:
        for name in NAMES:  # warm-up: connections, LiteLLM's first-call work, the flag file read
            await run_round(clients[name], name, GROUP, settings.warmup, settings.clients, "warmup")
        for index, order in enumerate(alternating_rounds(*NAMES, settings.rounds)):
            for name in order:
                logger.info("round %d/%d: %s", index + 1, settings.rounds, name)
                run = await run_round(
                    clients[name], name, GROUP, settings.requests, settings.clients, f"r{index}"
                )
                runs[name].append(run)
    finally:
        for client in clients.values():
            await client.close()
    return runs


def _comparison(runs: dict[str, list[RoundRun]]) -> dict[str, Any]:
    both = {name: figures(runs[name]) for name in NAMES}
    base, canary = both["baseline"], both["canary"]
    rounds: list[dict[str, Any]] = []
    for index, (b_run, c_run) in enumerate(zip(runs["baseline"], runs["canary"], strict=True)):
        b, c = figures([b_run]), figures([c_run])
        rounds.append(
            {
                "round": index + 1,
                "first": NAMES[index % 2],
                "baseline": {
                    k: b[k] for k in ("requests_per_s", "latency_ms_p50", "latency_ms_p99", "ttft_ms_p50")
                },
                "canary": {
                    k: c[k] for k in ("requests_per_s", "latency_ms_p50", "latency_ms_p99", "ttft_ms_p50")
                },
                "throughput_ratio": _ratio(c["requests_per_s"], b["requests_per_s"]),
                "p99_added_ms": _added(c["latency_ms_p99"], b["latency_ms_p99"]),
            }
        )
    round_ratios: list[float] = [r["throughput_ratio"] for r in rounds if r["throughput_ratio"] is not None]
    ratio = _ratio(canary["requests_per_s"], base["requests_per_s"])
    p99_added = _added(canary["latency_ms_p99"], base["latency_ms_p99"])
    return {
        **both,
        "throughput_ratio": ratio,
        "throughput_ratio_round_median": round(statistics.median(round_ratios), 4) if round_ratios else None,
        "p50_added_ms": _added(canary["latency_ms_p50"], base["latency_ms_p50"]),
        "p99_added_ms": p99_added,
        "ttft_p50_added_ms": _added(canary["ttft_ms_p50"], base["ttft_ms_p50"]),
        "ttft_p99_added_ms": _added(canary["ttft_ms_p99"], base["ttft_ms_p99"]),
        "rounds": rounds,
        "targets": {"throughput_ratio": TARGET_THROUGHPUT_RATIO, "p99_added_ms": TARGET_P99_ADDED_MS},
        "meets_targets": {
            "throughput_ratio": ratio is not None and ratio >= TARGET_THROUGHPUT_RATIO,
            "p99_added_ms": p99_added is not None and p99_added <= TARGET_P99_ADDED_MS,
        },
    }


def _workers(the_rig: Rig, settings: Settings) -> dict[str, Any] | None:
    if settings.flips == 0:
        return None
    with workers_proxy(the_rig, settings.workers) as (proxy, flags):
        target = Target("workers", proxy.url, proxy.master_key)
        result = asyncio.run(
            measure_propagation(target, proxy.token, flags, settings.workers, settings.flips)
        )
    propagation = [row["propagation_ms"] for row in result["flips"]]
    confirmed = [row["status_confirmed_ms"] for row in result["flips"]]
    return {
        "workers": settings.workers,
        **result,
        "propagation_ms_p50": rounded(quantile(propagation, 0.5)),
        "propagation_ms_max": rounded(max(propagation, default=None)),
        "status_confirmed_ms_p50": rounded(quantile(confirmed, 0.5)),
        "status_confirmed_ms_max": rounded(max(confirmed, default=None)),
    }


def measure(settings: Settings) -> dict[str, Any]:
    """Run the benchmark and return its figures (the ``--json`` object)."""
    with rig(settings) as the_rig:
        logger.info("proxies ready: %d rounds of %d requests each", settings.rounds, settings.requests)
        runs = asyncio.run(_load(the_rig, settings))
        result = {**_comparison(runs), "settings": asdict(settings)}
        logger.info("--num_workers %d phase: %d flips", settings.workers, settings.flips)
        result["workers_phase"] = _workers(the_rig, settings)
    return result


def _row(label: str, f: dict[str, Any]) -> str:
    def cell(value: float | None) -> str:
        return f"{'-' if value is None else f'{value:.2f}':>9}"

    keys = ("latency_ms_p50", "latency_ms_p99", "ttft_ms_p50", "ttft_ms_p99")
    rps = f.get("requests_per_s")
    return f"  {label:<10} {'-' if rps is None else f'{rps:.1f}':>9}  " + "  ".join(
        cell(f.get(k)) for k in keys
    )


def summary_lines(result: dict[str, Any]) -> list[str]:
    settings, met = result["settings"], result["meets_targets"]
    lines = [
        f"a LiteLLM proxy with and without the canary callback: {settings['clients']} streaming clients, "
        f"{settings['rounds']} alternating rounds of {settings['requests']} requests each",
        f"  {'':<10} {'req/s':>9}  {'p50 ms':>9}  {'p99 ms':>9}  {'TTFT p50':>9}  {'TTFT p99':>9}",
        _row("baseline", result["baseline"]),
        _row("canary", result["canary"]),
        f"  throughput ratio {result['throughput_ratio']} "
        f"(round median {result['throughput_ratio_round_median']}), "
        f"target >= {TARGET_THROUGHPUT_RATIO}: {'met' if met['throughput_ratio'] else 'MISSED'}",
        f"  p99 added {result['p99_added_ms']} ms (p50 {result['p50_added_ms']} ms), target <= "
        f"{TARGET_P99_ADDED_MS:g} ms: {'met' if met['p99_added_ms'] else 'MISSED'}",
        f"  failed: baseline {result['baseline']['failed']}, canary {result['canary']['failed']}; served by: "
        f"baseline {result['baseline']['served_by']}, canary {result['canary']['served_by']}",
        "  per round (first, baseline req/s, canary req/s, ratio, p99 added ms):",
    ]
    for r in result["rounds"]:
        rates = f"{r['baseline']['requests_per_s']:>8} {r['canary']['requests_per_s']:>8}"
        lines.append(
            f"    {r['round']:>2} {r['first']:<8} {rates}  {r['throughput_ratio']}  {r['p99_added_ms']}"
        )
    workers = result.get("workers_phase")
    if workers:
        lines.append(
            f"  --num_workers {workers['workers']}: workers {workers['worker_pids']} attached; "
            f"{len(workers['flips'])} rollbacks: last canary request "
            f"{workers['propagation_ms_p50']} ms p50 / "
            f"{workers['propagation_ms_max']} ms max after the rollback call; every worker confirmed stable "
            f"{workers['status_confirmed_ms_p50']} ms p50 / {workers['status_confirmed_ms_max']} ms max"
        )
    return lines

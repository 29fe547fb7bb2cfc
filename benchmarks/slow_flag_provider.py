"""What a slow OpenFeature provider costs each request, without and with the flag-read breaker.

What is measured
----------------
A real ``litellm.Router`` with group ``chat`` (two mocked deployments, LiteLLM's ``mock_response``,
so no network) and ``litellm_canary.attach`` (rollout ``chat``, flag ``chat-canary`` at 100 %
canary, served by the application's provider: the SDK's ``InMemoryProvider`` with a blocking delay
per evaluation, as a provider making a synchronous network call would). Three Routers with their own
canaries (distinct deployment ids, two OpenFeature domains) live in one process so that every figure
has its baseline from the same run, measured in alternating (ABBA) blocks so that the machine's
drift hits both alike:

* **fast** (the baseline): domain ``fast``, delay 0.
* **unprotected**: domain ``slow``, delay ``--delay-ms`` (200), budget 10 s so it never trips: what
  the issue measured -- the delay added to every request, and 10 concurrent requests serialised.
* **tripped**: domain ``slow`` with the default ``flag_read`` budget (50 ms): the first reads pay the
  delay and trip the breaker (``reads_before_trip``); then median latency of one request (sequential
  calls) and median wall time of 10 concurrent requests (``asyncio.gather``), as the difference and
  the ratio against *fast*. The group routes to stable without reading (``tripped_answers``,
  ``tripped_provider_reads`` = 0).
* **recovery**: the slow provider is made fast again; the breaker's background probe (back-off
  ``--backoff-s``) closes it and the group serves the canary again. ``recovery_s`` is from the
  provider turning fast to the breaker closing (bounded by the back-off left at that moment).

    python benchmarks/slow_flag_provider.py [--json] [--quick] [--requests N] [--rounds N]
                                            [--delay-ms MS] [--backoff-s S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import Counter
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm.router import Router
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

import litellm_canary
from litellm_canary.core.config import FlagReadConfig

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
CONCURRENCY = 10


class DelayedProvider(InMemoryProvider):
    """Serves ``chat-canary`` = canary; each evaluation blocks its thread for ``delay_s``."""

    def __init__(self) -> None:
        super().__init__({"chat-canary": InMemoryFlag("canary", {"canary": "canary", "stable": "stable"})})
        self.delay_s = 0.0
        self.evaluations = 0  # by requests; the breaker's probes are counted apart
        self.probes = 0

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        if evaluation_context is not None and evaluation_context.targeting_key == "litellm-canary-probe":
            self.probes += 1
        else:
            self.evaluations += 1
        if self.delay_s:
            time.sleep(self.delay_s)  # the simulated provider's own blocking call, not synchronisation
        return super().resolve_string_details(flag_key, default_value, evaluation_context)


def _router(prefix: str) -> Router:
    def deployment(side: str) -> dict[str, Any]:
        return {
            "model_name": "chat",
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "mock_response": side},
            "model_info": {"id": f"{prefix}-{side}"},
        }

    return Router(model_list=[deployment("stable"), deployment("canary")])


def _attach(prefix: str, domain: str, flag_read: dict[str, Any]) -> tuple[Router, litellm_canary.Canary]:
    router = _router(prefix)
    rollout = {
        "model_group": "chat",
        "stable": [f"{prefix}-stable"],
        "canary": [f"{prefix}-canary"],
        "flag_key": "chat-canary",
        "flag_read": flag_read,
    }
    return router, litellm_canary.attach(router, {"rollouts": [rollout], "openfeature_domain": domain})


async def _one(router: Router, i: int, answers: Counter[str]) -> float:
    start = time.perf_counter()
    response = await router.acompletion(model="chat", messages=MESSAGES, user=f"user-{i}")
    elapsed = time.perf_counter() - start
    answers[str(response.choices[0].message.content)] += 1
    return elapsed


async def _concurrent(router: Router, answers: Counter[str]) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(_one(router, i, answers) for i in range(CONCURRENCY)))
    return time.perf_counter() - start


async def _interleaved(
    baseline: Router,
    other: Router,
    n: int,
    block: int,
    rounds: int,
    answers: tuple[Counter[str], Counter[str]],
) -> dict[str, float]:
    """Sequential requests in ABBA blocks of ``block``, then ``rounds`` concurrent rounds alternating."""
    times: tuple[list[float], list[float]] = ([], [])
    routers = (baseline, other)
    for r in range(max(1, n // block)):
        for which in (0, 1) if r % 2 == 0 else (1, 0):
            for i in range(block):
                times[which].append(await _one(routers[which], i, answers[which]))
    totals: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        for which in (0, 1) if r % 2 == 0 else (1, 0):
            totals[which].append(await _concurrent(routers[which], answers[which]))
    return {
        "baseline_ms": statistics.median(times[0]) * 1000,
        "other_ms": statistics.median(times[1]) * 1000,
        "baseline_concurrent_s": statistics.median(totals[0]),
        "other_concurrent_s": statistics.median(totals[1]),
    }


def _state(canary: litellm_canary.Canary) -> str:
    return str(canary.status()["groups"]["chat"]["flag_read"]["state"])


async def run(requests: int, rounds: int, delay_ms: float, backoff_s: float) -> dict[str, Any]:
    fast_provider, slow_provider = DelayedProvider(), DelayedProvider()
    api.set_provider_and_wait(fast_provider, "fast")
    api.set_provider_and_wait(slow_provider, "slow")
    slow_provider.delay_s = delay_ms / 1000
    fast, fast_canary = _attach("fast", "fast", {})
    unprotected, unprotected_canary = _attach("unprotected", "slow", {"budget_ms": 10_000})
    tripping, tripping_canary = _attach("tripped", "slow", {"backoff_s": backoff_s})
    answers = {
        name: Counter[str]() for name in ("fast", "unprotected", "before_trip", "tripped", "recovered")
    }
    for i in range(20):  # warm-up
        await _one(fast, i, Counter())

    # The slow provider without a breaker that trips (budget 10 s): each request pays the delay.
    small = max(10, requests // 10)
    before = await _interleaved(
        fast, unprotected, small, 5, min(3, rounds), (answers["fast"], answers["unprotected"])
    )
    unprotected_canary.detach()

    # The same provider with the default budget: trips, then stable without reading.
    reads_before_trip = 0
    while _state(tripping_canary) == "closed" and reads_before_trip < 100:
        await _one(tripping, reads_before_trip, answers["before_trip"])
        reads_before_trip += 1
    evaluations = slow_provider.evaluations
    after = await _interleaved(fast, tripping, requests, 25, rounds, (answers["fast"], answers["tripped"]))
    tripped_reads = slow_provider.evaluations - evaluations  # requests that read the slow provider: 0
    breaker = tripping_canary.status()["groups"]["chat"]["flag_read"]

    # The provider is fast again: the background probe closes the breaker by itself.
    slow_provider.delay_s = 0.0
    fast_again = time.perf_counter()
    recovery_s: float | None = None
    while time.perf_counter() < fast_again + 4 * backoff_s + 10:
        if _state(tripping_canary) == "closed":
            recovery_s = time.perf_counter() - fast_again
            break
        await asyncio.sleep(0.01)  # polling a status with no event to await, in a benchmark only
    for i in range(20):
        await _one(tripping, i, answers["recovered"])
    final = tripping_canary.status()
    tripping_canary.detach()
    fast_canary.detach()

    return {
        "provider_delay_ms": delay_ms,
        "budget_ms": FlagReadConfig().budget_ms,
        "requests": requests,
        "concurrency": CONCURRENCY,
        "rounds": rounds,
        "fast_request_ms_median": round(after["baseline_ms"], 3),
        "fast_concurrent10_s_median": round(after["baseline_concurrent_s"], 4),
        "unprotected_request_ms_median": round(before["other_ms"], 3),
        "unprotected_added_ms": round(before["other_ms"] - before["baseline_ms"], 3),
        "unprotected_concurrent10_s_median": round(before["other_concurrent_s"], 4),
        "unprotected_concurrent10_ratio": round(
            before["other_concurrent_s"] / before["baseline_concurrent_s"], 2
        ),
        "reads_before_trip": reads_before_trip,
        "tripped_request_ms_median": round(after["other_ms"], 3),
        "tripped_added_ms": round(after["other_ms"] - after["baseline_ms"], 3),
        "tripped_ratio": round(after["other_ms"] / after["baseline_ms"], 3),
        "tripped_concurrent10_s_median": round(after["other_concurrent_s"], 4),
        "tripped_concurrent10_ratio": round(after["other_concurrent_s"] / after["baseline_concurrent_s"], 3),
        "tripped_provider_reads": tripped_reads,
        "probes": slow_provider.probes,
        "answers": {name: dict(counts) for name, counts in answers.items()},
        "breaker_when_tripped": breaker,
        "recovery_s": None if recovery_s is None else round(recovery_s, 3),
        "flag_errors": final["flag_errors"],
        "settings": {"backoff_s": backoff_s, "delay_ms": delay_ms},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke test)")
    parser.add_argument("--requests", type=int, default=None, help="sequential requests per phase")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of 10 concurrent requests")
    parser.add_argument("--delay-ms", type=float, default=200.0, help="the slow provider's delay")
    parser.add_argument("--backoff-s", type=float, default=2.0, help="flag_read.backoff_s of phase 3")
    args = parser.parse_args(argv)
    for name in ("requests", "rounds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1, got {value}")
    if args.delay_ms <= 0 or args.backoff_s <= 0:
        parser.error("--delay-ms and --backoff-s must be positive")
    requests = args.requests or (30 if args.quick else 300)
    rounds = args.rounds or (3 if args.quick else 30)
    result = asyncio.run(run(requests, rounds, args.delay_ms, args.backoff_s))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

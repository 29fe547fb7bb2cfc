"""What a slow OpenFeature provider costs each request, without and with the flag-read breaker.

What is measured
----------------
A real ``litellm.Router`` with group ``chat`` (two mocked deployments, LiteLLM's ``mock_response``,
so no network) and ``litellm_canary.attach`` (rollout ``chat``, flag ``chat-canary`` at 100 %
canary, served by the application's provider: the SDK's ``InMemoryProvider`` with a configurable
blocking delay per evaluation, as a provider making a synchronous network call would). Phases, all
in the same run so that every figure has its baseline next to it:

1. **fast**: delay 0. Median latency of one request (sequential calls) and the median wall time of
   10 concurrent requests (``asyncio.gather``).
2. **unprotected**: delay ``--delay-ms`` (200), breaker budget 10 s (so it never trips): what the
   issue measured -- the delay added to every request, and 10 concurrent requests serialised.
3. **tripped**: the same delay with the default ``flag_read`` budget (50 ms): the first reads pay
   the delay and trip the breaker (``reads_before_trip``); then the same two measurements. The group
   routes to stable without reading (``tripped_answers``). Reported as the difference and the ratio
   against phase 1.
4. **recovery**: the provider is made fast again; the breaker's background probe (back-off
   ``--backoff-s``) closes it, and the group serves the canary again. ``recovery_s`` is from the
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
import threading
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
from litellm_canary.config import FlagReadConfig

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


def _router() -> Router:
    def deployment(deployment_id: str, answer: str) -> dict[str, Any]:
        return {
            "model_name": "chat",
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "mock_response": answer},
            "model_info": {"id": deployment_id},
        }

    return Router(model_list=[deployment("chat-stable", "stable"), deployment("chat-canary", "canary")])


def _config(flag_read: dict[str, Any]) -> dict[str, Any]:
    return {
        "rollouts": [
            {
                "model_group": "chat",
                "stable": ["chat-stable"],
                "canary": ["chat-canary"],
                "flag_key": "chat-canary",
                "flag_read": flag_read,
            }
        ]
    }


async def _one(router: Router, i: int, answers: Counter[str]) -> float:
    start = time.perf_counter()
    response = await router.acompletion(model="chat", messages=MESSAGES, user=f"user-{i}")
    elapsed = time.perf_counter() - start
    answers[str(response.choices[0].message.content)] += 1
    return elapsed


async def _sequential_ms(router: Router, n: int, answers: Counter[str]) -> float:
    return statistics.median([await _one(router, i, answers) for i in range(n)]) * 1000


async def _concurrent_s(router: Router, rounds: int, answers: Counter[str]) -> float:
    totals = []
    for r in range(rounds):
        start = time.perf_counter()
        await asyncio.gather(*(_one(router, r * CONCURRENCY + i, answers) for i in range(CONCURRENCY)))
        totals.append(time.perf_counter() - start)
    return statistics.median(totals)


async def run(requests: int, rounds: int, delay_ms: float, backoff_s: float) -> dict[str, Any]:
    provider = DelayedProvider()
    api.set_provider_and_wait(provider)
    default_budget_ms = FlagReadConfig().budget_ms
    delay_s = delay_ms / 1000

    # 1. fast provider, 2. slow provider that never trips the breaker (budget 10 s).
    router = _router()
    canary = litellm_canary.attach(router, _config({"budget_ms": 10_000}))
    fast_answers: Counter[str] = Counter()
    for i in range(20):  # warm-up
        await _one(router, i, Counter())
    fast_ms = await _sequential_ms(router, requests, fast_answers)
    fast_concurrent_s = await _concurrent_s(router, rounds, fast_answers)
    provider.delay_s = delay_s
    unprotected_answers: Counter[str] = Counter()
    unprotected_requests = max(5, requests // 10)  # each pays the full delay
    unprotected_ms = await _sequential_ms(router, unprotected_requests, unprotected_answers)
    unprotected_concurrent_s = await _concurrent_s(router, min(3, rounds), unprotected_answers)  # 2 s each
    canary.detach()

    # 3. the same slow provider with the default budget: trips, then stable without reading.
    router = _router()
    canary = litellm_canary.attach(router, _config({"backoff_s": backoff_s}))
    before_trip: Counter[str] = Counter()
    reads_before_trip = 0
    while canary.status()["groups"]["chat"]["flag_read"]["state"] == "closed" and reads_before_trip < 100:
        await _one(router, reads_before_trip, before_trip)
        reads_before_trip += 1
    evaluations = provider.evaluations
    tripped_answers: Counter[str] = Counter()
    tripped_ms = await _sequential_ms(router, requests, tripped_answers)
    tripped_concurrent_s = await _concurrent_s(router, rounds, tripped_answers)
    tripped_reads = provider.evaluations - evaluations  # requests that read the slow provider: 0
    breaker = canary.status()["groups"]["chat"]["flag_read"]

    # 4. the provider is fast again: the background probe closes the breaker by itself.
    provider.delay_s = 0.0
    fast_again = time.perf_counter()
    closed = threading.Event()
    deadline = fast_again + 4 * backoff_s + 10
    while time.perf_counter() < deadline:
        if canary.status()["groups"]["chat"]["flag_read"]["state"] == "closed":
            closed.set()
            break
        await asyncio.sleep(0.01)  # polling a status with no event to await, in a benchmark only
    recovery_s = time.perf_counter() - fast_again if closed.is_set() else None
    recovered_answers: Counter[str] = Counter()
    for i in range(20):
        await _one(router, i, recovered_answers)
    final = canary.status()
    canary.detach()

    return {
        "provider_delay_ms": delay_ms,
        "budget_ms": default_budget_ms,
        "requests": requests,
        "concurrency": CONCURRENCY,
        "rounds": rounds,
        "fast_request_ms_median": round(fast_ms, 3),
        "fast_concurrent10_s_median": round(fast_concurrent_s, 4),
        "unprotected_request_ms_median": round(unprotected_ms, 3),
        "unprotected_added_ms": round(unprotected_ms - fast_ms, 3),
        "unprotected_concurrent10_s_median": round(unprotected_concurrent_s, 4),
        "reads_before_trip": reads_before_trip,
        "tripped_request_ms_median": round(tripped_ms, 3),
        "tripped_added_ms": round(tripped_ms - fast_ms, 3),
        "tripped_ratio": round(tripped_ms / fast_ms, 3),
        "tripped_concurrent10_s_median": round(tripped_concurrent_s, 4),
        "tripped_concurrent10_ratio": round(tripped_concurrent_s / fast_concurrent_s, 3),
        "tripped_provider_reads": tripped_reads,
        "probes": provider.probes,
        "answers": {
            "fast": dict(fast_answers),
            "unprotected": dict(unprotected_answers),
            "before_trip": dict(before_trip),
            "tripped": dict(tripped_answers),
            "recovered": dict(recovered_answers),
        },
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

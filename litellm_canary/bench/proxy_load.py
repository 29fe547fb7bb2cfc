"""``bench proxy``'s load: concurrent streaming clients (the official ``openai`` ``AsyncOpenAI``)
against a running LiteLLM proxy, and the rounds that compare two proxies.

Each round sends ``requests`` streamed chat completions to one proxy from ``clients`` concurrent
coroutines (each takes the next request number until all are sent), and records per request the
latency (call to the end of the stream), the time to the first content token (TTFT), the served
deployment (LiteLLM's ``x-litellm-model-id`` response header) and whether it failed; per round the
wall time and, given the proxy's :class:`~litellm_canary.bench.proc_cpu.ProcessCpu`, the CPU the
proxy process consumed from the round's start to its end. Every request carries a distinct end user
(the canary's stickiness key).

Two schedules (``SCHEDULES``) for the rounds of two proxies:

* ``paired``: both proxies are loaded **at the same time** in each round (their ``clients`` and
  ``requests`` each), so the machine's drift between rounds hits both alike within the round. The
  proxy that finishes first leaves the other the machine for the rest of its round, which flatters
  the slower one's wall-time figures a little; CPU per request is not affected.
* ``alternating``: one proxy after the other, alternating which goes first (A B, B A, A B, ...);
  the machine's speed may drift between the two halves of a round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from litellm_canary.bench.proc_cpu import ProcessCpu

__all__ = [
    "PAIRED",
    "SCHEDULES",
    "Request",
    "RoundRun",
    "Target",
    "alternating_rounds",
    "run_round",
    "scheduled_round",
    "stream_once",
]

logger = logging.getLogger("litellm_canary.bench.proxy_load")

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]
PAIRED = "paired"
SCHEDULES = (PAIRED, "alternating")


@dataclass(frozen=True)
class Target:
    """One proxy to load: its name in the figures, its URL and its key."""

    name: str
    url: str
    api_key: str


@dataclass(frozen=True)
class Request:
    started: float  # time.perf_counter() at the call
    latency_ms: float
    ttft_ms: float | None  # None: no content token arrived
    model_id: str | None  # the x-litellm-model-id header
    ok: bool


@dataclass
class RoundRun:
    target: str
    elapsed_s: float = 0.0
    requests: list[Request] = field(default_factory=list)
    cpu_s: float | None = None  # CPU the proxy process consumed during the round; None: unknown
    cpu_unavailable: str | None = None  # why cpu_s is None

    @property
    def served(self) -> Counter[str]:
        return Counter(r.model_id or "unknown" for r in self.requests if r.ok)

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.requests)


def client_for(target: Target, *, reconnect: bool = False) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` for ``target`` (its own connection pool), no retries. ``reconnect``: a new
    connection per request (``Connection: close``), so the workers of a ``--num_workers`` proxy
    share the requests (kept-alive connections stay with the worker that accepted them)."""
    return openai.AsyncOpenAI(
        base_url=f"{target.url}/v1",
        api_key=target.api_key,
        max_retries=0,
        timeout=60.0,
        default_headers={"Connection": "close"} if reconnect else None,
    )


async def stream_once(client: openai.AsyncOpenAI, model: str, user: str) -> Request:
    """One streamed chat completion, consumed to the end."""
    start = time.perf_counter()
    first: float | None = None
    model_id: str | None = None
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=MESSAGES, stream=True, user=user
        )
        model_id = raw.headers.get("x-litellm-model-id")
        stream = raw.parse()
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter()
        ok = True
    except Exception as error:  # counted as failed: any error of the call or the stream
        logger.debug("stream for %s failed: %r", user, error)
        ok = False
    end = time.perf_counter()
    ttft = None if first is None else (first - start) * 1e3
    return Request(start, (end - start) * 1e3, ttft, model_id, ok)


async def run_round(
    client: openai.AsyncOpenAI,
    target: str,
    model: str,
    requests: int,
    clients: int,
    user_prefix: str,
    cpu: ProcessCpu | None = None,
) -> RoundRun:
    """``requests`` streams from ``clients`` concurrent coroutines; the round's wall time, records
    and (with ``cpu``, the proxy process's) CPU seconds."""
    run = RoundRun(target)
    cpu_start = cpu.seconds() if cpu else None
    numbers: Iterator[int] = iter(range(requests))

    async def worker() -> None:
        for number in numbers:  # shared iterator: each coroutine takes the next number
            run.requests.append(await stream_once(client, model, f"{user_prefix}-{number}"))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(clients, requests))))
    run.elapsed_s = time.perf_counter() - start
    if cpu is not None:
        run.cpu_s = cpu.since(cpu_start)
        run.cpu_unavailable = cpu.unavailable if run.cpu_s is None else None
    return run


def alternating_rounds(first: str, second: str, rounds: int) -> list[tuple[str, str]]:
    """The order of each round: ``first`` leads the even rounds, ``second`` the odd ones."""
    return [(first, second) if index % 2 == 0 else (second, first) for index in range(rounds)]


async def scheduled_round(
    schedule: str, order: Sequence[str], run: Callable[[str], Awaitable[RoundRun]]
) -> list[RoundRun]:
    """One round of every configuration in ``order``: all at the same time (``paired``) or one after
    the other in that order (``alternating``)."""
    if schedule == PAIRED:
        return list(await asyncio.gather(*(run(name) for name in order)))
    return [await run(name) for name in order]

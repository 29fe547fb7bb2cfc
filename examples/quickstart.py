"""Quickstart: a 10 % canary on a real litellm.Router, then an instant rollback mid-traffic.

Two fake OpenAI-compatible upstreams run on 127.0.0.1 (stable and canary; streams take ~0.3 s, so
requests are in flight at any moment). Forty concurrent clients stream chat completions through a
Router whose group ``chat`` has one stable and one canary deployment. The canary gets 10 % of users
through an OpenFeature flag; then, while canary streams are running, we roll back. Runs offline.

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm import Router

import litellm_canary
from litellm_canary import Side
from litellm_canary.core.decision import Decision
from litellm_canary.testing.fake_upstream import FakeUpstream

CLIENTS = 40
PHASE_S = 3.0


async def main() -> None:
    stable = FakeUpstream("stable", answer="the stable model answers in several words").start()
    canary_upstream = FakeUpstream("canary", answer="the canary model answers in several words").start()
    for upstream in (stable, canary_upstream):
        upstream.set_faults(chunk_delay_s=0.015)
    try:
        await run(stable, canary_upstream)
    finally:
        stable.stop()
        canary_upstream.stop()


async def run(stable: FakeUpstream, canary_upstream: FakeUpstream) -> None:
    router = Router(
        model_list=[
            stable.deployment("chat", "chat-stable"),
            canary_upstream.deployment("chat", "chat-canary"),
        ]
    )
    canary = litellm_canary.attach(
        router,
        {
            "rollouts": [
                {
                    "model_group": "chat",
                    "stable": ["chat-stable"],
                    "canary": ["chat-canary"],
                    "flag_key": "chat-canary",
                }
            ],
            "flag_store": {"kind": "memory"},
        },
    )
    canary.set_canary_percent("chat", 10)

    decisions: list[tuple[float, Side]] = []
    canary_started = asyncio.Event()

    def record_decision(group: str, decision: Decision, deployment_id: str) -> None:
        decisions.append((time.perf_counter(), decision.side))
        if decision.side is Side.CANARY:
            canary_started.set()

    canary.on_decision(record_decision)
    stop = asyncio.Event()
    streams: Counter[str] = Counter()

    async def client() -> None:
        while not stop.is_set():
            response = await router.acompletion(
                model="chat",
                messages=[{"role": "user", "content": "hi"}],
                user=str(uuid.uuid4()),
                stream=True,
            )
            text = "".join([chunk.choices[0].delta.content or "" async for chunk in response])
            streams["canary" if text.startswith("the canary") else "stable"] += 1

    clients = [asyncio.create_task(client()) for _ in range(CLIENTS)]
    await asyncio.sleep(PHASE_S)  # steady traffic at 10 %

    canary_started.clear()
    await canary_started.wait()  # roll back right after a canary stream has started
    record = canary.rollback("chat", reason="quickstart: simulated bad canary")
    flipped_at = time.perf_counter()

    await asyncio.sleep(PHASE_S)  # traffic after the flip
    stop.set()
    await asyncio.gather(*clients)
    drained = await canary.drained("chat", timeout=10)

    before = Counter(side for at, side in decisions if at < flipped_at)
    after = Counter(side for at, side in decisions if at >= flipped_at)
    in_flight = canary.status()["groups"]["chat"]["last_rollback"]["canary_attempts"]
    print(
        f"before the flip: {sum(before.values())} requests, {_share(before)} to the canary: the flag "
        "sends 10 % of users (sticky: a user stays on its side), so a short run's request share varies"
    )
    print(
        f"rollback:        latched in {record['latch_us']:.0f} µs, flag written after "
        f"{record['flag_written_after_ms']:.2f} ms, {in_flight['at_flip']} canary streams in flight"
    )
    print(f"after the flip:  {sum(after.values())} requests, {after[Side.CANARY]} to the canary")
    print(
        f"in flight:       {in_flight['completed']} of {in_flight['at_flip']} canary streams "
        f"completed on the canary, {in_flight['failed']} failed"
    )
    status = canary.status()["groups"]["chat"]
    print(
        f"drained:         {drained}; canary in flight {status['in_flight']['canary']}, "
        f"canary pins {status['pins']['canary']}, state {status['state']}"
    )
    ok = after[Side.CANARY] == 0 and in_flight["failed"] == 0 and drained
    print("OK: no new request reached the canary after the flip" if ok else "FAILED: see above")
    canary.detach()
    if not ok:
        raise SystemExit(1)


def _share(counts: Counter[Side]) -> str:
    total = sum(counts.values()) or 1
    return f"{counts[Side.CANARY]} ({100 * counts[Side.CANARY] / total:.1f} %)"


if __name__ == "__main__":
    asyncio.run(main())

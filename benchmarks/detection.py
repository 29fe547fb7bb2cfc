"""How long automatic rollback takes to notice a failing canary, per scenario.

Setup. Two ``FakeUpstream`` servers on 127.0.0.1 (stable, canary); a real ``litellm.Router`` group
``chat`` over them (LiteLLM cooldowns off, so the trigger rules and not LiteLLM's cooldown see the
failure); the canary attached with the memory flag store, 50 % of users on the canary, and the
default trigger rules with every window divided by ``--scale`` (default 10: error_rate 120 s -> 12 s,
ttft_p99 300 s -> 30 s, fast_fail 10 s -> 1 s; thresholds, the 2 s TTFT SLO and the min-request
guards unchanged — LiteLLM's ~30 ms of CPU per streamed call caps this 2-core machine at ~25
requests/s, and fast_fail needs 10 canary requests inside its window). The library's own background
loop evaluates the rules every ``--step`` seconds (default 0.1). ``--clients`` coroutines send
steady streaming traffic.

Each scenario starts healthy for a warm-up, then injects a canary fault at ``fault_start``:

* ``errors_100``: every canary request fails (HTTP 500) — fast_fail's job;
* ``errors_20``: 20 % of canary requests fail — error_rate's job (below fast_fail's 50 %);
* ``ttft_3x_slo``: the canary's first token comes after 3 x the SLO — ttft_p99's job.

Each scenario enables only the rule it exercises, so that the figure is that rule's. It reports
``detect_s`` (fault start -> rollback decision), ``expected_s`` (when the rule can fire at the
earliest: error_rate and ttft_p99 must breach continuously for their window; fast_fail needs its
short window filled with failing requests; for ttft_p99 add the injected first-token delay, since a
stream's TTFT is known only once its first token arrives), the rule that fired, and
``canary_requests_after_decision`` (requests decided to the canary after the rollback; target 0).
Detection should land within about one evaluation step of ``expected_s``.

    python benchmarks/detection.py [--json] [--quick] [--scale N] [--clients N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm.router import Router

import litellm_canary
from litellm_canary import Side
from litellm_canary.core.config import Triggers
from litellm_canary.core.decision import Decision
from litellm_canary.core.rollback_record import RollbackRecord
from litellm_canary.testing.fake_upstream import FakeUpstream

logger = logging.getLogger("benchmarks.detection")

SCENARIOS: dict[str, dict[str, Any]] = {
    "errors_100": {"faults": {"error_rate": 1.0, "error_status": 500}, "rule": "fast_fail"},
    "errors_20": {"faults": {"error_rate": 0.2, "error_status": 500}, "rule": "error_rate"},
    "ttft_3x_slo": {"faults": {"first_token_delay_s": None}, "rule": "ttft_p99"},  # delay set from scale
}


@dataclass
class ScenarioResult:
    rule: str | None
    detect_s: float | None
    expected_s: float
    step_s: float
    canary_requests_after_decision: int
    requests: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "detect_s": None if self.detect_s is None else round(self.detect_s, 3),
            "expected_s": round(self.expected_s, 3),
            "step_s": round(self.step_s, 4),
            "canary_requests_after_decision": self.canary_requests_after_decision,
            "requests": self.requests,
        }


def scaled_triggers(scale: float, rule: str) -> Triggers:
    """The default rules with windows divided by ``scale``; only ``rule`` enabled."""
    defaults = Triggers()
    rules: dict[str, Any] = {"eval_score": False, "cooldown": False}
    for name in ("error_rate", "ttft_p99", "fast_fail"):
        config = getattr(defaults, name)
        rules[name] = config.model_copy(update={"window_s": config.window_s / scale, "enabled": name == rule})
    return Triggers.model_validate(rules)


async def run_scenario(
    name: str, *, scale: float, step_s: float, clients: int, warmup_s: float, timeout_s: float
) -> ScenarioResult:
    target = SCENARIOS[name]["rule"]
    triggers = scaled_triggers(scale, target)
    stable = FakeUpstream("stable", answer="stable says hi").start()
    canary_upstream = FakeUpstream("canary", answer="canary says hi").start()
    router = Router(
        model_list=[
            stable.deployment("chat", "chat-stable"),
            canary_upstream.deployment("chat", "chat-canary"),
        ],
        num_retries=0,
        disable_cooldowns=True,
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
                    "triggers": triggers.model_dump(),
                }
            ],
            "flag_store": {"kind": "memory"},
            "evaluation_step_s": step_s,
        },
    )
    canary.set_canary_percent("chat", 50)
    decisions: list[tuple[float, Side]] = []
    canary.on_decision(lambda group, decision, deployment_id: _log(decisions, decision))
    rolled_back = threading.Event()
    records: list[tuple[float, RollbackRecord]] = []
    canary.controller.on_rollback(
        lambda record: (records.append((time.perf_counter(), record)), rolled_back.set())
    )
    stop = asyncio.Event()
    requests = 0

    async def client() -> None:
        nonlocal requests
        while not stop.is_set():
            requests += 1
            try:
                response = await router.acompletion(
                    model="chat",
                    messages=[{"role": "user", "content": "hi"}],
                    user=str(uuid.uuid4()),
                    stream=True,
                )
                async for _ in response:
                    pass
            except Exception:
                pass  # injected failures are the point

    first_token_delay = 0.0
    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    try:
        await asyncio.sleep(warmup_s)  # healthy traffic fills the windows (and pays LiteLLM's warm-up)
        faults = dict(SCENARIOS[name]["faults"])
        if "first_token_delay_s" in faults:
            faults["first_token_delay_s"] = first_token_delay = 3 * triggers.ttft_p99.slo_ms / 1000
        fault_start = time.perf_counter()
        canary_upstream.set_faults(**faults)
        await asyncio.get_running_loop().run_in_executor(None, rolled_back.wait, timeout_s)
        await asyncio.sleep(0.5)  # traffic after the decision, to check none of it reaches the canary
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        canary.detach()
        stable.stop()
        canary_upstream.stop()
    step = canary.auto_rollback.step_s
    expected = _expected(triggers, target) + (first_token_delay if target == "ttft_p99" else 0.0)
    if not records:
        return ScenarioResult(None, None, expected, step, 0, requests)
    decided_at, record = records[0]
    latched = decided_at - (record.latched_mono - record.decided_mono)  # rollback() ran before the listener
    rule = str((record.cause or {}).get("rule"))
    after = sum(1 for at, side in decisions if at > latched and side is Side.CANARY)
    return ScenarioResult(rule, decided_at - fault_start, expected, step, after, requests)


def _log(decisions: list[tuple[float, Side]], decision: Decision) -> None:
    decisions.append((time.perf_counter(), decision.side))


def _expected(triggers: Triggers, rule: str) -> float:
    window: float = (
        getattr(triggers, rule).window_s if rule in ("error_rate", "ttft_p99", "fast_fail") else 0.0
    )
    return window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--quick", action="store_true", help="a fast smoke run (errors_100 only, short windows)"
    )
    parser.add_argument("--scale", type=float, default=10.0, help="divide every rule window by this")
    parser.add_argument("--step", type=float, default=0.1, help="trigger evaluation step, seconds")
    parser.add_argument("--clients", type=int, default=24)
    args = parser.parse_args()
    if args.scale <= 0 or args.clients <= 0 or args.step <= 0:
        parser.error("--scale, --step and --clients must be positive")
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    names = ["errors_100"] if args.quick else list(SCENARIOS)
    warmup = 1.5 if args.quick else 3.0
    results: dict[str, Any] = {}
    for name in names:
        result = asyncio.run(
            run_scenario(
                name,
                scale=args.scale,
                step_s=args.step,
                clients=args.clients,
                warmup_s=warmup,
                timeout_s=90.0,
            )
        )
        results[name] = result.as_dict()
    results["settings"] = {
        "scale": args.scale,
        "step_s": args.step,
        "clients": args.clients,
        "canary_percent": 50,
    }
    if args.json:
        print(json.dumps(results))
        return
    for name in names:
        r = results[name]
        print(
            f"{name:12s} rule {r['rule']!s:10s} detected after {r['detect_s']} s "
            f"(window {r['expected_s']} s, step {r['step_s']} s); "
            f"{r['canary_requests_after_decision']} canary requests after the decision"
        )


if __name__ == "__main__":
    main()

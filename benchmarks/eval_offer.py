"""What eval sampling adds to LiteLLM's success callback: the cost of ``EvalPipeline.offer``.

``offer`` is the only part of the eval pipeline that runs in the callback (scoring runs on its own
thread). Measured per call, median of ``--repeats`` rounds of ``--calls`` calls, for: a no-op
listener (the baseline: the price of being called at all), ``sample_rate`` 0 (the draw only), 0.1
(the default: one sample in ten queued), 1.0 into a queue with room (emptied every 1000 calls, as
a consumer that keeps up would; the emptying is timed too), and 1.0 into a full queue (the drop
path). Ratios are against the no-op listener.

    python benchmarks/eval_offer.py [--json] [--calls N] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from litellm.router import Router

from litellm_canary.core.config import parse_config
from litellm_canary.core.controller import RolloutRuntime
from litellm_canary.core.decision import Side
from litellm_canary.core.outcomes import Outcome
from litellm_canary.core.pins import RolloutPins
from litellm_canary.detection.evals.sampling import EvalPipeline

MESSAGES = [{"role": "user", "content": "what is 2+2?"}]
# A chat completion's shape: only answers with text (chat, Responses API) are sampled.
ANSWER = {"choices": [{"message": {"role": "assistant", "content": "The answer is 4."}}]}


def pipeline(sample_rate: float, queue_size: int) -> EvalPipeline:
    config = parse_config(
        {
            "rollouts": [
                {
                    "model_group": "chat",
                    "stable": ["s"],
                    "canary": ["c"],
                    "flag_key": "chat",
                    "evals": {
                        "scorer": {"builtin": "regex", "pattern": "4"},
                        "sample_rate": sample_rate,
                        "queue_size": queue_size,
                    },
                }
            ]
        }
    )
    rollout = config.rollouts[0]
    pins = RolloutPins(clock=time.monotonic, max_attempt_s=900, conversation_ttl_s=3600, max_conversations=10)
    runtimes = {"chat": RolloutRuntime(config=rollout, pins=pins)}
    return EvalPipeline(config, runtimes, Router(model_list=[]))


def per_call_ns(
    call: Callable[[Outcome, dict[str, Any], Any], None],
    calls: int,
    repeats: int,
    drain: Callable[[], None] = lambda: None,
) -> float:
    """Median ns per call; ``drain`` (the consumer's side, timed too) runs after every 1000 calls."""
    outcome = Outcome("chat", Side.CANARY, "c", True, "success")
    kwargs = {"messages": MESSAGES}
    rounds = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for i in range(calls):
            call(outcome, kwargs, ANSWER)
            if i % 1000 == 999:
                drain()
        rounds.append((time.perf_counter_ns() - started) / calls)
    return statistics.median(rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    if args.calls < 1 or args.repeats < 1:
        parser.error("--calls and --repeats must be positive")

    def noop(outcome: Outcome, kwargs: dict[str, Any], response: Any) -> None:
        return None

    baseline = per_call_ns(noop, args.calls, args.repeats)
    cases = {
        "sample_rate_0": pipeline(0.0, 10),
        "sample_rate_0.1": pipeline(0.1, 1000),
        "sample_rate_1_room": pipeline(1.0, 1000),
        "sample_rate_1_full": pipeline(1.0, 1),
    }
    result: dict[str, Any] = {
        "calls": args.calls,
        "repeats": args.repeats,
        "noop_listener_ns": round(baseline, 1),
    }
    for name, evals in cases.items():
        queue = evals.rollouts["chat"].queue
        # A consumer keeps up with 1000-sample batches, except in the full-queue case.
        drain = (lambda: None) if name.endswith("_full") else queue.clear
        ns = per_call_ns(evals.offer, args.calls, args.repeats, drain)
        result[f"{name}_ns"] = round(ns, 1)
        result[f"{name}_ratio"] = round(ns / baseline, 2)
    full = cases["sample_rate_1_full"].rollouts["chat"].queue
    result["full_queue_dropped"] = full.dropped["canary"]
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

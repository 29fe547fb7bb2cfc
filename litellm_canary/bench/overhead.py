"""What attaching a canary costs one request on the Router's hot path.

What is measured
----------------
* **End to end.** ``await router.acompletion(model="chat", messages=..., mock_response="hi")`` on two
  otherwise identical ``litellm.Router`` instances whose group ``chat`` has two mocked deployments
  (``chat-stable``, ``chat-canary``; LiteLLM's ``mock_response``, so no network): a *baseline* Router
  without a canary, and a *canary* Router with ``litellm_canary.attach`` (rollout ``chat``, flag
  ``chat-canary`` served by the OpenFeature SDK's ``InMemoryProvider`` -- the application's provider,
  no flag store). Calls run one at a time; after a warm-up of both Routers the two variants alternate
  in blocks (ABBA order), so drift and noise from other work on the machine hit both alike. We report
  each variant's median latency and ``ratio = canary / baseline`` (plus the median of the per-round
  block ratios, which pairs neighbouring blocks).
* **The decision alone.** ``await canary._routing.async_filter_deployments(group, deployments,
  messages, request_kwargs)`` (the LiteLLM deployment filter that decides the side and narrows the
  candidates; LiteLLM then picks among them), the canary's work on every attempt, timed call by
  call with a fresh, realistic ``request_kwargs`` dict each time (built outside the timed region;
  fresh so no request pin applies). The attempt each decision opens is closed right after the
  timed region, so no state accumulates.
* **Breakdown.** Where a decision's time goes, timed inside the filter (the flag read and the
  narrowing to the side are wrapped for one extra pass): ``flag_read`` (OpenFeature),
  ``deployment_choice`` (narrowing LiteLLM's candidates to the side) and ``other`` (for a canary
  decision this includes asking the Router's healthy chain whether the canary side can serve).
  Each part also
  timed alone in a tight loop (``decision_parts_isolated_us``); alone they run about twice as fast
  (warmer caches), so those do not add up to the decision.

The deployments use a priced model (``--model``) because for an unknown one LiteLLM runs a
zero-cost diagnostic on every call, which adds milliseconds to both variants and hides the
difference. ``attach`` is called as an application would, so the canary's process-global LiteLLM
callback and its trigger-evaluation thread are live during baseline calls too; the callback returns
at once for a non-canary call (its cost was below the noise when this was written).

Targets (reported, not enforced): ``ratio <= 1.05``, ``decision_us_median <= 30``.

    litellm-canary bench overhead [--json] [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from litellm.router import Router
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from opentelemetry import trace

import litellm_canary
from litellm_canary import Side
from litellm_canary.bench.report import quantile
from litellm_canary.core.decision import decide
from litellm_canary.core.request_stamps import STAMP_KEY, stamp_key

__all__ = ["Settings", "default_settings", "measure", "run", "summary_lines"]

logger = logging.getLogger("litellm_canary.bench.overhead")

GROUP = "chat"
FLAG_KEY = "chat-canary"
STABLE_ID = "chat-stable"
CANARY_ID = "chat-canary"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
TARGET_RATIO = 1.05
TARGET_DECISION_US = 30.0


@dataclass(frozen=True)
class Settings:
    iterations: int  # timed end-to-end calls per variant
    block: int  # calls per variant per round
    warmup: int  # untimed calls per variant first
    decision_iterations: int  # timed pick() calls (and breakdown samples)
    model: str  # litellm_params.model of both deployments
    flag_variant: str  # what the flag serves: "stable" or "canary"


def default_settings(quick: bool = False, **overrides: Any) -> Settings:
    """The full run's settings (``quick``: a few-second smoke run), with ``overrides`` applied.

    Raises ``ValueError`` naming the setting that is out of range."""
    settings = Settings(
        iterations=100 if quick else 1500,
        block=25 if quick else 50,
        warmup=20 if quick else 100,
        decision_iterations=2000 if quick else 20000,
        model="openai/gpt-4o-mini",
        flag_variant="stable",
    )
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    for name in ("iterations", "block", "decision_iterations"):
        if getattr(settings, name) < 1:
            raise ValueError(f"{name} must be positive, got {getattr(settings, name)}")
    if settings.warmup < 0:
        raise ValueError(f"warmup must not be negative, got {settings.warmup}")
    if settings.flag_variant not in ("stable", "canary"):
        raise ValueError(f"flag_variant must be 'stable' or 'canary', got {settings.flag_variant!r}")
    return settings


# -- setup ---------------------------------------------------------------------------------------


def model_list(model: str, prefix: str = "") -> list[dict[str, Any]]:
    """The group's two deployments. The baseline Router gets other ids (``prefix``): LiteLLM keeps
    state per deployment id across the Routers of a process, and the canary's deployment filter
    (process-global) tells Routers apart by their deployment ids."""
    return [
        {
            "model_name": GROUP,
            "litellm_params": {"model": model, "api_key": "sk-bench", "mock_response": "hi"},
            "model_info": {"id": prefix + deployment_id},
        }
        for deployment_id in (STABLE_ID, CANARY_ID)
    ]


def build(settings: Settings) -> tuple[Router, Router, litellm_canary.Canary]:
    """The baseline Router, the canary Router and its canary (flag from the app's provider)."""
    flag = InMemoryFlag(settings.flag_variant, {"stable": "stable", "canary": "canary"})
    api.set_provider_and_wait(InMemoryProvider({FLAG_KEY: flag}))
    baseline = Router(model_list=model_list(settings.model, prefix="baseline-"))
    canary_router = Router(model_list=model_list(settings.model))
    rollout = {"model_group": GROUP, "stable": [STABLE_ID], "canary": [CANARY_ID], "flag_key": FLAG_KEY}
    canary = litellm_canary.attach(canary_router, {"rollouts": [rollout]})
    return baseline, canary_router, canary


# -- end to end ----------------------------------------------------------------------------------


async def timed_calls(router: Router, n: int) -> list[float]:
    """``n`` sequential mocked completions; their latencies in µs."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        start = clock()
        await router.acompletion(model=GROUP, messages=MESSAGES, mock_response="hi")
        samples.append((clock() - start) / 1e3)
    return samples


@dataclass
class EndToEnd:
    baseline: list[float]
    canary: list[float]
    round_ratios: list[float]


async def measure_end_to_end(baseline: Router, canary_router: Router, settings: Settings) -> EndToEnd:
    await timed_calls(baseline, settings.warmup)
    await timed_calls(canary_router, settings.warmup)
    result = EndToEnd([], [], [])
    remaining = settings.iterations
    round_index = 0
    while remaining > 0:
        n = min(settings.block, remaining)
        # ABBA: the variant that goes first alternates, so slow drift cancels out.
        first_is_baseline = round_index % 2 == 0
        order = (baseline, canary_router) if first_is_baseline else (canary_router, baseline)
        first, second = [await timed_calls(router, n) for router in order]
        base, cand = (first, second) if first_is_baseline else (second, first)
        result.baseline += base
        result.canary += cand
        result.round_ratios.append(statistics.median(cand) / statistics.median(base))
        remaining -= n
        round_index += 1
    return result


async def settle(canary: litellm_canary.Canary, calls: int, timeout_s: float = 10.0) -> dict[str, Any]:
    """Wait until LiteLLM reported every canary call's outcome (its logging runs after the call)."""
    deadline = time.monotonic() + timeout_s
    while True:
        group = canary.status()["groups"][GROUP]
        in_flight = sum(group["in_flight"].values())
        outcomes = sum(group["attempts"].values())
        if (in_flight == 0 and outcomes >= calls) or time.monotonic() > deadline:
            return {"open_attempts": in_flight, "outcomes": outcomes, "attempts": group["attempts"]}
        await asyncio.sleep(0.02)


# -- the decision --------------------------------------------------------------------------------


def request_kwargs() -> dict[str, Any]:
    """What LiteLLM hands the deployment filter for a plain chat call (fresh: no pin applies)."""
    return {
        "model": GROUP,
        "messages": MESSAGES,
        "metadata": {},
        "litellm_trace_id": str(uuid.uuid4()),
        "user": "u1",
    }


def candidates(canary: litellm_canary.Canary) -> list[Any]:
    """The group's deployments as LiteLLM hands them to the filter."""
    return [dict(d) for d in canary._router.registry().deployments(GROUP) or []]


async def measure_decisions(canary: litellm_canary.Canary, n: int) -> tuple[list[float], dict[str, int]]:
    """``n`` timed decisions (µs each) and the sides they chose."""
    routing = canary._routing
    runtime = canary.runtimes[GROUP]
    healthy = candidates(canary)
    clock = time.perf_counter_ns
    samples = []
    sides = dict.fromkeys((side.value for side in Side), 0)
    for _ in range(n):
        request = request_kwargs()
        start = clock()
        await routing.async_filter_deployments(GROUP, healthy, MESSAGES, request)
        elapsed = clock() - start
        stamp = request["metadata"][STAMP_KEY][stamp_key(GROUP, request["litellm_trace_id"])]
        runtime.pins.close(stamp.attempt, "success")
        sides[stamp.side.value] += 1
        samples.append(elapsed / 1e3)
    return samples, sides


class _Timed:
    """Wraps a callable and keeps the duration of its latest call (ns)."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.last_ns = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter_ns()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.last_ns = time.perf_counter_ns() - start


@contextlib.contextmanager
def shadowed(owner: object, name: str, replacement: object) -> Iterator[None]:
    """Shadow a method of one instance with an instance attribute, for the duration of the block."""
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        delattr(owner, name)


async def measure_decision_parts(canary: litellm_canary.Canary, n: int) -> dict[str, float]:
    """Where a decision's time goes, timed inside the filter (medians, µs).

    ``flag_read`` is the OpenFeature evaluation, ``deployment_choice`` narrows LiteLLM's candidates
    to the side, ``other`` is the rest (metadata, pins, ``decide()``, the stamp, listeners, the span
    check; for a canary decision, the Router's healthy-chain check). Timed in place rather than
    alone because each part runs about twice as fast in a tight loop of its own (warmer caches).
    """
    routing = canary._routing
    runtime = canary.runtimes[GROUP]
    healthy = candidates(canary)
    read = _Timed(canary.flags.read)
    choose = _Timed(routing._on_side)
    parts: dict[str, list[float]] = {"flag_read": [], "deployment_choice": [], "other": []}
    with shadowed(canary.flags, "read", read), shadowed(routing, "_on_side", choose):
        for _ in range(n):
            request = request_kwargs()
            read.last_ns = choose.last_ns = 0
            start = time.perf_counter_ns()
            await routing.async_filter_deployments(GROUP, healthy, MESSAGES, request)
            total = time.perf_counter_ns() - start
            runtime.pins.close(
                request["metadata"][STAMP_KEY][stamp_key(GROUP, request["litellm_trace_id"])].attempt,
                "success",
            )
            parts["flag_read"].append(read.last_ns / 1e3)
            parts["deployment_choice"].append(choose.last_ns / 1e3)
            parts["other"].append((total - read.last_ns - choose.last_ns) / 1e3)
    return {name: round(statistics.median(samples), 2) for name, samples in parts.items()}


def per_call_us(operation: Callable[[], object], n: int, batch: int = 100) -> float:
    """Median µs per call of ``operation`` over batches of ``batch`` calls (about ``n`` calls)."""
    clock = time.perf_counter_ns
    batches = []
    for _ in range(max(1, n // batch)):
        start = clock()
        for _ in range(batch):
            operation()
        batches.append((clock() - start) / 1e3 / batch)
    return statistics.median(batches)


def measure_isolated_parts(canary: litellm_canary.Canary, router: Router, n: int) -> dict[str, float]:
    """The decision's ingredients, each timed alone in a tight loop (medians, µs)."""
    runtime = canary.runtimes[GROUP]
    pins = runtime.pins
    flag_side = canary.flags.read(FLAG_KEY, EvaluationContext("u1", {})).side or Side.STABLE
    context = EvaluationContext("u1", {"model_group": "", "user": "u1"})
    request = request_kwargs()
    healthy = candidates(canary)
    parts: dict[str, Callable[[], object]] = {
        "flag_read": lambda: canary.flags.read(FLAG_KEY, context),
        "evaluation_context": lambda: canary._routing.decider._context(request, request["metadata"], None),
        "side_filter": lambda: canary._routing._on_side(runtime, flag_side, healthy),
        "decide": lambda: decide(rolled_back=False, flag_side=flag_side, pin=None, drain_open=False),
        "attempt_open_close": lambda: pins.close(pins.open(flag_side, ""), "success"),
        "span_check": lambda: trace.get_current_span().is_recording(),
    }
    return {name: round(per_call_us(operation, n), 2) for name, operation in parts.items()}


async def run(settings: Settings) -> dict[str, Any]:
    baseline, canary_router, canary = build(settings)
    logger.info("end to end: %d calls per variant in blocks of %d", settings.iterations, settings.block)
    end_to_end = await measure_end_to_end(baseline, canary_router, settings)
    settled = await settle(canary, settings.warmup + settings.iterations)
    logger.info("decision: %d timed filter calls", settings.decision_iterations)
    await measure_decisions(canary, min(2000, settings.decision_iterations))  # warm-up
    decisions, decision_sides = await measure_decisions(canary, settings.decision_iterations)
    decision_us = statistics.median(decisions)
    breakdown = await measure_decision_parts(canary, settings.decision_iterations)
    isolated = measure_isolated_parts(canary, canary_router, settings.decision_iterations)
    baseline_us = statistics.median(end_to_end.baseline)
    canary_us = statistics.median(end_to_end.canary)
    ratio = canary_us / baseline_us
    return {
        "baseline_us_median": round(baseline_us, 1),
        "canary_us_median": round(canary_us, 1),
        "ratio": round(ratio, 4),
        "ratio_block_median": round(statistics.median(end_to_end.round_ratios), 4),
        "overhead_us": round(canary_us - baseline_us, 1),
        "baseline_us_p90": round(quantile(end_to_end.baseline, 0.9) or 0.0, 1),
        "canary_us_p90": round(quantile(end_to_end.canary, 0.9) or 0.0, 1),
        "decision_us_median": round(decision_us, 2),
        "decision_us_p90": round(quantile(decisions, 0.9) or 0.0, 2),
        "decision_breakdown_us": breakdown,
        "decision_parts_isolated_us": isolated,
        "iterations": len(end_to_end.canary),
        "rounds": len(end_to_end.round_ratios),
        "decision_iterations": len(decisions),
        "decision_sides": decision_sides,
        "canary_calls": settings.warmup + len(end_to_end.canary),
        "canary_outcomes": settled["outcomes"],
        "canary_attempts": settled["attempts"],
        "open_attempts_after": sum(canary.status()["groups"][GROUP]["in_flight"].values()),
        "settings": asdict(settings),
        "targets": {"ratio": TARGET_RATIO, "decision_us_median": TARGET_DECISION_US},
        "meets_targets": {
            "ratio": ratio <= TARGET_RATIO,
            "decision_us_median": decision_us <= TARGET_DECISION_US,
        },
    }


def summary_lines(result: dict[str, Any]) -> list[str]:
    settings = result["settings"]
    met = result["meets_targets"]
    lines = [
        f"overhead of litellm_canary on Router.acompletion ({settings['model']}, mock_response, "
        f"flag serves {settings['flag_variant']!r})",
        f"  end to end   baseline {result['baseline_us_median']:>9.1f} µs   canary "
        f"{result['canary_us_median']:>9.1f} µs   (medians of {result['iterations']} calls each, "
        f"{result['rounds']} interleaved rounds)",
        f"  ratio        {result['ratio']:.4f} (block-paired {result['ratio_block_median']:.4f}), "
        f"target <= {TARGET_RATIO}: {'met' if met['ratio'] else 'MISSED'}",
        f"  decision     {result['decision_us_median']:.2f} µs median, "
        f"{result['decision_us_p90']:.2f} µs p90 over {result['decision_iterations']} filter calls, "
        f"target <= {TARGET_DECISION_US:.0f} µs: {'met' if met['decision_us_median'] else 'MISSED'}",
        "  breakdown    "
        + ", ".join(f"{name} {us:.2f}" for name, us in result["decision_breakdown_us"].items())
        + " µs (medians, timed inside the filter)",
        "  alone        "
        + ", ".join(f"{name} {us:.2f}" for name, us in result["decision_parts_isolated_us"].items())
        + " µs",
        f"  bookkeeping  {result['canary_calls']} canary calls, {result['canary_outcomes']} outcomes, "
        f"{result['open_attempts_after']} attempts left open",
    ]
    return lines


def measure(settings: Settings) -> dict[str, Any]:
    """Run the benchmark and return its figures (the ``--json`` object)."""
    return asyncio.run(run(settings))

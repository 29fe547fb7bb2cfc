"""The switch benchmark's parts: settings, observations, the fake upstreams, Router and canary.

Two ``FakeUpstream`` servers on 127.0.0.1 (stable and canary; by default in a child process, so their
work does not compete for this process's GIL) stream a few-word answer with ``chunk_delay_s`` between
chunks. A ``litellm.Router`` group ``chat`` points at them; a canary is attached with the memory flag
store, its automatic-rollback triggers off, and the flag set to the canary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from litellm.router import Router

import litellm_canary
from litellm_canary import Side
from litellm_canary.core.config import Triggers
from litellm_canary.core.decision import Decision
from litellm_canary.core.outcomes import Outcome
from litellm_canary.testing.fake_upstream import FakeUpstream

GROUP = "chat"
FLAG_KEY = "chat-canary"
STABLE_ID = "chat-stable"
CANARY_ID = "chat-canary"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
TARGET_RESTORED_P99_US = 1000.0


@dataclass(frozen=True)
class Settings:
    clients: int
    flips: int
    idle_flips: int  # flips without traffic first: the rollback() call's idle baseline
    think_ms: float  # mean think time between a client's streams (exponential)
    chunk_delay_ms: float  # upstream delay between stream chunks
    words: int  # words in the answer: one content chunk each
    canary_percent: float  # 100: set_side("canary"); else a sticky percentage
    min_in_flight: int  # canary attempts in flight before a flip
    flip_jitter_ms: float  # random extra wait before a flip, so flips land mid-stream
    drain_timeout_s: float
    step_timeout_s: float  # waiting for canary traffic or for the first post-flip decision
    upstreams: str  # "process": a child process serves them; "thread": threads of this process
    seed: int


def default_settings(quick: bool = False, **overrides: Any) -> Settings:
    """The full run's settings (``quick``: a few-second smoke run), with ``overrides`` applied.

    Raises ``ValueError`` naming the setting that is out of range."""
    settings = Settings(
        clients=20 if quick else 200,
        flips=5 if quick else 100,
        idle_flips=5 if quick else 20,
        think_ms=2000.0 if quick else 25000.0,
        chunk_delay_ms=10.0,
        words=5,
        canary_percent=100.0,
        min_in_flight=1,
        flip_jitter_ms=30.0,
        drain_timeout_s=30.0,
        step_timeout_s=30.0,
        upstreams="process",
        seed=1,
    )
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    for name in ("clients", "flips", "words", "min_in_flight"):
        if getattr(settings, name) < 1:
            raise ValueError(f"{name} must be positive, got {getattr(settings, name)}")
    for name in ("idle_flips", "think_ms", "chunk_delay_ms", "flip_jitter_ms"):
        if getattr(settings, name) < 0:
            raise ValueError(f"{name} must not be negative, got {getattr(settings, name)}")
    if not 0 < settings.canary_percent <= 100:
        raise ValueError(f"canary_percent must be within (0, 100], got {settings.canary_percent}")
    if settings.upstreams not in ("process", "thread"):
        raise ValueError(f"upstreams must be 'process' or 'thread', got {settings.upstreams!r}")
    return settings


# -- observations --------------------------------------------------------------------------------


class DecisionLog:
    """The ``on_decision`` listener: one ``(perf_counter(), is_canary)`` per decision, in order.

    The controller may also wait for the next decision of one side (``expect``).
    """

    def __init__(self) -> None:
        self.times: list[float] = []
        self.canary: list[bool] = []
        self._waiter: tuple[bool, asyncio.Event] | None = None

    def __call__(self, model_group: str, decision: Decision, deployment_id: str) -> None:
        self.times.append(time.perf_counter())
        is_canary = decision.side is Side.CANARY
        self.canary.append(is_canary)
        waiter = self._waiter
        if waiter is not None and waiter[0] is is_canary:
            waiter[1].set()

    def expect(self, side: Side) -> asyncio.Event:
        """An event that the next decision for ``side`` sets (replaces any earlier one)."""
        event = asyncio.Event()
        self._waiter = (side is Side.CANARY, event)
        return event

    def stop_expecting(self) -> None:
        self._waiter = None


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One client stream: when it started and ended, on which side, and whether it completed."""

    start: float
    end: float
    side: Side | None  # None: no decision was made (the call failed before routing)
    ok: bool


@dataclass
class Flip:
    """One rollback/re-arm cycle, as the controller saw it."""

    t0: float
    returned: float
    rearmed: float = math.nan
    restored_seen: bool = False
    drained: bool = False
    drain_s: float = math.nan
    latch_us: float = math.nan
    in_flight_at_flip: int = 0
    completed: int = 0
    failed: int = 0
    expired: int = 0
    pending: int = 0


@dataclass
class Run:
    settings: Settings
    decisions: DecisionLog = field(default_factory=DecisionLog)
    streams: list[StreamRecord] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    upstream_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    idle_rollback_us: list[float] = field(default_factory=list)
    attempt_failures: Counter[str] = field(default_factory=Counter)  # "side:status_class" -> n


def record_failure(run: Run, outcome: Outcome) -> None:
    """Tally failed attempts by side and class (the rollback records only count them)."""
    if not outcome.ok:
        run.attempt_failures[f"{outcome.side.value}:{outcome.status_class}"] += 1


# -- setup ---------------------------------------------------------------------------------------


# The upstreams' child process: two FakeUpstreams; prints their base URLs, serves until its stdin
# closes, then prints their counters.
_UPSTREAM_PROCESS = """
import json, sys
from litellm_canary.testing.fake_upstream import FakeUpstream
spec = json.loads(sys.argv[1])
upstreams = {key: FakeUpstream(key, answer=answer).start() for key, answer in spec["answers"].items()}
for upstream in upstreams.values():
    upstream.set_faults(chunk_delay_s=spec["chunk_delay_s"])
print(json.dumps({key: upstream.base_url for key, upstream in upstreams.items()}), flush=True)
sys.stdin.read()
print(json.dumps({key: upstream.stats() for key, upstream in upstreams.items()}), flush=True)
for upstream in upstreams.values():
    upstream.stop()
"""


@dataclass
class Upstreams:
    """Where the deployments live (deployment id -> base URL), and their counters once stopped."""

    base_urls: dict[str, str]
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)


def answers(settings: Settings) -> dict[str, str]:
    words = " ".join(f"w{i}" for i in range(1, settings.words))
    return {STABLE_ID: f"stable {words}".strip(), CANARY_ID: f"canary {words}".strip()}


@contextlib.contextmanager
def upstreams_in_threads(settings: Settings) -> Iterator[Upstreams]:
    servers = {key: FakeUpstream(key, answer=answer) for key, answer in answers(settings).items()}
    try:
        for server in servers.values():
            server.start()
            server.set_faults(chunk_delay_s=settings.chunk_delay_ms / 1e3)
        upstreams = Upstreams({key: server.base_url for key, server in servers.items()})
        yield upstreams
        upstreams.stats = {key: dict(server.stats()) for key, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


@contextlib.contextmanager
def upstreams_in_process(settings: Settings) -> Iterator[Upstreams]:
    spec = {"answers": answers(settings), "chunk_delay_s": settings.chunk_delay_ms / 1e3}
    child = subprocess.Popen(
        [sys.executable, "-c", _UPSTREAM_PROCESS, json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        first_line = child.stdout.readline()
        if not first_line:
            raise RuntimeError("the upstream process exited before serving (see its stderr above)")
        upstreams = Upstreams(json.loads(first_line))
        yield upstreams
        child.stdin.close()
        upstreams.stats = json.loads(child.stdout.readline())
        child.wait(timeout=15)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def start_upstreams(settings: Settings) -> contextlib.AbstractContextManager[Upstreams]:
    return (
        upstreams_in_process(settings) if settings.upstreams == "process" else upstreams_in_threads(settings)
    )


def build_router(upstreams: Upstreams) -> Router:
    router: Router = Router(
        model_list=[
            {
                "model_name": GROUP,
                "litellm_params": {"model": "openai/fake", "api_key": "x", "api_base": base_url},
                "model_info": {"id": deployment_id},
            }
            for deployment_id, base_url in upstreams.base_urls.items()
        ]
    )
    return router


def attach_canary(router: Router) -> litellm_canary.Canary:
    """The canary under test; its automatic-rollback triggers are off: only the controller flips."""
    rollout = {
        "model_group": GROUP,
        "stable": [STABLE_ID],
        "canary": [CANARY_ID],
        "flag_key": FLAG_KEY,
        "triggers": dict.fromkeys(Triggers.model_fields, False),
    }
    return litellm_canary.attach(router, {"rollouts": [rollout], "flag_store": {"kind": "memory"}})


def serve_canary(canary: litellm_canary.Canary, settings: Settings) -> None:
    """Point the flag at the canary again (a rollback writes "stable" into the store)."""
    if settings.canary_percent >= 100:
        canary.set_side(GROUP, "canary")
    else:
        canary.set_canary_percent(GROUP, settings.canary_percent)

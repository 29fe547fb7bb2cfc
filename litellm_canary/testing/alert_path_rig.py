"""The alert path end to end: upstreams, a gateway process and its monitoring stack, plus traffic.

Shared by ``tests/e2e/test_alert_path.py`` and ``benchmarks/alert_path.py``, this module owns:

* the two canary configs of the alert path: :func:`gateway_config` (a ``litellm-canary serve`` file
  whose in-process triggers are all off) and :func:`alert_rules_config` (the same rollout with its
  rules on, windows chosen for 1 s scrapes at :data:`TIME_SCALE`), which the Prometheus rules are
  generated from;
* :func:`alert_path`: two :class:`~litellm_canary.fake_upstream.FakeUpstream` servers, the gateway
  process (flagd file store, 50 % canary) and its stack, stopped together; the :class:`AlertPathRig`
  it yields reads the gateway's status, decision counters and the alerts;
* :class:`Traffic`: steady chat traffic from a few worker threads, each request with its own ``user``.

The Prometheus/Alertmanager processes themselves are
:class:`~litellm_canary.testing.monitoring_stack.MonitoringStack`'s.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from litellm_canary.core.config import CanaryConfig, parse_config
from litellm_canary.core.flags import FlagdFileStore
from litellm_canary.integrations.alert_rules import ALERT_NAMES, prometheus_rules
from litellm_canary.integrations.promql import prometheus_duration
from litellm_canary.testing.fake_upstream import FakeUpstream
from litellm_canary.testing.gateway_process import GatewayProcess, wait_until
from litellm_canary.testing.monitoring_stack import MonitoringStack, StackTimings

# -- the alert-path configs ------------------------------------------------------------------------------

TIME_SCALE = 30.0
"""How much faster than production the generated rules run in the alert-path test and benchmark."""

#: The rules Prometheus runs: the defaults' thresholds and guards, windows chosen so that at
#: TIME_SCALE 30 each holds at least three 1 s scrapes (``increase()`` needs two samples in a window):
#: error_rate 120 s -> 4 s (and ``for: 4s``), fast_fail 90 s -> 3 s, ttft_p99 300 s -> 10 s. At the
#: default fast_fail window (10 s -> 333 ms) the fast_fail alert could never fire on 1 s scrapes.
ALERT_TRIGGERS: dict[str, Any] = {
    "error_rate": {"window_s": 120},
    "fast_fail": {"window_s": 90},
    "ttft_p99": {"window_s": 300},
    "eval_score": True,
    "cooldown": False,
}
#: The gateway's own triggers: all off, so a rollback can only come through the alert path.
QUIET_TRIGGERS: dict[str, Any] = {
    "error_rate": False,
    "ttft_p99": False,
    "fast_fail": False,
    "eval_score": False,
    "cooldown": False,
}
MODEL_GROUP = "chat"
FLAG_KEY = "chat-canary"
STABLE_ANSWER = "stable answer"
CANARY_ANSWER = "canary answer"


def _canary_section(
    triggers: Mapping[str, Any], flag_path: Path | None, evals: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    rollout: dict[str, Any] = {
        "model_group": MODEL_GROUP,
        "stable": ["chat-stable"],
        "canary": ["chat-canary"],
        "flag_key": FLAG_KEY,
        "triggers": dict(triggers),
    }
    if evals is not None:
        rollout["evals"] = dict(evals)
    section: dict[str, Any] = {"rollouts": [rollout]}
    if flag_path is not None:
        section["flag_store"] = {"kind": "flagd_file", "path": str(flag_path)}
    return section


def alert_rules_config() -> CanaryConfig:
    """The canary config the Prometheus rules are generated from (rules enabled, see ALERT_TRIGGERS)."""
    return parse_config(_canary_section(ALERT_TRIGGERS, None))


def gateway_config(
    stable_url: str, canary_url: str, flag_path: Path, evals: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A ``litellm-canary serve`` file: group ``chat`` over the two upstreams, every in-process trigger
    off, the flagd_file store at ``flag_path`` (and the rollout's ``evals`` block, if given). No
    retries and no LiteLLM cooldowns, so that each request is one attempt and a failing canary keeps
    receiving its share until the rollback."""
    return {
        "model_list": [
            {
                "model_name": MODEL_GROUP,
                "litellm_params": {"model": "openai/fake", "api_key": "sk-x", "api_base": url},
                "model_info": {"id": deployment_id},
            }
            for deployment_id, url in (("chat-stable", stable_url), ("chat-canary", canary_url))
        ],
        "router_settings": {"num_retries": 0, "disable_cooldowns": True},
        "litellm_canary": _canary_section(QUIET_TRIGGERS, flag_path, evals),
    }


# -- traffic ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestResult:
    """One chat request as the client saw it (wall-clock times, ``time.time()``)."""

    started: float
    ended: float
    status: int
    answer: str | None


class Traffic:
    """Steady ``/v1/chat/completions`` traffic: ``workers`` threads, one request at a time each, every
    request with a distinct ``user`` (so the 50 % flag splits requests, not workers)."""

    def __init__(self, gateway_url: str, *, workers: int = 6, timeout: float = 15.0) -> None:
        self.url = f"{gateway_url.rstrip('/')}/v1/chat/completions"
        self.workers = workers
        self.timeout = timeout
        self.results: list[RequestResult] = []  # list.append is atomic: workers append without a lock
        self._run = uuid.uuid4().hex[:8]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Traffic:
        for worker in range(self.workers):
            thread = threading.Thread(
                target=self._worker, args=(worker,), name=f"traffic-{worker}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def _worker(self, worker: int) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            sequence = 0
            while not self._stop.is_set():
                sequence += 1
                body = {
                    "model": MODEL_GROUP,
                    "messages": [{"role": "user", "content": "hi"}],
                    "user": f"user-{self._run}-{worker}-{sequence}",
                }
                started = time.time()
                try:
                    response = client.post(self.url, json=body)
                    status = response.status_code
                    answer = response.json()["choices"][0]["message"]["content"] if status == 200 else None
                except (httpx.HTTPError, ValueError, KeyError, IndexError):
                    status, answer = 0, None
                self.results.append(RequestResult(started, time.time(), status, answer))

    def completed(self) -> int:
        return len(self.results)

    def wait_for(self, count: int, timeout: float) -> None:
        """Wait until ``count`` more requests than now have completed."""
        target = self.completed() + count
        wait_until(lambda: self.completed() >= target, timeout, what=f"{count} more chat requests")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        self._threads.clear()

    def __enter__(self) -> Traffic:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


# -- the whole alert path ------------------------------------------------------------------------------


@dataclass
class AlertPathRig:
    """A running alert path: the gateway process, its stack, and the two upstreams (in this process)."""

    gateway: GatewayProcess
    stack: MonitoringStack
    stable: FakeUpstream
    canary: FakeUpstream
    config: CanaryConfig
    time_scale: float

    def window(self, rule: str) -> str:
        """A rule's window as the generated rules spell it (``3s``)."""
        seconds: float = getattr(self.config.rollouts[0].triggers, rule).window_s
        return prometheus_duration(seconds / self.time_scale)

    def status(self) -> dict[str, Any]:
        """The rollout's view in the gateway's ``GET /canary/status``."""
        response = httpx.get(f"{self.gateway.url}/canary/status", headers=self.gateway.headers, timeout=5)
        response.raise_for_status()
        view: dict[str, Any] = response.json()["groups"][MODEL_GROUP]
        return view

    def rolled_back_status(self) -> dict[str, Any] | None:
        """The rollout's status once it is rolled back, else None (a :func:`wait_until` predicate)."""
        view = self.status()
        return view if view["state"] == "rolled_back" else None

    def canary_decisions(self) -> float:
        """``litellm_canary_decisions_total`` of the canary side, from the gateway's ``/metrics/``."""
        text = httpx.get(f"{self.gateway.url}/metrics/", timeout=5).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "litellm_canary_decisions"
            for sample in family.samples
            if sample.name == "litellm_canary_decisions_total"
            and sample.labels.get("model_group") == MODEL_GROUP
            and sample.labels.get("side") == "canary"
        )

    def our_alerts(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Pending or firing alerts of the generated rules in Prometheus, and active in Alertmanager."""
        names = set(ALERT_NAMES.values())
        in_prometheus = [a for a in self.stack.prometheus_alerts() if a["labels"].get("alertname") in names]
        in_alertmanager = [
            a for a in self.stack.alertmanager_alerts() if a["labels"].get("alertname") in names
        ]
        return in_prometheus, in_alertmanager

    def wait_for_watched_traffic(self, rule: str, timeout: float = 30.0) -> None:
        """Wait until Prometheus watches the gateway and ``rule``'s window holds its minimum of canary
        requests: from then on the rule judges real traffic, and a fault is seen at the next scrape."""
        self.stack.wait_watching(timeout=timeout)
        minimum = getattr(self.config.rollouts[0].triggers, rule).min_requests
        expr = (
            f"model_group_side:litellm_canary_attempts:increase{self.window(rule)}"
            f'{{model_group="{MODEL_GROUP}",side="canary"}} >= {minimum}'
        )
        wait_until(lambda: self.stack.query(expr), timeout, interval=0.2, what=f"canary traffic: {expr}")


@contextmanager
def alert_path(
    directory: Path,
    *,
    token: str,
    time_scale: float = TIME_SCALE,
    binaries: Mapping[str, str] | None = None,
    timings: StackTimings | None = None,
    canary_percent: float = 50,
    gateway_evals: Mapping[str, Any] | None = None,
) -> Iterator[AlertPathRig]:
    """Start the upstreams, the gateway (flag at ``canary_percent``, the rollout's ``evals`` block
    ``gateway_evals`` if given) and its stack; stop all on exit.

    The stack starts first, so that Prometheus's ~5 s to its first scrape overlaps the gateway's start;
    call :meth:`AlertPathRig.wait_for_watched_traffic` (with traffic running) before injecting a fault.
    """
    config = alert_rules_config()
    stable = FakeUpstream("stable", answer=STABLE_ANSWER).start()
    try:
        canary = FakeUpstream("canary", answer=CANARY_ANSWER).start()
        try:
            flag_path = directory / "flags" / "flags.json"
            FlagdFileStore(flag_path).set_canary_percent(FLAG_KEY, canary_percent)
            gateway = GatewayProcess(
                directory, gateway_config(stable.base_url, canary.base_url, flag_path, gateway_evals), token
            )
            stack = MonitoringStack(
                directory / "monitoring",
                gateway_url=gateway.url,
                token=token,
                rules=prometheus_rules(config, time_scale=time_scale),
                timings=timings,
                binaries=binaries,
            )
            with stack, gateway:
                yield AlertPathRig(gateway, stack, stable, canary, config, time_scale)
        finally:
            canary.stop()
    finally:
        stable.stop()

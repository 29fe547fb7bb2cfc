"""Prometheus metrics of a canary: how its attempts end, what it decided, its rollbacks and state.

This module owns the exposition — metric names, label sets, buckets — and is the only one that
imports ``prometheus_client`` (the ``metrics`` extra; the scrape-time families are in
:mod:`litellm_canary.integrations.metrics_status`). :class:`CanaryMetrics` listens to a
:class:`MetricsSource` (the ``Canary`` handle is one; this module never imports it) and writes to
its own :class:`CollectorRegistry` (never the global one, so it cannot clash with LiteLLM's
Prometheus integration in the same process):

* ``litellm_canary_attempts_total{model_group, side, deployment, outcome}`` — counter; outcome is the
  status class (success, 4xx, 5xx, timeout, connection, retried, expired)
* ``litellm_canary_ttft_seconds{model_group, side, deployment}`` — histogram
* ``litellm_canary_attempt_duration_seconds{model_group, side, deployment}`` — histogram
* ``litellm_canary_decisions_total{model_group, side, reason}`` — counter
* ``litellm_canary_rollbacks_total{model_group, kind}`` — counter
* ``litellm_canary_rollback_duration_seconds{model_group, stage}`` — histogram; stage ``latched``
  (decision to local latch) or ``flag_written`` (decision to flag-store write)
* ``litellm_canary_verification_total{model_group, verdict}`` — counter of post-rollback verification
  verdicts (:mod:`litellm_canary.verification`); ``not_recovered`` means the rollback did not help
* scrape-time gauges: ``litellm_canary_in_flight_attempts{model_group, side}``,
  ``litellm_canary_conversation_pins{model_group, side}``, ``litellm_canary_rollout_state{model_group}``
  (1 rolled back, 0 armed), ``litellm_canary_flag_write_pending{model_group}``,
  ``litellm_canary_conversation_drain_remaining_seconds{model_group}``,
  ``litellm_canary_last_rollback_timestamp_seconds{model_group}``
* scrape-time counters: ``litellm_canary_flag_evaluations_total{variant}``,
  ``litellm_canary_flag_errors_total{cause}`` (cause: the provider's error code, ``PROVIDER_ERROR`` /
  ``PROVIDER_STALE`` while the provider reports that status, ``BREAKER_OPEN`` while reads are skipped)
* flag health (scrape-time): ``litellm_canary_flag_provider_ready`` (1 READY, 0 otherwise),
  ``litellm_canary_flag_provider_log_suppressed_total``,
  ``litellm_canary_flag_read_breaker_open{model_group}``,
  ``litellm_canary_flag_read_breaker_trips_total{model_group}``,
  ``litellm_canary_flag_reads_over_budget_total{model_group}``
* incidents (scrape-time): ``litellm_canary_incident_write_errors_total{model_group}`` (failed writes)
  and ``litellm_canary_incidents_unwritten{model_group}`` (kept in memory, retried)
* keep-warm and window (scrape-time): ``litellm_canary_stable_healthy{model_group, deployment}``
  (1 healthy, 0 last probe failed; absent before the first probe),
  ``litellm_canary_keep_warm_probes_total{model_group, deployment, result}`` (ok, failed),
  ``litellm_canary_stable_traffic_share{model_group}``,
  ``litellm_canary_window_remaining_seconds{model_group}``, ``litellm_canary_ready_to_promote{model_group}``
* feedback (scrape-time): ``litellm_canary_feedback_total{model_group, side}`` and
  ``litellm_canary_feedback_score_mean{model_group, side}`` (since the rollout was (re-)armed)
* eval scores (scrape-time; source is ``traffic``, ``golden`` or ``feedback``):
  ``litellm_canary_eval_score_mean{model_group, side, source}`` and
  ``litellm_canary_eval_samples{model_group, side, source}`` (since the rollout was (re-)armed),
  ``litellm_canary_eval_log_e_value{model_group, source}``,
  ``litellm_canary_eval_scored_total{model_group, side, source, result}`` (ok, failed),
  ``litellm_canary_eval_dropped_total{model_group, side}`` (eval queue full)

Every label value comes from a set the config or the code bounds: model groups, sides and deployment
ids of the config (an id outside it is counted as ``other``), status classes, decision reasons,
rollback kinds, flag variants and error causes. No user, session, prompt or request id ever becomes
a label. The series of every configured (group, side, deployment, outcome) exist from the start, at
0, so that ``increase()`` in the generated alert rules (:mod:`litellm_canary.alert_rules`) counts the
first failure too. The gauges and the flag counters are computed at scrape time from
``Canary.status()`` by a custom collector instead of being kept a second time here.

The TTFT histogram has a bucket boundary at every configured ttft_p99 threshold, on top of
:data:`LATENCY_BUCKETS`, so that the generated p99 alert decides exactly like the in-process rule.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol, get_args
from wsgiref.simple_server import WSGIServer

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, make_asgi_app, start_http_server
    from prometheus_client.exposition import generate_latest
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "litellm_canary.metrics needs prometheus-client: pip install 'litellm-canary[metrics]'"
    ) from error

from litellm_canary.core.config import CanaryConfig
from litellm_canary.core.decision import Decision, Reason, Side
from litellm_canary.core.outcomes import Outcome
from litellm_canary.core.rollback_record import RollbackKind, RollbackRecord
from litellm_canary.integrations.alert_rules import ttft_thresholds_s
from litellm_canary.integrations.metrics_status import StatusCollector
from litellm_canary.response.verification import Verdict, VerificationResult


class _RollbackSignal(Protocol):
    def on_rollback(self, listener: Callable[[RollbackRecord], None]) -> object: ...


class _VerdictSignal(Protocol):
    def on_verdict(self, listener: Callable[[str, VerificationResult], None]) -> object: ...


class _LastRollback(Protocol):
    @property
    def last_rollback(self) -> RollbackRecord | None: ...


class MetricsSource(Protocol):
    """What :class:`CanaryMetrics` reads of a canary (the ``Canary`` handle is one): its config, each
    group's last rollback, its status, and the outcome, decision, rollback and verdict signals."""

    @property
    def config(self) -> CanaryConfig: ...

    @property
    def runtimes(self) -> Mapping[str, _LastRollback]: ...

    @property
    def controller(self) -> _RollbackSignal: ...

    @property
    def followup(self) -> _VerdictSignal: ...

    def on_outcome(self, listener: Callable[[Outcome], None]) -> object: ...

    def on_decision(self, listener: Callable[[str, Decision, str], None]) -> object: ...

    def status(self) -> dict[str, Any]: ...


__all__ = [
    "LATENCY_BUCKETS",
    "OUTCOMES",
    "ROLLBACK_BUCKETS",
    "CanaryMetrics",
    "MetricsSource",
    "serve_metrics",
]

#: Latency buckets (s) for TTFT and attempt duration: 25 ms to 60 s, denser around 0.5-5 s where
#: LLM first tokens and short completions land (16 bounds, plus +Inf).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    20.0,
    30.0,
    60.0,
)
#: Rollback stage buckets (s): the latch takes microseconds, a flag-store write milliseconds, a
#: retried write seconds.
ROLLBACK_BUCKETS: tuple[float, ...] = (
    1e-6,
    5e-6,
    1e-5,
    5e-5,
    1e-4,
    5e-4,
    1e-3,
    5e-3,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    30.0,
)
#: An attempt's ``outcome`` label: :attr:`Outcome.status_class`; anything else is ``other``.
OUTCOMES: tuple[str, ...] = ("success", "4xx", "5xx", "timeout", "connection", "retried", "expired")
OTHER = "other"
_KINDS: tuple[str, ...] = get_args(RollbackKind)
_STAGES = ("latched", "flag_written")
_SIDES = tuple(side.value for side in Side)

#: The ASGI application type (structurally Starlette's ``ASGIApp``: scope, receive, send).
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class CanaryMetrics:
    """The Prometheus metrics of one canary, in :attr:`registry` (a dedicated one by default).

    Creating it registers outcome, decision and rollback listeners on ``canary``; they stay for the
    canary's lifetime. Serve :attr:`registry` with :meth:`asgi_app` (mount it into the proxy or any
    ASGI app) or :func:`serve_metrics` (its own port).
    """

    def __init__(self, canary: MetricsSource, registry: CollectorRegistry | None = None) -> None:
        self.canary = canary
        self.registry = CollectorRegistry() if registry is None else registry
        config = canary.config
        self._deployments: dict[tuple[str, str], frozenset[str]] = {
            (rollout.model_group, side): frozenset(getattr(rollout, side))
            for rollout in config.rollouts
            for side in _SIDES
        }
        self._pending_lock = threading.Lock()
        self._pending_flag: dict[str, RollbackRecord] = {}
        self._decision_children: dict[tuple[str, str, str], Counter] = {}

        # Registered first, so that a scrape settles late flag writes before the histogram is read.
        self._collector = StatusCollector(canary.status, self._settle_pending_flag_writes)
        self.registry.register(self._collector)

        self.attempts = Counter(
            "litellm_canary_attempts",
            "Attempts on a rollout's deployments, by how they ended (status class).",
            ["model_group", "side", "deployment", "outcome"],
            registry=self.registry,
        )
        self.ttft = Histogram(
            "litellm_canary_ttft_seconds",
            "Time to first token of successful attempts (a process's first stream is left out).",
            ["model_group", "side", "deployment"],
            buckets=sorted(set(LATENCY_BUCKETS) | set(ttft_thresholds_s(config))),
            registry=self.registry,
        )
        self.duration = Histogram(
            "litellm_canary_attempt_duration_seconds",
            "Duration of attempts whose latency LiteLLM reported (successes).",
            ["model_group", "side", "deployment"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "litellm_canary_decisions",
            "Routing decisions of managed model groups, by side and reason.",
            ["model_group", "side", "reason"],
            registry=self.registry,
        )
        self.rollbacks = Counter(
            "litellm_canary_rollbacks",
            "Rollbacks (repeats of an active rollback are not counted).",
            ["model_group", "kind"],
            registry=self.registry,
        )
        self.rollback_duration = Histogram(
            "litellm_canary_rollback_duration_seconds",
            "Time from a rollback decision to the local latch (stage=latched) and to the flag-store "
            "write (stage=flag_written).",
            ["model_group", "stage"],
            buckets=ROLLBACK_BUCKETS,
            registry=self.registry,
        )
        self.verifications = Counter(
            "litellm_canary_verification",
            "Post-rollback verification verdicts (recovered, not_recovered, insufficient_data).",
            ["model_group", "verdict"],
            registry=self.registry,
        )
        self._precreate()
        canary.on_outcome(self._on_outcome)
        canary.on_decision(self._on_decision)
        canary.controller.on_rollback(self._on_rollback)
        canary.followup.on_verdict(
            lambda group, result: self.verifications.labels(group, result.verdict).inc()
        )

    # -- serving ---------------------------------------------------------------------------------

    def asgi_app(self) -> ASGIApp:
        """An ASGI app serving :attr:`registry` (e.g. ``Mount("/metrics", app=metrics.asgi_app())``)."""
        app: ASGIApp = make_asgi_app(self.registry)
        return app

    def exposition(self) -> bytes:
        """The current metrics in the Prometheus text format."""
        return generate_latest(self.registry)

    # -- listeners -------------------------------------------------------------------------------

    def _precreate(self) -> None:
        # Every bounded series at 0 from the start: increase() then sees the first event.
        for (group, side), deployments in self._deployments.items():
            for deployment in sorted(deployments):
                for outcome in OUTCOMES:
                    self.attempts.labels(group, side, deployment, outcome)
                self.ttft.labels(group, side, deployment)
                self.duration.labels(group, side, deployment)
        for rollout in self.canary.config.rollouts:
            group = rollout.model_group
            for side in _SIDES:
                for reason in Reason:
                    key = (group, side, reason.value)
                    self._decision_children[key] = self.decisions.labels(*key)
            for kind in _KINDS:
                self.rollbacks.labels(group, kind)
            for stage in _STAGES:
                self.rollback_duration.labels(group, stage)
            for verdict in get_args(Verdict):
                self.verifications.labels(group, verdict)

    def _deployment(self, group: str, side: str, deployment_id: str) -> str:
        known = self._deployments.get((group, side))
        return deployment_id if known is not None and deployment_id in known else OTHER

    def _on_outcome(self, outcome: Outcome) -> None:
        group, side = outcome.model_group, outcome.side.value
        deployment = self._deployment(group, side, outcome.deployment_id)
        status = outcome.status_class if outcome.status_class in OUTCOMES else OTHER
        self.attempts.labels(group, side, deployment, status).inc()
        if outcome.ttft_s is not None and outcome.ttft_s >= 0:
            self.ttft.labels(group, side, deployment).observe(outcome.ttft_s)
        if outcome.latency_s is not None and outcome.latency_s >= 0:
            self.duration.labels(group, side, deployment).observe(outcome.latency_s)

    def _on_decision(self, model_group: str, decision: Decision, deployment_id: str) -> None:
        # On the request path: a dict lookup and an increment (~1 us; labels() would take ~3 us).
        key = (model_group, decision.side.value, decision.reason.value)
        child = self._decision_children.get(key)
        if child is None:
            child = self._decision_children[key] = self.decisions.labels(*key)
        child.inc()

    def _on_rollback(self, record: RollbackRecord) -> None:
        group = record.model_group
        self.rollbacks.labels(group, record.kind).inc()
        self.rollback_duration.labels(group, "latched").observe(
            max(record.latched_mono - record.decided_mono, 0.0)
        )
        if record.flag_written_mono is not None:
            self._observe_flag_written(record)
        elif record.flag_store is not None:
            # The write failed and is retried in the background: observed by a later scrape.
            with self._pending_lock:
                self._pending_flag[group] = record

    def _observe_flag_written(self, record: RollbackRecord) -> None:
        assert record.flag_written_mono is not None
        self.rollback_duration.labels(record.model_group, "flag_written").observe(
            max(record.flag_written_mono - record.decided_mono, 0.0)
        )

    def _settle_pending_flag_writes(self) -> None:
        with self._pending_lock:
            for group, record in list(self._pending_flag.items()):
                if record.flag_written_mono is not None:
                    self._observe_flag_written(record)
                    del self._pending_flag[group]
                elif self.canary.runtimes[group].last_rollback is not record:
                    del self._pending_flag[group]  # superseded by a later rollback: never written


def serve_metrics(metrics: CanaryMetrics, host: str = "127.0.0.1", port: int = 0) -> tuple[WSGIServer, int]:
    """Serve ``metrics`` over HTTP on ``host:port`` (0: any free port) from a daemon thread.

    Returns the server and the port it listens on; stop it with ``server.shutdown()`` and
    ``server.server_close()``. Binds loopback by default: metrics are for the local scraper.
    """
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server, int(server.server_port)

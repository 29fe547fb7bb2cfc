"""The scrape-time metric families: gauges and counters computed from the canary's status.

This module owns every family that is read from ``status()`` when Prometheus scrapes (in-flight
attempts, pins, rollout state, flag health and breakers, incidents, evals, the canary window and
feedback) rather than counted as events happen (those are in
:mod:`litellm_canary.integrations.metrics`). :class:`StatusCollector` is a ``prometheus_client``
collector given a ``status`` callable, never the canary handle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from litellm_canary.core.decision import Side

__all__ = ["StatusCollector"]

_SIDES = tuple(side.value for side in Side)


class StatusCollector:
    """The scrape-time metrics, read from ``status()`` (the canary's status) at every scrape."""

    def __init__(self, status: Callable[[], dict[str, Any]], before_collect: Callable[[], None]) -> None:
        self._status = status
        self._before_collect = before_collect

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        self._before_collect()
        return self._families(self._status())

    def _families(self, status: dict[str, Any] | None = None) -> list[Metric]:
        in_flight = GaugeMetricFamily(
            "litellm_canary_in_flight_attempts",
            "Attempts running now on each side of a rollout.",
            labels=["model_group", "side"],
        )
        pins = GaugeMetricFamily(
            "litellm_canary_conversation_pins",
            "Conversations pinned to each side of a rollout.",
            labels=["model_group", "side"],
        )
        state = GaugeMetricFamily(
            "litellm_canary_rollout_state",
            "1 when the rollout is rolled back (latched to stable), 0 when armed.",
            labels=["model_group"],
        )
        pending = GaugeMetricFamily(
            "litellm_canary_flag_write_pending",
            "1 while a rollback's flag-store write is being retried.",
            labels=["model_group"],
        )
        drain = GaugeMetricFamily(
            "litellm_canary_conversation_drain_remaining_seconds",
            "Time left for canary conversations to finish after a rollback.",
            labels=["model_group"],
        )
        last = GaugeMetricFamily(
            "litellm_canary_last_rollback_timestamp_seconds",
            "Unix time of the rollout's last rollback decision.",
            labels=["model_group"],
        )
        variants = CounterMetricFamily(
            "litellm_canary_flag_evaluations",
            "Canary flag evaluations, by the variant served.",
            labels=["variant"],
        )
        errors = CounterMetricFamily(
            "litellm_canary_flag_errors",
            "Canary flag evaluations that failed (routed to stable), by cause.",
            labels=["cause"],
        )
        families: list[Metric] = [in_flight, pins, state, pending, drain, last, variants, errors]
        families += _flag_health_families(status)
        families += _incident_families(status)
        families += _eval_families(status)
        families += _lifecycle_families(status)
        if status is None:
            return families
        for group, view in status["groups"].items():
            for side in _SIDES:
                in_flight.add_metric([group, side], view["in_flight"][side])
                pins.add_metric([group, side], view["pins"][side])
            state.add_metric([group], 1.0 if view["state"] == "rolled_back" else 0.0)
            pending.add_metric([group], 1.0 if view["flag_store"]["write_pending"] else 0.0)
            drain.add_metric([group], view["conversation_drain_remaining_s"])
            record = view["last_rollback"]
            if record is not None:
                last.add_metric([group], datetime.fromisoformat(record["decided_at"]).timestamp())
        for variant, count in sorted(status["flag_variants"].items()):
            variants.add_metric([variant], count)
        for cause, count in sorted(status["flag_errors"].items()):
            errors.add_metric([cause], count)
        return families


def _flag_health_families(status: dict[str, Any] | None) -> list[Metric]:
    """The flag source's health and each flag's read-time breaker (:mod:`litellm_canary.flags`)."""
    healthy = GaugeMetricFamily(
        "litellm_canary_flag_provider_ready",
        "1 while the OpenFeature provider reports READY; otherwise managed groups route to stable.",
    )
    suppressed = CounterMetricFamily(
        "litellm_canary_flag_provider_log_suppressed",
        "Repeated flag-provider log records suppressed by the rate limit.",
    )
    breaker_open = GaugeMetricFamily(
        "litellm_canary_flag_read_breaker_open",
        "1 while the group's flag reads were over budget: stable without reading until a probe passes.",
        labels=["model_group"],
    )
    trips = CounterMetricFamily(
        "litellm_canary_flag_read_breaker_trips",
        "Times the group's flag-read breaker opened.",
        labels=["model_group"],
    )
    over_budget = CounterMetricFamily(
        "litellm_canary_flag_reads_over_budget",
        "Flag reads (and probes) that took longer than the rollout's flag_read.budget_ms.",
        labels=["model_group"],
    )
    families: list[Metric] = [healthy, suppressed, breaker_open, trips, over_budget]
    if status is None:
        return families
    source = status.get("flag_source") or {}
    healthy.add_metric([], 1.0 if source.get("provider_status") == "READY" else 0.0)
    suppressed.add_metric([], source.get("provider_log_suppressed", 0))
    for group, view in status["groups"].items():
        breaker = view.get("flag_read")
        if breaker is None:
            continue
        breaker_open.add_metric([group], 1.0 if breaker["state"] == "open" else 0.0)
        trips.add_metric([group], breaker["trips"])
        over_budget.add_metric([group], breaker["over_budget_reads"] + breaker["failed_probes"])
    return families


def _incident_families(status: dict[str, Any] | None) -> list[Metric]:
    """Incident writes that failed, and incidents kept in memory until the directory works again."""
    write_errors = CounterMetricFamily(
        "litellm_canary_incident_write_errors",
        "Incident writes that failed (the incident is kept in memory and retried).",
        labels=["model_group"],
    )
    unwritten = GaugeMetricFamily(
        "litellm_canary_incidents_unwritten",
        "Incidents (or changes to them) waiting in memory for the incidents directory to work again.",
        labels=["model_group"],
    )
    if status is not None:
        for group, view in status["groups"].items():
            record = view["last_rollback"] or {}
            write_errors.add_metric([group], record.get("incident_write_errors", 0))
            unwritten.add_metric([group], record.get("incidents_unwritten", 0))
    return [write_errors, unwritten]


def _eval_families(status: dict[str, Any] | None) -> list[Metric]:
    """The eval pipeline's series (:mod:`litellm_canary.eval_sampling`), from ``status()``."""
    mean = GaugeMetricFamily(
        "litellm_canary_eval_score_mean",
        "Mean eval score of each side since the rollout was (re-)armed, per score source.",
        labels=["model_group", "side", "source"],
    )
    samples = GaugeMetricFamily(
        "litellm_canary_eval_samples",
        "Eval scores behind litellm_canary_eval_score_mean.",
        labels=["model_group", "side", "source"],
    )
    e_value = GaugeMetricFamily(
        "litellm_canary_eval_log_e_value",
        "Log e-value of the eval_score sequential test of one source (the mean e-value rejects at 1/alpha).",
        labels=["model_group", "source"],
    )
    scored = CounterMetricFamily(
        "litellm_canary_eval_scored",
        "Eval samples scored, by side, source and result (ok, failed: scorer or call error).",
        labels=["model_group", "side", "source", "result"],
    )
    dropped = CounterMetricFamily(
        "litellm_canary_eval_dropped",
        "Sampled responses dropped unscored because the eval queue was full.",
        labels=["model_group", "side"],
    )
    families: list[Metric] = [mean, samples, e_value, scored, dropped]
    for group, view in ({} if status is None else status["groups"]).items():
        evals = view.get("evals")
        if not evals:
            continue
        for source, test in evals["series"].items():
            e_value.add_metric([group, source], test["statistic"])
            for side in _SIDES:
                samples.add_metric([group, side, source], test[f"{side}_samples"])
                if test[f"{side}_mean"] is not None:
                    mean.add_metric([group, side, source], test[f"{side}_mean"])
        for source, sides in evals["scored"].items():
            for side, results in sides.items():
                for result, count in results.items():
                    scored.add_metric([group, side, source, result], count)
        for side, count in evals["queue"]["dropped"].items():
            dropped.add_metric([group, side], count)
    return families


def _lifecycle_families(status: dict[str, Any] | None) -> list[Metric]:
    """Keep-warm, canary-window and feedback series (:mod:`litellm_canary.lifecycle`), from ``status()``."""
    healthy = GaugeMetricFamily(
        "litellm_canary_stable_healthy",
        "1 when the stable deployment's last keep-warm probe succeeded, 0 when it failed.",
        labels=["model_group", "deployment"],
    )
    probes = CounterMetricFamily(
        "litellm_canary_keep_warm_probes",
        "Keep-warm probes sent to stable deployments, by result (ok, failed).",
        labels=["model_group", "deployment", "result"],
    )
    share = GaugeMetricFamily(
        "litellm_canary_stable_traffic_share",
        "Stable's share of the group's real attempts over the keep-warm window.",
        labels=["model_group"],
    )
    remaining = GaugeMetricFamily(
        "litellm_canary_window_remaining_seconds",
        "Time left in the rollout's canary window (0 once ended or promoted).",
        labels=["model_group"],
    )
    ready = GaugeMetricFamily(
        "litellm_canary_ready_to_promote",
        "1 when the canary window has ended without a rollback and the rollout is not promoted yet.",
        labels=["model_group"],
    )
    feedback_count = CounterMetricFamily(
        "litellm_canary_feedback",
        "User feedback scores recorded per side since the rollout was (re-)armed.",
        labels=["model_group", "side"],
    )
    feedback_mean = GaugeMetricFamily(
        "litellm_canary_feedback_score_mean",
        "Mean user feedback score per side since the rollout was (re-)armed.",
        labels=["model_group", "side"],
    )
    families: list[Metric] = [healthy, probes, share, remaining, ready, feedback_count, feedback_mean]
    for group, view in ({} if status is None else status["groups"]).items():
        warm = view.get("keep_warm")
        if warm:
            share.add_metric([group], warm["stable_share"])
            for deployment, health in warm["deployments"].items():
                if health["healthy"] is not None:
                    healthy.add_metric([group, deployment], 1.0 if health["healthy"] else 0.0)
                for result, count in health["probes"].items():
                    probes.add_metric([group, deployment, result], count)
        window = view.get("window")
        if window:
            remaining.add_metric([group], window["remaining_s"])
            ready.add_metric([group], 1.0 if window["ready_to_promote"] else 0.0)
        feedback = view.get("feedback")
        if feedback:
            for side, summary in feedback["sides"].items():
                feedback_count.add_metric([group, side], summary["count"])
                if summary["mean"] is not None:
                    feedback_mean.add_metric([group, side], summary["mean"])
    return families

"""End to end: a failing canary is rolled back by Prometheus -> Alertmanager -> the gateway's webhook.

One real gateway process (``litellm-canary serve``: Router + canary + webhook + ``/metrics/``) routes
group ``chat`` over two :class:`~litellm_canary.fake_upstream.FakeUpstream` servers in this process,
50 % of users to the canary (flagd file store). Its own trigger rules are all off, so a rollback can
only come through the alert path: real Prometheus (scraping the gateway every 1 s, evaluating the rules
generated from the same rollout with its rules on, ``time_scale`` 30) and real Alertmanager (the
generated config, posting to the gateway's ``/alertmanager`` with the bearer token). Worker threads
send steady traffic, each request with its own ``user``.
(:mod:`litellm_canary.testing.alert_path_rig` has the rig.)

* A canary that starts failing every request is rolled back with ``kind == "alert"`` and a reason
  naming the alert; once the latch is observed, no new request is decided to, or reaches, the canary.
* A healthy canary under the same traffic, watched for longer than the rules need to fire, fires
  nothing: no pending or firing alert in Prometheus, none in Alertmanager, the rollout stays armed.

Both need the ``prometheus`` and ``prometheus-alertmanager`` binaries and skip without them. Each test
starts its own gateway and stack (about 20 s each, most of it the gateway's start and Prometheus's
~5 s to its first scrape); the fixture stops every process it started.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from litellm_canary.integrations.alert_rules import ALERT_NAMES
from litellm_canary.testing.alert_path_rig import (
    CANARY_ANSWER,
    MODEL_GROUP,
    STABLE_ANSWER,
    AlertPathRig,
    Traffic,
    alert_path,
)
from litellm_canary.testing.gateway_process import wait_until
from litellm_canary.testing.monitoring_stack import require_binaries

TOKEN = "alert-path-token-0123456789"
ROLLBACK_TIMEOUT_S = 30.0
AFTER_LATCH_REQUESTS_PER_WORKER = 10


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[AlertPathRig]:
    binaries = require_binaries()
    with alert_path(tmp_path, token=TOKEN, binaries=binaries) as running:
        yield running


def watch_for(seconds: float, check: Callable[[], None], interval: float = 0.25) -> float:
    """Run ``check`` (which asserts) every ``interval`` s for ``seconds``; returns the span watched.

    Not a synchronisation: the claim under test is that nothing happens during the span.
    """
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        check()
        time.sleep(interval)  # intended: watching that nothing happens for a span
    check()
    return elapsed


def test_a_failing_canary_is_rolled_back_through_the_alert_path(rig: AlertPathRig) -> None:
    with Traffic(rig.gateway.url) as traffic:
        rig.wait_for_watched_traffic("fast_fail")
        assert rig.status()["state"] == "armed"
        assert rig.canary.stats()["requests"] > 0 and rig.stable.stats()["requests"] > 0

        rig.canary.set_faults(error_rate=1.0)
        try:
            status = wait_until(
                rig.rolled_back_status,
                ROLLBACK_TIMEOUT_S,
                interval=0.02,
                what="a rollback via the alert path",
            )
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{rig.stack.logs()}") from None
        # The latch is in place (and observed): from here on nothing new may reach the canary.
        canary_requests = rig.canary.stats()["requests"]
        canary_decisions = rig.canary_decisions()

        rollback = status["last_rollback"]
        assert rollback["kind"] == "alert", rollback
        cause = rollback["cause"]
        assert cause["alertname"] in (ALERT_NAMES["fast_fail"], ALERT_NAMES["error_rate"]), cause
        assert rollback["reason"].startswith(f"{cause['alertname']}: "), rollback["reason"]
        assert cause["labels"]["action"] == "rollback" and cause["labels"]["model_group"] == MODEL_GROUP
        in_flight_at_latch = rollback["in_flight_at_flip"]["canary"]
        assert in_flight_at_latch <= traffic.workers  # one request at a time per worker, no retries

        traffic.wait_for(AFTER_LATCH_REQUESTS_PER_WORKER * traffic.workers, timeout=30)

    # Requests decided before the latch may still have been on their way: at most those in flight.
    assert rig.canary.stats()["requests"] - canary_requests <= in_flight_at_latch
    assert rig.canary_decisions() == canary_decisions
    # Every request the clients started after the decision was served by stable.
    decided_at = datetime.fromisoformat(rollback["decided_at"]).timestamp()
    after = [r for r in traffic.results if r.started > decided_at]
    assert len(after) >= AFTER_LATCH_REQUESTS_PER_WORKER * traffic.workers
    not_stable = [r for r in after if r.status != 200 or r.answer != STABLE_ANSWER]
    assert not_stable == [], not_stable[:5]


def test_a_healthy_canary_fires_nothing(rig: AlertPathRig) -> None:
    triggers = rig.config.rollouts[0].triggers
    # Longer than the error_rate rule needs to fire (window + `for`, 8 s) plus a scrape, an evaluation
    # and a notification; fast_fail (3 s window, no `for`) would fire within the same span.
    span_s = 2 * triggers.error_rate.window_s / rig.time_scale + 4

    def quiet() -> None:
        in_prometheus, in_alertmanager = rig.our_alerts()
        assert in_prometheus == [] and in_alertmanager == [], (in_prometheus, in_alertmanager)
        assert rig.status()["state"] == "armed"

    with Traffic(rig.gateway.url) as traffic:
        rig.wait_for_watched_traffic("error_rate")
        assert watch_for(span_s, quiet) >= span_s

    assert traffic.results and all(r.status == 200 for r in traffic.results), "a healthy run had failures"
    assert {r.answer for r in traffic.results} == {STABLE_ANSWER, CANARY_ANSWER}  # both sides served
    # The rules judged real traffic, not empty windows: every alerting rule is loaded, healthy and
    # inactive, and the canary's error ratio over the error_rate window is a real 0, not "no data".
    ratio = rig.stack.query(
        f"model_group_side:litellm_canary_attempt_error_ratio:ratio_rate{rig.window('error_rate')}"
        f'{{model_group="{MODEL_GROUP}",side="canary"}}'
    )
    assert len(ratio) == 1 and float(ratio[0]["value"][1]) == 0.0, ratio
    alerting = [r for g in rig.stack.rule_groups() for r in g["rules"] if r["type"] == "alerting"]
    # Every rule of the config; no eval_score alert, because the rollout has no evals block.
    assert {r["name"] for r in alerting} == set(ALERT_NAMES.values()) - {ALERT_NAMES["eval_score"]}
    assert all(r["health"] == "ok" and r["state"] == "inactive" for r in alerting), alerting

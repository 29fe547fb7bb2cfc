"""End to end: every PromQL expression of the generated Grafana dashboard, evaluated by a real
Prometheus scraping a real gateway (``litellm-canary serve``) with traffic on both sides, returns data.

The rig is the alert path's (:mod:`litellm_canary.testing.alert_path_rig`): two fake upstreams, the
gateway at 50 % canary, Prometheus scraping it every 1 s. The dashboard is generated from the rig's
rules config (every trigger on). After traffic reaches both sides, a manual rollback through the admin
API makes the rollback annotation's query true. The eval panel's query must evaluate without error;
it has data only where evals run, which the rig's gateway does not configure, so it is the one
expression checked for validity and not for data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from litellm_canary.integrations.grafana_dashboard import dashboard, dashboard_expressions
from litellm_canary.integrations.promql import EVAL_LOG_E_METRIC
from litellm_canary.testing.alert_path_rig import MODEL_GROUP, AlertPathRig, Traffic, alert_path
from litellm_canary.testing.gateway_process import wait_until
from litellm_canary.testing.monitoring_stack import require_binaries

TOKEN = "dashboard-token-0123456789"
DATA_TIMEOUT_S = 30.0


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[AlertPathRig]:
    binaries = require_binaries()
    with alert_path(tmp_path, token=TOKEN, binaries=binaries) as running:
        yield running


def test_every_dashboard_expression_returns_data(rig: AlertPathRig) -> None:
    model = dashboard(rig.config)
    expressions = dashboard_expressions(model)
    with_data = [e for e in expressions if EVAL_LOG_E_METRIC not in e]
    assert len(with_data) >= 7 and len(expressions) == len(with_data) + 1

    with Traffic(rig.gateway.url) as traffic:
        rig.wait_for_watched_traffic("fast_fail")
        response = httpx.post(
            f"{rig.gateway.url}/canary/rollback",
            json={"model_group": MODEL_GROUP, "reason": "dashboard e2e"},
            headers=rig.gateway.headers,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        traffic.wait_for(20, timeout=20)

        def missing() -> list[str]:
            return [e for e in with_data if not rig.stack.query(e)]

        wait_until(lambda: not missing(), DATA_TIMEOUT_S, interval=0.5, what="data for every expression")

    results = {e: rig.stack.query(e) for e in expressions}
    for expr in with_data:
        assert results[expr], expr
    panels = {p["title"].split(" (")[0]: p for p in model["panels"] if p["type"] != "row"}

    def values(title: str, ref: str = "A") -> dict[str, float]:
        (expr,) = (t["expr"] for t in panels[title]["targets"] if t["refId"] == ref)
        return {s["metric"].get("side", ""): float(s["value"][1]) for s in results[expr]}

    # Both sides in every per-side panel, with numbers: the split sums to 1, no errors, a real p99.
    split = values("Traffic split")
    assert set(split) == {"stable", "canary"} and sum(split.values()) == pytest.approx(1.0)
    assert values("Error rate per side") == {"stable": 0.0, "canary": 0.0}
    ttft = values("p99 TTFT per side")
    assert set(ttft) == {"stable", "canary"} and all(math.isfinite(v) and v > 0 for v in ttft.values())
    assert set(values("In-flight attempts per side")) == {"stable", "canary"}
    # Stable without errors: the error_rate threshold is stable + min_delta.
    min_delta = rig.config.rollouts[0].triggers.error_rate.min_delta
    assert values("Error rate per side", "B") == {"": pytest.approx(min_delta)}
    assert values("State") == {"": 1.0}  # rolled back
    annotation = results[expressions[-1]]
    assert annotation[0]["metric"] == {"model_group": MODEL_GROUP, "kind": "manual"}

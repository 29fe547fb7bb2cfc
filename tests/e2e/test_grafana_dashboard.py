"""End to end: every PromQL expression of the generated Grafana dashboard, evaluated by a real
Prometheus scraping a real gateway (``litellm-canary serve``) with traffic on both sides, returns data.

The rig is the alert path's (:mod:`litellm_canary.testing.alert_path_rig`): two fake upstreams, the
gateway at 50 % canary, Prometheus scraping it every 1 s. The gateway scores every response (a regex
both sides' answers match, so no eval alert), and the dashboard is generated from the rig's rules
config (every trigger on) with the same ``evals`` block. After traffic reaches both sides, a manual
rollback through the admin API makes the rollback annotation's query true.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from litellm_canary.core.config.rollout import EvalsConfig
from litellm_canary.integrations.grafana_dashboard import dashboard, dashboard_expressions
from litellm_canary.integrations.promql import EVAL_LOG_E_METRIC
from litellm_canary.testing.alert_path_rig import MODEL_GROUP, AlertPathRig, Traffic, alert_path
from litellm_canary.testing.gateway_process import wait_until
from litellm_canary.testing.monitoring_stack import require_binaries

TOKEN = "dashboard-token-0123456789"
DATA_TIMEOUT_S = 30.0
EVALS = {"scorer": {"builtin": "regex", "pattern": "answer"}, "sample_rate": 1.0}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[AlertPathRig]:
    binaries = require_binaries()
    with alert_path(tmp_path, token=TOKEN, binaries=binaries, gateway_evals=EVALS) as running:
        yield running


def test_every_dashboard_expression_returns_data(rig: AlertPathRig) -> None:
    (rollout,) = rig.config.rollouts
    with_evals = rollout.model_copy(update={"evals": EvalsConfig.model_validate(EVALS)})
    model = dashboard(rig.config.model_copy(update={"rollouts": [with_evals]}))
    expressions = dashboard_expressions(model)
    assert len(expressions) == 9 and any(EVAL_LOG_E_METRIC in e for e in expressions)

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
            return [e for e in expressions if not rig.stack.query(e)]

        wait_until(lambda: not missing(), DATA_TIMEOUT_S, interval=0.5, what="data for every expression")

    results = {e: rig.stack.query(e) for e in expressions}
    for expr in expressions:
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
    # Both sides score 1 on every sample: the test finds no drop, its log e-value stays at or below 0.
    (log_e,) = values("Eval log e-values per source").values()
    assert log_e <= 0
    annotation = results[expressions[-1]]
    assert annotation[0]["metric"] == {"model_group": MODEL_GROUP, "kind": "manual"}

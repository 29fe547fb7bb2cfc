"""A Grafana dashboard (JSON model, importable as is) over the library's metrics, built from a config.

One row per rollout, each with: the traffic split (share of routing decisions per side), the error
rate per side with the error_rate trigger's threshold (``ratio`` x stable and stable +
``min_delta``, as series) and fast_fail's as a line, p99 TTFT per side with the SLO and the
ttft_p99 trigger's threshold as lines, the eval sources' log e-values against ``ln(1/alpha)`` (when
eval_score is on and the rollout has ``evals``), in-flight attempts per side, the rollout's state,
and the gateway's flag errors.
Rollbacks are annotations (one query per rollout, titled with the kind).

The queries read the raw series of :mod:`litellm_canary.integrations.metrics` and
:mod:`litellm_canary.integrations.metrics_status` (not the generated recording rules), so the
dashboard works on a Prometheus without the canary's rule file; each window is the window of the
trigger the panel shows. Text generation only: no I/O.
"""

from __future__ import annotations

import json
import math
from typing import Any

from litellm_canary.core.config import CanaryConfig, Rollout
from litellm_canary.integrations.promql import (
    ATTEMPTS_METRIC,
    EVAL_LOG_E_METRIC,
    TTFT_METRIC,
    num_literal,
    prometheus_duration,
    selector,
)

__all__ = ["dashboard", "dashboard_expressions", "dashboard_json"]

DECISIONS_METRIC = "litellm_canary_decisions_total"
IN_FLIGHT_METRIC = "litellm_canary_in_flight_attempts"
STATE_METRIC = "litellm_canary_rollout_state"
ROLLBACKS_METRIC = "litellm_canary_rollbacks_total"
FLAG_ERRORS_METRIC = "litellm_canary_flag_errors_total"
FLAG_EVALUATIONS_METRIC = "litellm_canary_flag_evaluations_total"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
_WIDTH = 24
_HEIGHT = 8
#: The window of the rollback annotations (a rollback shows while its counter rose within it).
ANNOTATION_WINDOW = "1m"


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def _thresholds(lines: list[tuple[float, str]]) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": color, "value": value} for value, color in sorted(lines)]
    return {"mode": "absolute", "steps": steps}


def _panel(
    title: str,
    targets: list[dict[str, Any]],
    *,
    unit: str,
    grid: tuple[int, int, int, int],
    lines: list[tuple[float, str]] | None = None,
    kind: str = "timeseries",
    description: str = "",
) -> dict[str, Any]:
    x, y, w, h = grid
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 0}
    if lines:
        custom["thresholdsStyle"] = {"mode": "line+area" if kind == "timeseries" else "off"}
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "thresholds": _thresholds(lines or []),
                **({"custom": custom} if kind == "timeseries" else {}),
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
        if kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
    }


def _error_ratio(g: str, w: str, side: str | None) -> str:
    labels = {"model_group": g} if side is None else {"model_group": g, "side": side}
    by = "sum by (side) " if side is None else "sum "
    failed = selector(ATTEMPTS_METRIC, **labels).replace("}", ',outcome!="success"}')
    return f"{by}(rate({failed}[{w}]))\n  /\n{by}(rate({selector(ATTEMPTS_METRIC, **labels)}[{w}]))"


def _rollout_panels(rollout: Rollout, y: int, ids: list[int]) -> list[dict[str, Any]]:
    g = rollout.model_group
    t = rollout.triggers
    err_w = prometheus_duration(t.error_rate.window_s)
    ttft_w = prometheus_duration(t.ttft_p99.window_s)
    half = _WIDTH // 2
    panels: list[dict[str, Any]] = []

    decisions = f"rate({selector(DECISIONS_METRIC, model_group=g)}[{err_w}])"
    panels.append(
        _panel(
            "Traffic split (share of routing decisions)",
            [
                _target(
                    f"sum by (side) ({decisions})\n  / ignoring(side) group_left()\nsum ({decisions})",
                    "{{side}}",
                    "A",
                )
            ],
            unit="percentunit",
            grid=(0, y, half, _HEIGHT),
            description=f"Share of routing decisions per side over {err_w}.",
        )
    )

    err_targets = [_target(_error_ratio(g, err_w, None), "{{side}}", "A")]
    err_lines: list[tuple[float, str]] = []
    if t.error_rate.enabled:
        stable = _error_ratio(g, err_w, "stable")
        r, d = num_literal(t.error_rate.ratio), num_literal(t.error_rate.min_delta)
        # The canary breaches above both: ratio x stable and stable + min_delta (the larger one).
        threshold = f"({r} * ({stable})) > ({stable} + {d})\n  or\n({stable}) + {d}"
        err_targets.append(_target(threshold, "error_rate threshold", "B"))
    if t.fast_fail.enabled:
        err_lines.append((t.fast_fail.error_rate, "red"))
    panels.append(
        _panel(
            f"Error rate per side ({err_w})",
            err_targets,
            unit="percentunit",
            grid=(half, y, half, _HEIGHT),
            lines=err_lines,
            description="error_rate threshold: the canary breaches above max(ratio x stable, stable + "
            f"min_delta) with ratio {t.error_rate.ratio:g}, min_delta {t.error_rate.min_delta:g}; the "
            f"line is fast_fail's error rate {t.fast_fail.error_rate:g}.",
        )
    )

    ttft = f"rate({selector(TTFT_METRIC + '_bucket', model_group=g)}[{ttft_w}])"
    slo_s = t.ttft_p99.slo_ms / 1000
    ttft_lines = [(slo_s, "orange")]
    if t.ttft_p99.enabled:
        ttft_lines.append((t.ttft_p99.ratio * slo_s, "red"))
    panels.append(
        _panel(
            f"p99 TTFT per side ({ttft_w})",
            [_target(f"histogram_quantile(0.99, sum by (le, side) ({ttft}))", "{{side}}", "A")],
            unit="s",
            grid=(0, y + _HEIGHT, half, _HEIGHT),
            lines=ttft_lines,
            description=f"Lines: the SLO ({slo_s:g} s) and the ttft_p99 trigger's threshold "
            f"(ratio {t.ttft_p99.ratio:g} x SLO).",
        )
    )

    in_flight = selector(IN_FLIGHT_METRIC, model_group=g)
    panels.append(
        _panel(
            "In-flight attempts per side",
            [_target(f"sum by (side) ({in_flight})", "{{side}}", "A")],
            unit="short",
            grid=(half, y + _HEIGHT, half, _HEIGHT),
        )
    )

    row3 = y + 2 * _HEIGHT
    third = _WIDTH // 3
    flag_errors = f"sum by (cause) (rate({FLAG_ERRORS_METRIC}[{err_w}]))"
    # `or on() 0 * evaluations`: no error series yet means 0 errors, not no data (only then).
    flag_zero = f'0 * label_replace(sum (rate({FLAG_EVALUATIONS_METRIC}[{err_w}])), "cause", "none", "", "")'
    panels.append(
        _panel(
            "Flag errors (gateway-wide, routed to stable)",
            [_target(f"{flag_errors}\n  or on()\n{flag_zero}", "{{cause}}", "A")],
            unit="reqps",
            grid=(0, row3, third, _HEIGHT),
        )
    )
    panels.append(
        _panel(
            "State (1 = rolled back)",
            [_target(f"max ({selector(STATE_METRIC, model_group=g)})", "state", "A")],
            unit="short",
            grid=(third, row3, third, _HEIGHT),
            lines=[(1, "red")],
            kind="stat",
        )
    )
    if t.eval_score.enabled and rollout.evals is not None:  # without evals there are no scores
        log_e = selector(EVAL_LOG_E_METRIC, model_group=g)
        threshold_log_e = math.log(1 / t.eval_score.alpha)
        panels.append(
            _panel(
                "Eval log e-values per source",
                [_target(f"sum by (source) ({log_e})", "{{source}}", "A")],
                unit="short",
                grid=(2 * third, row3, third, _HEIGHT),
                lines=[(threshold_log_e, "red")],
                description=f"The eval_score test rejects at e-value 1/alpha: log e-value "
                f"{threshold_log_e:.4g} (alpha {t.eval_score.alpha:g}).",
            )
        )
    for panel in panels:
        ids.append(len(ids) + 1)
        panel["id"] = ids[-1]
    return panels


def dashboard(config: CanaryConfig, *, title: str = "LiteLLM canary") -> dict[str, Any]:
    """The dashboard's JSON model: one row per rollout, rollbacks as annotations."""
    panels: list[dict[str, Any]] = []
    ids: list[int] = []
    annotations: list[dict[str, Any]] = [
        {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }
    ]
    y = 0
    for rollout in config.rollouts:
        g = rollout.model_group
        ids.append(len(ids) + 1)
        panels.append(
            {
                "type": "row",
                "id": ids[-1],
                "title": f"Rollout {g} (flag {rollout.flag_key})",
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": _WIDTH, "h": 1},
                "panels": [],
            }
        )
        panels += _rollout_panels(rollout, y + 1, ids)
        y += 1 + 3 * _HEIGHT
        rollbacks = selector(ROLLBACKS_METRIC, model_group=g)
        annotations.append(
            {
                "datasource": DATASOURCE,
                "enable": True,
                "iconColor": "red",
                "name": f"Rollbacks of {g}",
                "expr": f"sum by (model_group, kind) (increase({rollbacks}[{ANNOTATION_WINDOW}])) > 0",
                "step": "15s",
                "titleFormat": "Rollback of {{model_group}} ({{kind}})",
                "tagKeys": "model_group,kind",
                "textFormat": "",
                "useValueForTime": False,
            }
        )
    return {
        "title": title,
        "uid": "litellm-canary",
        "tags": ["litellm-canary"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                }
            ]
        },
        "annotations": {"list": annotations},
        "panels": panels,
    }


def dashboard_expressions(model: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard model: each panel target's and each annotation's."""
    exprs = [t["expr"] for p in model["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in model["annotations"]["list"] if "expr" in a]
    return exprs


def dashboard_json(config: CanaryConfig) -> str:
    """The dashboard as JSON text (what ``litellm-canary dashboard`` prints)."""
    return json.dumps(dashboard(config), indent=2) + "\n"

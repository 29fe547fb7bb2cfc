"""PromQL text for the generated rules: metric names, recording rules, literals and durations.

This module owns the vocabulary the generated Prometheus rules are written in: the series
:mod:`litellm_canary.integrations.metrics` exposes, the names and expressions of the recording
rules (per request window, per TTFT window, and the eval-score sums), PromQL number and string
literals, and Prometheus durations. The alerts built from them are in
:mod:`litellm_canary.integrations.alert_rules`.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = [
    "ATTEMPTS_METRIC",
    "EVAL_LOG_E_METRIC",
    "EVAL_LOG_E_SERIES",
    "EVAL_SAMPLES_METRIC",
    "EVAL_SAMPLES_SERIES",
    "REL_TOL",
    "TTFT_METRIC",
    "attempts_increase",
    "attempts_rate",
    "baseline_series",
    "error_ratio",
    "errors_increase",
    "eval_recording_rules",
    "num_literal",
    "percent",
    "pooled_error_ratio",
    "prometheus_duration",
    "recording_rule",
    "request_recording_rules",
    "selector",
    "str_literal",
    "ttft_p99_series",
    "ttft_recording_rules",
    "ttft_samples_series",
    "z_score_series",
]

#: The series the rules read (exposed by :mod:`litellm_canary.metrics`; the eval-score gauges by the
#: evals integration).
ATTEMPTS_METRIC = "litellm_canary_attempts_total"
TTFT_METRIC = "litellm_canary_ttft_seconds"
EVAL_LOG_E_METRIC = "litellm_canary_eval_log_e_value"
EVAL_SAMPLES_METRIC = "litellm_canary_eval_samples"

# triggers.py decides "exactly at the threshold" with a relative tolerance of 1e-9 so that float
# rounding cannot decide it; the thresholds below carry the same tolerance.
REL_TOL = 1e-9

_UNITS_MS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000))


def prometheus_duration(seconds: float) -> str:
    """``seconds`` as a Prometheus duration, to the millisecond: ``2m``, ``1m30s``, ``1500ms``.

    Whole seconds are written in units (``d h m s``); anything else in milliseconds. Raises
    ``ValueError`` for a duration that rounds to less than 1 ms.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be finite, got {seconds!r}")
    ms = round(seconds * 1000)
    if ms < 1:
        raise ValueError(f"a duration must be at least 1 ms, got {seconds!r} s")
    if ms % 1000:
        return f"{ms}ms"
    parts = []
    for unit, size in _UNITS_MS:
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# -- PromQL text ------------------------------------------------------------------------------------


def num_literal(value: float) -> str:
    """A PromQL number literal (shortest repr that round-trips)."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"a threshold must be finite, got {value!r}")
    return repr(float(value))


def str_literal(value: str) -> str:
    """A PromQL string literal (Go escapes, which JSON's are a subset of)."""
    return json.dumps(value, ensure_ascii=False)


def selector(metric: str, **labels: str) -> str:
    return metric + "{" + ",".join(f"{name}={str_literal(value)}" for name, value in labels.items()) + "}"


def attempts_increase(w: str) -> str:
    return f"model_group_side:litellm_canary_attempts:increase{w}"


def attempts_rate(w: str) -> str:
    return f"model_group_side:litellm_canary_attempts:rate{w}"


def errors_increase(w: str) -> str:
    return f"model_group_side:litellm_canary_attempt_errors:increase{w}"


def error_ratio(w: str) -> str:
    return f"model_group_side:litellm_canary_attempt_error_ratio:ratio_rate{w}"


def pooled_error_ratio(w: str) -> str:
    return f"model_group:litellm_canary_attempt_error_ratio:ratio_rate{w}"


def ttft_p99_series(w: str) -> str:
    return f"model_group_side:litellm_canary_ttft_seconds:p99_rate{w}"


def ttft_samples_series(w: str) -> str:
    return f"model_group_side:litellm_canary_ttft_seconds_count:increase{w}"


def baseline_series(w: str) -> str:
    return f"model_group:litellm_canary_error_rate_baseline:ratio_rate{w}"


def z_score_series(w: str) -> str:
    return f"model_group:litellm_canary_error_rate_z_score:ratio_rate{w}"


EVAL_LOG_E_SERIES = "model_group_source:litellm_canary_eval_log_e_value:sum"
EVAL_SAMPLES_SERIES = "model_group_side_source:litellm_canary_eval_samples:sum"


def recording_rule(name: str, expr: str) -> dict[str, Any]:
    return {"record": name, "expr": expr}


def request_recording_rules(w: str) -> list[dict[str, Any]]:
    by = "sum by (model_group, side)"
    return [
        recording_rule(attempts_increase(w), f"{by} (increase({ATTEMPTS_METRIC}[{w}]))"),
        recording_rule(attempts_rate(w), f"{by} (rate({ATTEMPTS_METRIC}[{w}]))"),
        # `or 0 * attempts`: a side with traffic but no failure series yet has 0 errors, not none.
        recording_rule(
            errors_increase(w),
            f'{by} (increase({ATTEMPTS_METRIC}{{outcome!="success"}}[{w}]))\n'
            f"  or\n0 * {attempts_increase(w)}",
        ),
        recording_rule(error_ratio(w), f"{errors_increase(w)}\n  /\n{attempts_increase(w)}"),
        # Both sides together: the pooled error ratio of the error_rate rule's z-test.
        recording_rule(
            pooled_error_ratio(w),
            f"sum by (model_group) ({errors_increase(w)})\n"
            f"  /\nsum by (model_group) ({attempts_increase(w)})",
        ),
    ]


def ttft_recording_rules(w: str) -> list[dict[str, Any]]:
    return [
        recording_rule(
            ttft_p99_series(w),
            f"histogram_quantile(0.99, sum by (le, model_group, side) (rate({TTFT_METRIC}_bucket[{w}])))",
        ),
        recording_rule(
            ttft_samples_series(w), f"sum by (model_group, side) (increase({TTFT_METRIC}_count[{w}]))"
        ),
    ]


def eval_recording_rules() -> list[dict[str, Any]]:
    # Replicas test disjoint samples, and a product of independent e-processes is an e-process: per
    # source, the sum of the replicas' log e-values is the source's log e-value (see _eval_alert).
    return [
        recording_rule(EVAL_LOG_E_SERIES, f"sum by (model_group, source) ({EVAL_LOG_E_METRIC})"),
        recording_rule(EVAL_SAMPLES_SERIES, f"sum by (model_group, side, source) ({EVAL_SAMPLES_METRIC})"),
    ]


def percent(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"

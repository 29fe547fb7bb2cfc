"""Prometheus rules and an Alertmanager config, generated from a :class:`CanaryConfig`.

This module owns the translation of the in-process rollback rules (:mod:`litellm_canary.triggers`)
into PromQL over the series that :mod:`litellm_canary.metrics` exposes, so that a Prometheus watching
every replica reaches the same verdicts as each replica does on its own traffic:

* recording rules, per ``model_group`` and ``side`` and per window length a rule uses: attempts
  (``increase``), request rate, errors and the error ratio; the p99 time to first token and its
  sample count; the eval-score mean weighted over replicas; and, per rollout, the error-rate baseline;
* one alerting rule per enabled trigger and rollout, labelled ``action: rollback``, with the same
  thresholds, minimum-traffic guards and ``for`` durations as in-process (strict ``>``/``<`` with the
  same 1e-9 relative tolerance, ``>=`` for fast_fail);
* an Alertmanager config that sends only ``action="rollback"`` alerts to one webhook, at once.

Everything here is text generation: no I/O, no ``prometheus_client``. ``promtool check rules``,
``promtool test rules`` and ``amtool check-config`` verify the output in ``tests/test_alert_rules.py``.

On the same counts the verdicts are the same, not merely close (``tests/test_alert_rules.py`` checks
every scenario against the in-process ``check_*`` functions too):

* the error_rate significance guard computes the same z statistic as ``triggers.error_rate_z`` and
  compares it with the same critical value, ``NormalDist().inv_cdf(1 - alpha)``;
* the TTFT histogram has a bucket boundary at every configured ``ttft_p99`` threshold (see
  :func:`ttft_thresholds_s`, used by :mod:`litellm_canary.metrics`), which makes
  ``histogram_quantile(0.99, ...) > threshold`` true exactly when fewer than 99 % of the samples are
  at or below the threshold, as for the nearest-rank p99 in-process;
* every error counter series exists from the start (the metrics pre-create them), so ``increase()``
  sees the first failure, and a side without any failure series counts 0 errors, not none.

What differs is the window itself: Prometheus sums every replica's traffic, and its windows slide
over scrapes (``increase()`` extrapolates to the window's edges), where each replica's in-process
window slides over its own time buckets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any, Literal

from litellm_canary.core.config import (
    CanaryConfig,
    ErrorRateTrigger,
    EvalScoreTrigger,
    FastFailTrigger,
    Rollout,
    TtftP99Trigger,
)
from litellm_canary.detection.rules import RULES, RuleName

__all__ = [
    "ALERT_NAMES",
    "ATTEMPTS_METRIC",
    "EVAL_LOG_E_METRIC",
    "EVAL_SAMPLES_METRIC",
    "TTFT_METRIC",
    "alertmanager_config",
    "alertmanager_config_data",
    "prometheus_duration",
    "prometheus_rules",
    "prometheus_rules_data",
    "ttft_threshold_s",
    "ttft_thresholds_s",
]

#: The series the rules read (exposed by :mod:`litellm_canary.metrics`; the eval-score gauges by the
#: evals integration).
ATTEMPTS_METRIC = "litellm_canary_attempts_total"
TTFT_METRIC = "litellm_canary_ttft_seconds"
EVAL_LOG_E_METRIC = "litellm_canary_eval_log_e_value"
EVAL_SAMPLES_METRIC = "litellm_canary_eval_samples"

#: The alert name of each rule.
ALERT_NAMES: Mapping[RuleName, str] = {
    "fast_fail": "LitellmCanaryFastFail",
    "error_rate": "LitellmCanaryErrorRate",
    "ttft_p99": "LitellmCanaryTtftP99",
    "eval_score": "LitellmCanaryEvalScore",
}

GROUP_NAME = "litellm_canary"
ROLLBACK_RECEIVER = "litellm-canary-rollback"
NULL_RECEIVER = "litellm-canary-null"

# triggers.py decides "exactly at the threshold" with a relative tolerance of 1e-9 so that float
# rounding cannot decide it; the thresholds below carry the same tolerance.
_REL_TOL = 1e-9

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


def ttft_threshold_s(rule: TtftP99Trigger) -> float:
    """The ttft_p99 rule's threshold in seconds: ``ratio`` x ``slo_ms`` / 1000."""
    return rule.ratio * rule.slo_ms / 1000


def ttft_thresholds_s(config: CanaryConfig) -> tuple[float, ...]:
    """Every enabled ttft_p99 threshold (s), sorted: the TTFT histogram needs a bucket at each."""
    return tuple(
        sorted(
            {ttft_threshold_s(r.triggers.ttft_p99) for r in config.rollouts if r.triggers.ttft_p99.enabled}
        )
    )


# -- PromQL text ------------------------------------------------------------------------------------


def _num(value: float) -> str:
    """A PromQL number literal (shortest repr that round-trips)."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"a threshold must be finite, got {value!r}")
    return repr(float(value))


def _str(value: str) -> str:
    """A PromQL string literal (Go escapes, which JSON's are a subset of)."""
    return json.dumps(value, ensure_ascii=False)


def _sel(metric: str, **labels: str) -> str:
    return metric + "{" + ",".join(f"{name}={_str(value)}" for name, value in labels.items()) + "}"


def _attempts_increase(w: str) -> str:
    return f"model_group_side:litellm_canary_attempts:increase{w}"


def _attempts_rate(w: str) -> str:
    return f"model_group_side:litellm_canary_attempts:rate{w}"


def _errors_increase(w: str) -> str:
    return f"model_group_side:litellm_canary_attempt_errors:increase{w}"


def _error_ratio(w: str) -> str:
    return f"model_group_side:litellm_canary_attempt_error_ratio:ratio_rate{w}"


def _pooled_error_ratio(w: str) -> str:
    return f"model_group:litellm_canary_attempt_error_ratio:ratio_rate{w}"


def _ttft_p99(w: str) -> str:
    return f"model_group_side:litellm_canary_ttft_seconds:p99_rate{w}"


def _ttft_samples(w: str) -> str:
    return f"model_group_side:litellm_canary_ttft_seconds_count:increase{w}"


def _baseline(w: str) -> str:
    return f"model_group:litellm_canary_error_rate_baseline:ratio_rate{w}"


def _z_score(w: str) -> str:
    return f"model_group:litellm_canary_error_rate_z_score:ratio_rate{w}"


_EVAL_LOG_E = "model_group_source:litellm_canary_eval_log_e_value:sum"
_EVAL_SAMPLES = "model_group_side_source:litellm_canary_eval_samples:sum"


def _record(name: str, expr: str) -> dict[str, Any]:
    return {"record": name, "expr": expr}


def _request_rules(w: str) -> list[dict[str, Any]]:
    by = "sum by (model_group, side)"
    return [
        _record(_attempts_increase(w), f"{by} (increase({ATTEMPTS_METRIC}[{w}]))"),
        _record(_attempts_rate(w), f"{by} (rate({ATTEMPTS_METRIC}[{w}]))"),
        # `or 0 * attempts`: a side with traffic but no failure series yet has 0 errors, not none.
        _record(
            _errors_increase(w),
            f'{by} (increase({ATTEMPTS_METRIC}{{outcome!="success"}}[{w}]))\n'
            f"  or\n0 * {_attempts_increase(w)}",
        ),
        _record(_error_ratio(w), f"{_errors_increase(w)}\n  /\n{_attempts_increase(w)}"),
        # Both sides together: the pooled error ratio of the error_rate rule's z-test.
        _record(
            _pooled_error_ratio(w),
            f"sum by (model_group) ({_errors_increase(w)})\n"
            f"  /\nsum by (model_group) ({_attempts_increase(w)})",
        ),
    ]


def _ttft_rules(w: str) -> list[dict[str, Any]]:
    return [
        _record(
            _ttft_p99(w),
            f"histogram_quantile(0.99, sum by (le, model_group, side) (rate({TTFT_METRIC}_bucket[{w}])))",
        ),
        _record(_ttft_samples(w), f"sum by (model_group, side) (increase({TTFT_METRIC}_count[{w}]))"),
    ]


def _eval_rules() -> list[dict[str, Any]]:
    # Replicas test disjoint samples, and a product of independent e-processes is an e-process: per
    # source, the sum of the replicas' log e-values is the source's log e-value (see _eval_alert).
    return [
        _record(_EVAL_LOG_E, f"sum by (model_group, source) ({EVAL_LOG_E_METRIC})"),
        _record(_EVAL_SAMPLES, f"sum by (model_group, side, source) ({EVAL_SAMPLES_METRIC})"),
    ]


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


def _alert(
    rule: RuleName,
    rollout: Rollout,
    expr: str,
    for_: str | None,
    summary: str,
    description: str,
) -> dict[str, Any]:
    alert: dict[str, Any] = {"alert": ALERT_NAMES[rule], "expr": expr}
    if for_ is not None:
        alert["for"] = for_
    alert["labels"] = {
        "model_group": rollout.model_group,
        "action": "rollback",
        "severity": "critical",
        "rule": rule,
    }
    alert["annotations"] = {"summary": summary, "description": description}
    return alert


_WHO = "Canary of {{ $labels.model_group }}"
_FOOTER = "Generated by litellm-canary; an action=rollback alert rolls the canary back."


def _error_rate_rules(rollout: Rollout, rule: ErrorRateTrigger, w: str) -> list[dict[str, Any]]:
    g = rollout.model_group
    n = rule.min_requests
    stable = _sel(_error_ratio(w), model_group=g, side="stable")
    stable_n = _sel(_attempts_increase(w), model_group=g, side="stable")
    baseline_expr = (
        f"label_replace(\n  max by (model_group) (\n    {stable}\n      and on(model_group)\n"
        f'    ({stable_n} >= {n})\n  ),\n  "source", "stable", "", ""\n)'
    )
    if rule.baseline_error_rate is not None:
        replacement = _str(g.replace("$", "$$"))  # label_replace expands $1 in the replacement
        configured = (
            f'label_replace(label_replace(vector({_num(rule.baseline_error_rate)}), "model_group", '
            f'{replacement}, "", ""), "source", "config", "", "")'
        )
        baseline_expr += f"\n  or on(model_group)\n{configured}"
    baseline = _sel(_baseline(w), model_group=g)
    canary = _sel(_error_ratio(w), model_group=g, side="canary")
    canary_n = _sel(_attempts_increase(w), model_group=g, side="canary")
    up = 1 + _REL_TOL
    above = f"{canary}\n    > on(model_group) group_left()\n "
    expr = (
        f"(\n  {above} {_num(rule.ratio * up)} * {baseline}\n)\n"
        f"and on(model_group)\n"
        f"(\n  {above} {_num(up)} * ({baseline} + {_num(rule.min_delta)})\n)\n"
        f"and on(model_group)\n"
        f"({canary_n} >= {n})"
    )
    fallback = (
        f", or the configured {_pct(rule.baseline_error_rate)} while stable has fewer than {n}"
        if rule.baseline_error_rate is not None
        else f" (no alert while stable has fewer than {n} requests: no baseline_error_rate is configured)"
    )
    description = (
        f"error_rate rule: the canary's error ratio over {w} is above {rule.ratio:g}x the baseline and "
        f"above the baseline + {_pct(rule.min_delta)}, with at least {n} canary requests in the "
        f"window, continuously for {w}. The baseline is stable's error ratio over the same window when "
        f"stable has at least {n} requests{fallback}. {_FOOTER}"
    )
    summary = (
        f"{_WHO}: error rate {{{{ $value | humanizePercentage }}}} over {w} is above "
        f"{rule.ratio:g}x the baseline and the baseline + {_pct(rule.min_delta)}"
    )
    # Recordings labelled with their model_group so that each rollout's are distinct rules.
    rules = [{**_record(_baseline(w), baseline_expr), "labels": {"model_group": g}}]
    alpha = rule.alpha
    if alpha is not None:
        rules.append({**_record(_z_score(w), _z_score_expr(rollout, rule, w)), "labels": {"model_group": g}})
        critical = NormalDist().inv_cdf(1 - alpha)
        expr += f"\nand on(model_group)\n({_sel(_z_score(w), model_group=g)} > {_num(critical)})"
        description = description.replace(
            f" {_FOOTER}",
            f" The excess must also be significant: a one-sided z-test at alpha {alpha:g} "
            f"(z > {critical:.4g}), two-proportion against stable, or one-sample against the configured "
            f"baseline. {_FOOTER}",
        )
    rules.append(_alert("error_rate", rollout, expr, w, summary, description))
    return rules


def _z_score_expr(rollout: Rollout, rule: ErrorRateTrigger, w: str) -> str:
    """The z statistic of the canary's excess error rate, as ``triggers.error_rate_z`` computes it.

    Against stable (two proportions, pooled variance) when stable has ``min_requests``, else against
    the configured baseline (one sample). A zero variance gives +Inf for an excess, NaN for none.
    """
    g = rollout.model_group
    rc, rs = (_sel(_error_ratio(w), model_group=g, side=side) for side in ("canary", "stable"))
    nc, ns = (_sel(_attempts_increase(w), model_group=g, side=side) for side in ("canary", "stable"))
    pooled = _sel(_pooled_error_ratio(w), model_group=g)
    expr = (
        f"(\n  {rc}\n    - on(model_group)\n  {rs}\n)\n/\n"
        f"sqrt(\n  {pooled} * (1 - {pooled})\n  * (1 / {nc} + on(model_group) 1 / {ns})\n)\n"
        f"and on(model_group)\n({ns} >= {rule.min_requests})"
    )
    if rule.baseline_error_rate is not None:
        b = rule.baseline_error_rate
        expr += (
            f"\n  or on(model_group)\n"
            f"sum by (model_group) (({rc} - {_num(b)}) / sqrt({_num(b * (1 - b))} / {nc}))"
        )
    return expr


def _fast_fail_alert(rollout: Rollout, rule: FastFailTrigger, w: str) -> dict[str, Any]:
    g = rollout.model_group
    canary = _sel(_error_ratio(w), model_group=g, side="canary")
    canary_n = _sel(_attempts_increase(w), model_group=g, side="canary")
    expr = (
        f"{canary} >= {_num(rule.error_rate * (1 - _REL_TOL))}\n"
        f"and on(model_group)\n"
        f"{canary_n} >= {rule.min_requests}"
    )
    summary = (
        f"{_WHO} is failing: error rate {{{{ $value | humanizePercentage }}}} over {w} "
        f"(at least {_pct(rule.error_rate)})"
    )
    description = (
        f"fast_fail rule: the canary's error ratio over {w} is at or above {_pct(rule.error_rate)} "
        f"with at least {rule.min_requests} canary requests in the window; fires at once. {_FOOTER}"
    )
    return _alert("fast_fail", rollout, expr, None, summary, description)


def _ttft_alert(rollout: Rollout, rule: TtftP99Trigger, w: str) -> dict[str, Any]:
    g = rollout.model_group
    threshold = ttft_threshold_s(rule)
    expr = (
        f"{_sel(_ttft_p99(w), model_group=g, side='canary')} > {_num(threshold * (1 + _REL_TOL))}\n"
        f"and on(model_group)\n"
        f"{_sel(_ttft_samples(w), model_group=g, side='canary')} >= {rule.min_requests}"
    )
    summary = (
        f"{_WHO}: TTFT p99 {{{{ $value | humanizeDuration }}}} over {w} is above "
        f"{threshold:g}s ({rule.ratio:g}x the {rule.slo_ms:g} ms SLO)"
    )
    description = (
        f"ttft_p99 rule: the canary's p99 time to first token over {w} is above {threshold:g}s "
        f"({rule.ratio:g} x slo_ms {rule.slo_ms:g}) with at least {rule.min_requests} TTFT samples in "
        f"the window, continuously for {w}. {_FOOTER}"
    )
    return _alert("ttft_p99", rollout, expr, w, summary, description)


def _eval_alert(rollout: Rollout, rule: EvalScoreTrigger, sources: int) -> dict[str, Any]:
    # The in-process EvalJudge: the mean of the sources' e-values (a source with no series yet has
    # e-value 1) reaches 1/alpha while some source has min_samples scores on each side. Per source,
    # replicas' log e-values are summed first (the recording rule): a product of e-processes on
    # disjoint samples is an e-process.
    g = rollout.model_group
    n = rule.min_samples
    threshold = math.log(1.0 / rule.alpha)
    log_e = _sel(_EVAL_LOG_E, model_group=g)
    expr = (
        f"ln(\n  (sum by (model_group) (exp({log_e})) + ({sources} - count by (model_group) ({log_e})))\n"
        f"  / {sources}\n) >= {_num(threshold)}\n"
        f"and on(model_group)\n"
        f"max by (model_group) (min by (model_group, source) ({_sel(_EVAL_SAMPLES, model_group=g)})) >= {n}"
    )
    summary = (
        f"{_WHO}: eval scores are more than {_pct(rule.max_drop)} below stable's "
        f'(log mean e-value {{{{ $value | printf "%.4g" }}}} >= {threshold:.4g})'
    )
    description = (
        f"eval_score rule: the mean of the always-valid sequential tests' e-values over {sources} score "
        f"source(s) (each summed over replicas) rejects 'canary within {rule.max_drop:g} of stable' at "
        f"alpha {rule.alpha:g}, with some source at {n} scores or more on each side; fires at once. {_FOOTER}"
    )
    return _alert("eval_score", rollout, expr, None, summary, description)


def prometheus_rules_data(
    config: CanaryConfig,
    *,
    time_scale: float = 1.0,
    interval_s: float | None = None,
    scrape_interval_s: float | None = None,
) -> dict[str, Any]:
    """The rule file as data: ``{"groups": [...]}`` (see :func:`prometheus_rules`)."""
    if not (math.isfinite(time_scale) and time_scale > 0):
        raise ValueError(f"time_scale must be a finite number > 0, got {time_scale!r}")
    floor = scrape_interval_s or 0.0

    def window(seconds: float) -> str:
        scaled = seconds / time_scale
        if floor and scaled < 2 * floor:
            # increase()/rate() need two samples inside the window: such an alert could never fire.
            raise ValueError(
                f"a rule window of {seconds:g} s / time_scale {time_scale:g} = {scaled:g} s is shorter than "
                f"two scrape intervals ({floor:g} s)"
            )
        return prometheus_duration(scaled)

    request_windows: dict[str, None] = {}
    ttft_windows: dict[str, None] = {}
    evals = False
    alerts: list[dict[str, Any]] = []
    for rollout in config.rollouts:
        t = rollout.triggers
        for name in RULES:
            if not getattr(t, name).enabled:
                continue
            if name == "fast_fail":
                w = window(t.fast_fail.window_s)
                request_windows[w] = None
                alerts.append(_fast_fail_alert(rollout, t.fast_fail, w))
            elif name == "error_rate":
                w = window(t.error_rate.window_s)
                request_windows[w] = None
                alerts.extend(_error_rate_rules(rollout, t.error_rate, w))
            elif name == "ttft_p99":
                w = window(t.ttft_p99.window_s)
                ttft_windows[w] = None
                alerts.append(_ttft_alert(rollout, t.ttft_p99, w))
            elif rollout.evals is not None:  # without an evals block no replica has eval scores
                evals = True
                alerts.append(_eval_alert(rollout, t.eval_score, len(rollout.evals.sources)))

    rules: list[dict[str, Any]] = []
    for w in request_windows:
        rules.extend(_request_rules(w))
    for w in ttft_windows:
        rules.extend(_ttft_rules(w))
    if evals:
        rules.extend(_eval_rules())
    rules.extend(alerts)
    if not rules:
        return {"groups": []}
    group: dict[str, Any] = {"name": GROUP_NAME}
    if interval_s is not None:
        group["interval"] = prometheus_duration(interval_s)
    group["rules"] = rules
    return {"groups": [group]}


def prometheus_rules(
    config: CanaryConfig,
    *,
    time_scale: float = 1.0,
    interval_s: float | None = None,
    scrape_interval_s: float | None = None,
) -> str:
    """A Prometheus rule file (YAML) implementing ``config``'s enabled rollback triggers.

    One rule group, ``litellm_canary``: recording rules first, then per rollout the error-rate
    baseline and one alert per enabled trigger. One group because Prometheus evaluates the rules of a
    group in order at one timestamp, so every alert reads recordings of the same evaluation.

    ``time_scale`` divides every window and ``for`` (a drill or a test runs the same rules 10x faster
    with ``time_scale=10``); windows are rendered to the millisecond. ``interval_s`` sets the group's
    evaluation interval (default: Prometheus's global ``evaluation_interval``); keep it, and the scrape
    interval, well below the shortest window, since ``rate()`` needs two samples in a window.
    """
    data = prometheus_rules_data(
        config, time_scale=time_scale, interval_s=interval_s, scrape_interval_s=scrape_interval_s
    )
    header = (
        "# Generated by litellm-canary from the canary config: the automatic-rollback triggers as\n"
        f"# Prometheus rules (time_scale {time_scale:g}). Regenerate rather than edit.\n"
    )
    return header + _dump(data)


# -- Alertmanager -----------------------------------------------------------------------------------


def alertmanager_config_data(
    webhook_url: str,
    *,
    token_file: str | None = None,
    token: str | None = None,
    group_wait: str = "0s",
    group_interval: str = "10s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    """The Alertmanager config as data (see :func:`alertmanager_config`)."""
    if not webhook_url.startswith(("http://", "https://")):
        raise ValueError(f"webhook_url must be an http(s) URL, got {webhook_url!r}")
    if (token is None) == (token_file is None):
        raise ValueError("give the webhook's bearer token as token_file (preferred) or token: exactly one")
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
    credentials: dict[Literal["credentials", "credentials_file"], str] = {}
    if token is not None:
        if not token:
            raise ValueError("the bearer token must not be empty")
        credentials["credentials"] = token
    if token_file is not None:
        credentials["credentials_file"] = token_file
    webhook["http_config"] = {"authorization": {"type": "Bearer", **credentials}}
    return {
        "route": {
            "receiver": NULL_RECEIVER,
            "routes": [
                {
                    "receiver": ROLLBACK_RECEIVER,
                    "matchers": ['action="rollback"'],
                    "group_by": ["alertname", "model_group"],
                    "group_wait": group_wait,
                    "group_interval": group_interval,
                    "repeat_interval": repeat_interval,
                }
            ],
        },
        "receivers": [
            {"name": NULL_RECEIVER},
            {"name": ROLLBACK_RECEIVER, "webhook_configs": [webhook]},
        ],
    }


def alertmanager_config(
    webhook_url: str,
    *,
    token_file: str | None = None,
    token: str | None = None,
    group_wait: str = "0s",
    group_interval: str = "10s",
    repeat_interval: str = "1h",
) -> str:
    """An Alertmanager config (YAML) that posts ``action="rollback"`` alerts to ``webhook_url``.

    ``webhook_url`` is the canary's Alertmanager webhook (``POST /alertmanager`` of
    :mod:`litellm_canary.webhook`). Only alerts labelled ``action="rollback"`` reach it (anything else
    goes to a receiver with no integration), with ``send_resolved`` so the receiver also learns when a
    rule recovers. The webhook requires a bearer token: give exactly one of ``token_file`` (read by
    Alertmanager, keeps the secret out of the config) or ``token`` (inline).

    The timings are chosen for a rollback budget under a minute, not for paging humans:

    * ``group_by: [alertname, model_group]`` — one group per rule and rollout, so one rollout's alert
      never waits for, or is batched with, another's;
    * ``group_wait: 0s`` — the first notification of a group goes out at once (Alertmanager's 30 s
      default would eat half the budget);
    * ``group_interval: 10s`` — how soon a change in an existing group (a resolve, or the same rule
      firing again for the same rollout) is sent; short enough that a re-fire after a re-arm is acted
      on within seconds, long enough not to hammer the receiver;
    * ``repeat_interval: 1h`` — a still-firing alert is re-sent hourly. A repeat is not needed for
      delivery (Alertmanager retries a failed post itself and re-sends at the next group interval
      until one succeeds), and the receiver answers it as a duplicate (same ``fingerprint`` and
      ``startsAt``), so repeats are kept rare.
    """
    data = alertmanager_config_data(
        webhook_url,
        token_file=token_file,
        token=token,
        group_wait=group_wait,
        group_interval=group_interval,
        repeat_interval=repeat_interval,
    )
    header = "# Generated by litellm-canary: send action=rollback alerts to the canary's webhook.\n"
    return header + _dump(data)


# -- YAML -----------------------------------------------------------------------------------------


def _dump(data: Mapping[str, Any]) -> str:
    import yaml

    class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
        """The safe dumper, writing multi-line strings (PromQL) as literal blocks."""

    def _str_representer(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str_representer)
    text: str = yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)
    return text

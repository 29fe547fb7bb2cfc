"""The Prometheus alerting rules generated from a :class:`CanaryConfig`, and the rule file.

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

The PromQL vocabulary (series names, recording rules, literals, durations) is in
:mod:`litellm_canary.integrations.promql`, the Alertmanager config in
:mod:`litellm_canary.integrations.alertmanager_config` (re-exported here, where the CLI imports it);
this module owns the alerts and the rule file. Everything here is text generation: no I/O, no
``prometheus_client``. ``promtool check rules``,
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

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

from litellm_canary.core.config import (
    CanaryConfig,
    ErrorRateTrigger,
    EvalScoreTrigger,
    FastFailTrigger,
    Rollout,
    TtftP99Trigger,
)
from litellm_canary.detection.rules import RULES, RuleName
from litellm_canary.integrations.alertmanager_config import (
    alertmanager_config as alertmanager_config,
)
from litellm_canary.integrations.alertmanager_config import (
    alertmanager_config_data as alertmanager_config_data,
)
from litellm_canary.integrations.alertmanager_config import dump_yaml
from litellm_canary.integrations.promql import ATTEMPTS_METRIC as ATTEMPTS_METRIC
from litellm_canary.integrations.promql import EVAL_LOG_E_METRIC as EVAL_LOG_E_METRIC
from litellm_canary.integrations.promql import (
    EVAL_LOG_E_SERIES,
    EVAL_SAMPLES_SERIES,
    REL_TOL,
    attempts_increase,
    baseline_series,
    error_ratio,
    eval_recording_rules,
    num_literal,
    percent,
    pooled_error_ratio,
    recording_rule,
    request_recording_rules,
    selector,
    str_literal,
    ttft_p99_series,
    ttft_recording_rules,
    ttft_samples_series,
    z_score_series,
)
from litellm_canary.integrations.promql import EVAL_SAMPLES_METRIC as EVAL_SAMPLES_METRIC
from litellm_canary.integrations.promql import TTFT_METRIC as TTFT_METRIC
from litellm_canary.integrations.promql import prometheus_duration as prometheus_duration

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


#: The alert name of each rule.
ALERT_NAMES: Mapping[RuleName, str] = {
    "fast_fail": "LitellmCanaryFastFail",
    "error_rate": "LitellmCanaryErrorRate",
    "ttft_p99": "LitellmCanaryTtftP99",
    "eval_score": "LitellmCanaryEvalScore",
}

GROUP_NAME = "litellm_canary"


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
    stable = selector(error_ratio(w), model_group=g, side="stable")
    stable_n = selector(attempts_increase(w), model_group=g, side="stable")
    baseline_expr = (
        f"label_replace(\n  max by (model_group) (\n    {stable}\n      and on(model_group)\n"
        f'    ({stable_n} >= {n})\n  ),\n  "source", "stable", "", ""\n)'
    )
    if rule.baseline_error_rate is not None:
        replacement = str_literal(g.replace("$", "$$"))  # label_replace expands $1 in the replacement
        configured = (
            f'label_replace(label_replace(vector({num_literal(rule.baseline_error_rate)}), "model_group", '
            f'{replacement}, "", ""), "source", "config", "", "")'
        )
        baseline_expr += f"\n  or on(model_group)\n{configured}"
    baseline = selector(baseline_series(w), model_group=g)
    canary = selector(error_ratio(w), model_group=g, side="canary")
    canary_n = selector(attempts_increase(w), model_group=g, side="canary")
    up = 1 + REL_TOL
    above = f"{canary}\n    > on(model_group) group_left()\n "
    expr = (
        f"(\n  {above} {num_literal(rule.ratio * up)} * {baseline}\n)\n"
        f"and on(model_group)\n"
        f"(\n  {above} {num_literal(up)} * ({baseline} + {num_literal(rule.min_delta)})\n)\n"
        f"and on(model_group)\n"
        f"({canary_n} >= {n})"
    )
    fallback = (
        f", or the configured {percent(rule.baseline_error_rate)} while stable has fewer than {n}"
        if rule.baseline_error_rate is not None
        else f" (no alert while stable has fewer than {n} requests: no baseline_error_rate is configured)"
    )
    description = (
        f"error_rate rule: the canary's error ratio over {w} is above {rule.ratio:g}x the baseline and "
        f"above the baseline + {percent(rule.min_delta)}, with at least {n} canary requests in the "
        f"window, continuously for {w}. The baseline is stable's error ratio over the same window when "
        f"stable has at least {n} requests{fallback}. {_FOOTER}"
    )
    summary = (
        f"{_WHO}: error rate {{{{ $value | humanizePercentage }}}} over {w} is above "
        f"{rule.ratio:g}x the baseline and the baseline + {percent(rule.min_delta)}"
    )
    # Recordings labelled with their model_group so that each rollout's are distinct rules.
    rules = [{**recording_rule(baseline_series(w), baseline_expr), "labels": {"model_group": g}}]
    alpha = rule.alpha
    if alpha is not None:
        rules.append(
            {
                **recording_rule(z_score_series(w), _z_score_expr(rollout, rule, w)),
                "labels": {"model_group": g},
            }
        )
        critical = NormalDist().inv_cdf(1 - alpha)
        expr += (
            f"\nand on(model_group)\n({selector(z_score_series(w), model_group=g)} > {num_literal(critical)})"
        )
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
    rc, rs = (selector(error_ratio(w), model_group=g, side=side) for side in ("canary", "stable"))
    nc, ns = (selector(attempts_increase(w), model_group=g, side=side) for side in ("canary", "stable"))
    pooled = selector(pooled_error_ratio(w), model_group=g)
    expr = (
        f"(\n  {rc}\n    - on(model_group)\n  {rs}\n)\n/\n"
        f"sqrt(\n  {pooled} * (1 - {pooled})\n  * (1 / {nc} + on(model_group) 1 / {ns})\n)\n"
        f"and on(model_group)\n({ns} >= {rule.min_requests})"
    )
    if rule.baseline_error_rate is not None:
        b = rule.baseline_error_rate
        expr += (
            f"\n  or on(model_group)\n"
            f"sum by (model_group) (({rc} - {num_literal(b)}) / sqrt({num_literal(b * (1 - b))} / {nc}))"
        )
    return expr


def _fast_fail_alert(rollout: Rollout, rule: FastFailTrigger, w: str) -> dict[str, Any]:
    g = rollout.model_group
    canary = selector(error_ratio(w), model_group=g, side="canary")
    canary_n = selector(attempts_increase(w), model_group=g, side="canary")
    expr = (
        f"{canary} >= {num_literal(rule.error_rate * (1 - REL_TOL))}\n"
        f"and on(model_group)\n"
        f"{canary_n} >= {rule.min_requests}"
    )
    summary = (
        f"{_WHO} is failing: error rate {{{{ $value | humanizePercentage }}}} over {w} "
        f"(at least {percent(rule.error_rate)})"
    )
    description = (
        f"fast_fail rule: the canary's error ratio over {w} is at or above {percent(rule.error_rate)} "
        f"with at least {rule.min_requests} canary requests in the window; fires at once. {_FOOTER}"
    )
    return _alert("fast_fail", rollout, expr, None, summary, description)


def _ttft_alert(rollout: Rollout, rule: TtftP99Trigger, w: str) -> dict[str, Any]:
    g = rollout.model_group
    threshold = ttft_threshold_s(rule)
    p99 = selector(ttft_p99_series(w), model_group=g, side="canary")
    expr = (
        f"{p99} > {num_literal(threshold * (1 + REL_TOL))}\n"
        f"and on(model_group)\n"
        f"{selector(ttft_samples_series(w), model_group=g, side='canary')} >= {rule.min_requests}"
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
    log_e = selector(EVAL_LOG_E_SERIES, model_group=g)
    samples = selector(EVAL_SAMPLES_SERIES, model_group=g)
    expr = (
        f"ln(\n  (sum by (model_group) (exp({log_e})) + ({sources} - count by (model_group) ({log_e})))\n"
        f"  / {sources}\n) >= {num_literal(threshold)}\n"
        f"and on(model_group)\n"
        f"max by (model_group) (min by (model_group, source) ({samples})) >= {n}"
    )
    summary = (
        f"{_WHO}: eval scores are more than {percent(rule.max_drop)} below stable's "
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
        rules.extend(request_recording_rules(w))
    for w in ttft_windows:
        rules.extend(ttft_recording_rules(w))
    if evals:
        rules.extend(eval_recording_rules())
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
    return header + dump_yaml(data)

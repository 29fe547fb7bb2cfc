"""The generated Prometheus rules and Alertmanager config, checked by promtool and amtool.

``promtool test rules`` replays synthetic series (the real metric names, as ``litellm_canary.metrics``
exposes them) against the generated rules and proves each alert fires when the in-process trigger
would, and stays silent when it would not: a healthy canary, too little traffic, a stable side that is
just as bad, a value exactly at the threshold. The rules run with ``time_scale=10``, so the series are
a minute long. The binaries come from Debian (``.ci/install-prometheus.sh``); without them these tests
skip, the pure-Python ones still run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from litellm_canary.core.config import parse_config
from litellm_canary.detection.evals.judge import EvalJudge
from litellm_canary.detection.evals.sequential import mean_log_e_value
from litellm_canary.detection.outcome_windows import OutcomeWindow, WindowStats
from litellm_canary.detection.rules import (
    EvalScores,
    check_error_rate,
    check_eval_score,
    check_fast_fail,
    check_ttft_p99,
    error_rate_z,
)
from litellm_canary.integrations.alert_rules import (
    ALERT_NAMES,
    prometheus_rules,
    prometheus_rules_data,
    ttft_thresholds_s,
)
from litellm_canary.integrations.alertmanager_config import alertmanager_config, alertmanager_config_data
from litellm_canary.integrations.promql import prometheus_duration
from tests.support import REPO
from tests.support.helpers import missing_tool

REPO = REPO
TIME_SCALE = 10.0  # windows: error_rate and ttft_p99 100 s -> 10s, fast_fail 20 s -> 2s
SERIES_LENGTH = 60  # samples, one a second
EVAL_AT = "30s"  # every window full, every `for` long past
EARLY = "5s"  # a breach started less than a `for` ago
REPLICA = {"job": "litellm", "instance": "replica-1:4000"}

CONFIG = parse_config(
    {
        "rollouts": [
            {
                "model_group": "chat",
                "stable": ["chat-stable"],
                "canary": ["chat-canary"],
                "flag_key": "chat-canary",
                "triggers": {
                    "error_rate": {
                        "ratio": 2.0,
                        "window_s": 100,
                        "min_requests": 20,
                        "min_delta": 0.01,
                        "baseline_error_rate": 0.05,
                    },
                    "ttft_p99": {"slo_ms": 2000, "ratio": 2.0, "window_s": 100, "min_requests": 20},
                    "fast_fail": {"error_rate": 0.5, "window_s": 20, "min_requests": 10},
                    "eval_score": {"max_drop": 0.05, "min_samples": 30, "alpha": 0.05},
                },
                # Two score sources: each sequential test runs at alpha / 2.
                "evals": {"scorer": {"builtin": "regex", "pattern": "."}, "feedback": True},
            },
            {
                # No baseline_error_rate: without enough stable traffic the error_rate rule cannot judge.
                # No significance guard either (alpha: null).
                "model_group": "embed",
                "stable": ["embed-stable"],
                "canary": ["embed-canary"],
                "flag_key": "embed-canary",
                "triggers": {
                    "error_rate": {"ratio": 2.0, "window_s": 100, "min_requests": 20, "alpha": None},
                    "ttft_p99": False,
                    "fast_fail": False,
                    "eval_score": False,
                },
            },
        ]
    }
)


# -- the binaries --------------------------------------------------------------------------------------


def _find(tool: str) -> str | None:
    places = [os.environ.get("LITELLM_CANARY_PROM_BIN"), str(REPO / ".ci" / "bin")]
    for place in places:
        if place and os.access(Path(place) / tool, os.X_OK):
            return str(Path(place) / tool)
    return shutil.which(tool)


@pytest.fixture(scope="session")
def tools() -> dict[str, str]:
    found = {tool: _find(tool) for tool in ("promtool", "amtool")}
    missing = sorted(tool for tool, path in found.items() if path is None)
    if missing:
        missing_tool(
            f"{' and '.join(missing)} not found on PATH, in $LITELLM_CANARY_PROM_BIN or .ci/bin: "
            "run .ci/install-prometheus.sh (Debian's prometheus and prometheus-alertmanager packages)"
        )
    return {tool: path for tool, path in found.items() if path is not None}


def _run(tool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


# -- synthetic series ------------------------------------------------------------------------------------


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join(f'{name}="{value}"' for name, value in labels.items())


def _series(metric: str, labels: Mapping[str, str], values: str) -> dict[str, str]:
    return {"series": f"{metric}{{{_labels(labels)}}}", "values": values}


def attempts(
    group: str, side: str, ok_per_s: float, failed_per_s: float | None, instance: str = REPLICA["instance"]
) -> list[dict[str, str]]:
    """Counters growing steadily from 0 at t=0; ``failed_per_s=None``: no failure series at all."""
    base = {
        **REPLICA,
        "instance": instance,
        "model_group": group,
        "side": side,
        "deployment": f"{group}-{side}",
    }
    series = [
        _series(
            "litellm_canary_attempts_total", {**base, "outcome": "success"}, f"0+{ok_per_s}x{SERIES_LENGTH}"
        )
    ]
    if failed_per_s is not None:
        series.append(
            _series(
                "litellm_canary_attempts_total",
                {**base, "outcome": "5xx"},
                f"0+{failed_per_s}x{SERIES_LENGTH}",
            )
        )
    return series


def ttft(group: str, side: str, per_s_at_or_below: Mapping[str, float]) -> list[dict[str, str]]:
    """A TTFT histogram: ``{le: samples per second at or below le}`` (cumulative, ``+Inf`` included)."""
    base = {**REPLICA, "model_group": group, "side": side, "deployment": f"{group}-{side}"}
    series = [
        _series("litellm_canary_ttft_seconds_bucket", {**base, "le": le}, f"0+{rate}x{SERIES_LENGTH}")
        for le, rate in per_s_at_or_below.items()
    ]
    series.append(
        _series("litellm_canary_ttft_seconds_count", base, f"0+{per_s_at_or_below['+Inf']}x{SERIES_LENGTH}")
    )
    return series


def evals(
    group: str,
    source: str,
    log_e_value: float,
    canary_samples: int,
    stable_samples: int,
    instance: str = REPLICA["instance"],
) -> list[dict[str, str]]:
    """One replica's sequential test of one score source, as litellm_canary.metrics exposes it."""
    labels = {**REPLICA, "instance": instance, "model_group": group, "source": source}
    return [
        _series("litellm_canary_eval_log_e_value", labels, f"{log_e_value}x{SERIES_LENGTH}"),
        _series(
            "litellm_canary_eval_samples", {**labels, "side": "canary"}, f"{canary_samples}x{SERIES_LENGTH}"
        ),
        _series(
            "litellm_canary_eval_samples", {**labels, "side": "stable"}, f"{stable_samples}x{SERIES_LENGTH}"
        ),
    ]


FAST = {"0.5": 100, "1.0": 100, "4.0": 100, "10.0": 100, "+Inf": 100}  # every TTFT under 0.5 s


@dataclass
class Scenario:
    """Series, and which alerts fire at ``EVAL_AT`` (alert name -> rendered $value); all others silent."""

    series: list[dict[str, str]]
    firing: dict[str, str] = field(default_factory=dict)
    group: str = "chat"
    silent_early: Sequence[str] = ()  # alerts with a `for` that must not fire yet at EARLY
    firing_early: Mapping[str, str] = field(default_factory=dict)  # alerts without `for`: already at EARLY
    promql: list[dict[str, Any]] = field(default_factory=list)
    alert_labels: Mapping[str, str] = field(default_factory=lambda: {"side": "canary"})  # from the expr


_rate10s = "model_group_side:litellm_canary_attempts:rate10s"


def _z_checks(
    *, canary: tuple[int, int], stable: tuple[int, int] | None, baseline: float
) -> list[dict[str, Any]]:
    """The recorded z-score equals what ``triggers.error_rate_z`` computes from the same counts."""
    w = CONFIG.rollout("chat").triggers.error_rate.window_s / TIME_SCALE
    z = error_rate_z(
        WindowStats(w, *canary, 0, None),
        None if stable is None else WindowStats(w, *stable, 0, None),
        baseline,
    )
    name = 'model_group:litellm_canary_error_rate_z_score:ratio_rate10s{model_group="chat"}'
    return [{"expr": name, "eval_time": EVAL_AT, "exp_samples": [{"labels": name, "value": z}]}]


ERROR_RATE, TTFT, FAST_FAIL, EVAL = (
    ALERT_NAMES["error_rate"],
    ALERT_NAMES["ttft_p99"],
    ALERT_NAMES["fast_fail"],
    ALERT_NAMES["eval_score"],
)

SCENARIOS: dict[str, Scenario] = {
    "healthy canary: nothing fires": Scenario(
        attempts("chat", "stable", 19, 1)
        + attempts("chat", "canary", 19, 1)
        + ttft("chat", "canary", FAST)
        + evals("chat", "traffic", 0.4, 100, 100)
        + evals("chat", "feedback", -2.0, 100, 100)
    ),
    # error_rate ------------------------------------------------------------------------------------
    "error_rate: canary 30% vs stable 5% fires after its window": Scenario(
        attempts("chat", "stable", 19, 1) + attempts("chat", "canary", 7, 3),
        firing={ERROR_RATE: "30%"},
        silent_early=[ERROR_RATE],
        promql=_z_checks(canary=(100, 30), stable=(200, 10), baseline=0.05),
    ),
    "error_rate: stable equally bad stays silent": Scenario(
        attempts("chat", "stable", 7, 3) + attempts("chat", "canary", 7, 3),
    ),
    "error_rate: too little canary traffic stays silent": Scenario(
        attempts("chat", "stable", 19, 1) + attempts("chat", "canary", 1.05, 0.45),  # 15 requests in 10s
    ),
    "error_rate: exactly min_requests counts": Scenario(
        attempts("chat", "stable", 19, 1) + attempts("chat", "canary", 1, 1),  # 20 requests in the window
        firing={ERROR_RATE: "50%"},
    ),
    "error_rate: exactly ratio x baseline stays silent": Scenario(
        attempts("chat", "stable", 18, 2) + attempts("chat", "canary", 8, 2),  # 20% = 2 x 10%
    ),
    "error_rate: just above ratio x baseline fires": Scenario(
        attempts("chat", "stable", 18, 2) + attempts("chat", "canary", 79, 21),
        firing={ERROR_RATE: "21%"},
    ),
    "error_rate: exactly baseline + min_delta stays silent (stable without a failure series)": Scenario(
        attempts("chat", "stable", 20, None) + attempts("chat", "canary", 99, 1),  # 1% = 0% + 1%
    ),
    "error_rate: above baseline + min_delta fires": Scenario(
        attempts("chat", "stable", 40, None) + attempts("chat", "canary", 196, 4),  # z 2.85
        firing={ERROR_RATE: "2%"},
    ),
    "error_rate: an excess within sampling noise stays silent (z-test against stable)": Scenario(
        attempts("chat", "stable", 20, None) + attempts("chat", "canary", 98, 2),  # z 2.02 < 2.33
        firing={},  # without the guard (alpha: null) it would fire
    ),
    "error_rate: an excess within sampling noise stays silent (z-test against the configured baseline)": (
        Scenario(
            attempts("chat", "stable", 0.5, 0.5) + attempts("chat", "canary", 1.7, 0.3),  # 15% of 20: z 2.05
            firing={},
        )
    ),
    "error_rate: sums replicas": Scenario(
        attempts("chat", "stable", 19, 1)
        + attempts("chat", "canary", 0.7, 0.3)  # each replica below min_requests, together above
        + attempts("chat", "canary", 0.7, 0.3, instance="replica-2:4000")
        + attempts("chat", "canary", 0.7, 0.3, instance="replica-3:4000"),
        firing={ERROR_RATE: "30%"},
    ),
    "error_rate: stable below min_requests falls back to the configured baseline": Scenario(
        attempts("chat", "stable", 0.5, 0.5) + attempts("chat", "canary", 8, 2),  # stable 50% on 10 requests
        firing={ERROR_RATE: "20%"},  # 20% > max(2 x 5%, 5% + 1%)
        promql=[
            {
                "expr": 'model_group:litellm_canary_error_rate_baseline:ratio_rate10s{model_group="chat"}',
                "eval_time": EVAL_AT,
                "exp_samples": [
                    {
                        "labels": 'model_group:litellm_canary_error_rate_baseline:ratio_rate10s{model_group="chat",source="config"}',  # noqa: E501
                        "value": 0.05,
                    }
                ],
            },
            *_z_checks(canary=(100, 20), stable=None, baseline=0.05),
        ],
    ),
    "error_rate: stable's own baseline when it has min_requests": Scenario(
        attempts("chat", "stable", 18, 2) + attempts("chat", "canary", 9, 1),
        promql=[
            {
                "expr": 'model_group:litellm_canary_error_rate_baseline:ratio_rate10s{model_group="chat"}',
                "eval_time": EVAL_AT,
                "exp_samples": [
                    {
                        "labels": 'model_group:litellm_canary_error_rate_baseline:ratio_rate10s{model_group="chat",source="stable"}',  # noqa: E501
                        "value": 0.1,
                    }
                ],
            },
            {
                "expr": _rate10s + '{model_group="chat"}',
                "eval_time": EVAL_AT,
                "exp_samples": [
                    {"labels": _rate10s + '{model_group="chat",side="stable"}', "value": 20},
                    {"labels": _rate10s + '{model_group="chat",side="canary"}', "value": 10},
                ],
            },
        ],
    ),
    "error_rate: no stable traffic and no configured baseline stays silent": Scenario(
        attempts("embed", "canary", 8, 2), group="embed"
    ),
    "error_rate: without the significance guard an excess within noise fires": Scenario(
        attempts("embed", "stable", 20, None) + attempts("embed", "canary", 98, 2),
        group="embed",
        firing={ERROR_RATE: "2%"},
    ),
    "error_rate: another rollout's own rule fires": Scenario(
        attempts("embed", "stable", 19, 1) + attempts("embed", "canary", 8, 2),
        group="embed",
        firing={ERROR_RATE: "20%"},
    ),
    # fast_fail ---------------------------------------------------------------------------------------
    "fast_fail: a broken canary fires at once": Scenario(
        attempts("chat", "stable", 19, 1) + attempts("chat", "canary", 4, 6),
        firing={FAST_FAIL: "60%", ERROR_RATE: "60%"},
        silent_early=[ERROR_RATE],
        firing_early={FAST_FAIL: "60%"},
    ),
    "fast_fail: exactly the error rate and min_requests fires (>=)": Scenario(
        attempts("chat", "stable", 5, 5) + attempts("chat", "canary", 2.5, 2.5),  # 10 requests in 2s, 50%
        firing={FAST_FAIL: "50%"},
    ),
    "fast_fail: just below the error rate stays silent": Scenario(
        attempts("chat", "stable", 50, 50) + attempts("chat", "canary", 51, 49),
    ),
    "fast_fail: too little traffic stays silent": Scenario(
        attempts("chat", "stable", 5, 5) + attempts("chat", "canary", 1, 3),  # 8 requests in 2s
    ),
    # ttft_p99 --------------------------------------------------------------------------------------
    "ttft_p99: a slow canary fires after its window": Scenario(
        attempts("chat", "canary", 100, 0)
        + ttft("chat", "canary", {"1.0": 90, "4.0": 90, "10.0": 100, "+Inf": 100}),  # p99 = 4 + 6 x 9/10
        firing={TTFT: "9.4s"},
        silent_early=[TTFT],
    ),
    "ttft_p99: exactly at the threshold stays silent": Scenario(
        ttft("chat", "canary", {"1.0": 0, "4.0": 99, "10.0": 100, "+Inf": 100}),  # 1% above 4 s: p99 = 4 s
    ),
    "ttft_p99: just above the threshold fires": Scenario(
        ttft("chat", "canary", {"1.0": 0, "4.0": 98, "10.0": 100, "+Inf": 100}),  # 2% above: p99 = 7 s
        firing={TTFT: "7s"},
    ),
    "ttft_p99: too few samples stays silent": Scenario(
        ttft("chat", "canary", {"1.0": 0, "4.0": 0, "10.0": 1.9, "+Inf": 1.9}),  # 19 samples, all slow
    ),
    "ttft_p99: a slow stable does not matter": Scenario(
        ttft("chat", "stable", {"1.0": 0, "4.0": 0, "10.0": 100, "+Inf": 100}) + ttft("chat", "canary", FAST),
    ),
    # eval_score --------------------------------------------------------------------------------------
    # Two sources (traffic, feedback): the mean of their e-values is tested at log(1/alpha 0.05) = 2.996;
    # a source without a series counts as e-value 1.
    "eval_score: one source carries the mean e-value past log(1/alpha)": Scenario(
        evals("chat", "traffic", 4.5, 40, 40) + evals("chat", "feedback", 0.1, 40, 40),
        firing={EVAL: "3.819"},
        firing_early={EVAL: "3.819"},
        alert_labels={},
    ),
    "eval_score: just below the threshold stays silent": Scenario(
        evals("chat", "traffic", 3.66, 40, 40),
    ),
    "eval_score: too few samples on one side stays silent": Scenario(
        evals("chat", "traffic", 9.0, 40, 29),
    ),
    "eval_score: two sources each short of log(2/alpha) fire together": Scenario(
        evals("chat", "traffic", 3.5, 40, 40) + evals("chat", "feedback", 3.5, 40, 40),
        firing={EVAL: "3.5"},
        alert_labels={},
    ),
    "eval_score: two sources at log e-value 2 stay silent": Scenario(
        evals("chat", "traffic", 2.0, 40, 40) + evals("chat", "feedback", 2.0, 40, 40),
    ),
    "eval_score: replicas' e-values multiply": Scenario(
        evals("chat", "feedback", 2.0, 20, 20)
        + evals("chat", "feedback", 2.0, 20, 20, instance="replica-2:4000"),
        firing={EVAL: "3.325"},
        alert_labels={},
    ),
}


def _rules_by_alert(rules: Mapping[str, Any], group: str) -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for rule in rules["groups"][0]["rules"]
        if "alert" in rule and rule["labels"]["model_group"] == group
    }


def _expected(rule: Mapping[str, Any], scenario: Scenario, value: str) -> dict[str, Any]:
    summary = rule["annotations"]["summary"].replace("{{ $labels.model_group }}", scenario.group)
    for label, label_value in scenario.alert_labels.items():
        summary = summary.replace(f"{{{{ $labels.{label} }}}}", label_value)
    for pipe in ("humanizePercentage", "humanizeDuration", 'printf "%.4g"'):
        summary = summary.replace(f"{{{{ $value | {pipe} }}}}", value)
    assert "{{" not in summary
    return {
        "exp_labels": {**rule["labels"], **scenario.alert_labels},
        "exp_annotations": {**rule["annotations"], "summary": summary},
    }


def _unit_test(scenario: Scenario, rules: Mapping[str, Any]) -> dict[str, Any]:
    by_alert = _rules_by_alert(rules, scenario.group)
    checks = []
    for alert, rule in by_alert.items():
        fired = scenario.firing.get(alert)
        checks.append(
            {
                "eval_time": EVAL_AT,
                "alertname": alert,
                "exp_alerts": [] if fired is None else [_expected(rule, scenario, fired)],
            }
        )
    for alert in scenario.silent_early:
        checks.append({"eval_time": EARLY, "alertname": alert, "exp_alerts": []})
    for alert, value in scenario.firing_early.items():
        checks.append(
            {
                "eval_time": EARLY,
                "alertname": alert,
                "exp_alerts": [_expected(by_alert[alert], scenario, value)],
            }
        )
    test: dict[str, Any] = {"interval": "1s", "input_series": scenario.series, "alert_rule_test": checks}
    if scenario.promql:
        test["promql_expr_test"] = scenario.promql
    return test


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "litellm-canary.rules.yml"
    path.write_text(prometheus_rules(CONFIG, time_scale=TIME_SCALE))
    return path


def test_generated_rules_pass_promtool_check(tools: dict[str, str], tmp_path: Path) -> None:
    for scale in (1.0, TIME_SCALE, 7.0, 0.25, 1000.0):
        path = tmp_path / f"rules-{scale:g}.yml"
        path.write_text(prometheus_rules(CONFIG, time_scale=scale, interval_s=1.0))
        result = _run(tools["promtool"], "check", "rules", str(path), cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        count = len(prometheus_rules_data(CONFIG)["groups"][0]["rules"])
        assert f"SUCCESS: {count} rules found" in result.stdout


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_alerts_fire_exactly_when_the_in_process_rules_would(
    name: str, tools: dict[str, str], rules_file: Path, tmp_path: Path
) -> None:
    rules = yaml.safe_load(rules_file.read_text())
    unit = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1s",
        "tests": [_unit_test(SCENARIOS[name], rules)],
    }
    test_file = tmp_path / "test.yml"
    test_file.write_text(yaml.safe_dump(unit, sort_keys=False))
    result = _run(tools["promtool"], "test", "rules", str(test_file), cwd=tmp_path)
    assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"
    assert "SUCCESS" in result.stdout


def test_every_scenario_is_checked_against_every_alert_of_its_rollout() -> None:
    rules = prometheus_rules_data(CONFIG, time_scale=TIME_SCALE)
    assert set(_rules_by_alert(rules, "chat")) == set(ALERT_NAMES.values())
    assert set(_rules_by_alert(rules, "embed")) == {ERROR_RATE}  # disabled rules are not emitted
    fired = {alert for scenario in SCENARIOS.values() for alert in scenario.firing}
    assert fired == set(ALERT_NAMES.values())


def test_no_eval_alert_without_an_evals_block() -> None:
    """Without ``evals`` no replica has eval scores: the in-process rule can never judge, so neither
    is there an alert (or its recordings)."""
    config = parse_config({"rollouts": [{**CONFIG.rollout("chat").model_dump(exclude={"evals"})}]})
    rules = prometheus_rules_data(config, time_scale=TIME_SCALE)
    assert EVAL not in _rules_by_alert(rules, "chat")
    assert not [r for r in rules["groups"][0]["rules"] if "eval" in r.get("record", "")]


def _parse(series: Mapping[str, str]) -> tuple[str, dict[str, str], float]:
    """``(metric, labels, per-second rate or gauge value)`` of one synthetic series."""
    match = re.fullmatch(r"(\w+)\{(.*)\}", series["series"])
    assert match is not None
    labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
    values = series["values"].removesuffix(f"x{SERIES_LENGTH}")
    return match.group(1), labels, float(values.removeprefix("0+"))


def _in_process_verdicts(scenario: Scenario) -> set[str]:
    """What litellm_canary.detection.rules says about the same traffic: the alerts of the breaching rules."""
    t = CONFIG.rollout(scenario.group).triggers
    per_s: dict[tuple[str, str], float] = defaultdict(float)  # (side, ok|failed)
    ttft_at_or_below: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    log_e: dict[str, float] = defaultdict(float)  # source: log e-values summed over replicas
    samples: dict[tuple[str, str], int] = defaultdict(int)  # (source, side): scores over replicas
    for spec in scenario.series:
        metric, labels, value = _parse(spec)
        side = labels.get("side", "")  # the log e-value is per source, not per side
        if metric == "litellm_canary_attempts_total":
            per_s[(side, "ok" if labels["outcome"] == "success" else "failed")] += value
        elif metric == "litellm_canary_ttft_seconds_bucket":
            ttft_at_or_below[side][float(labels["le"])] += value
        elif metric == "litellm_canary_eval_samples":
            samples[(labels["source"], side)] += int(value)
        elif metric == "litellm_canary_eval_log_e_value":
            log_e[labels["source"]] += value

    def window(side: str, window_s: float) -> WindowStats:
        ok, failed = per_s[(side, "ok")] * window_s, per_s[(side, "failed")] * window_s
        return WindowStats(window_s, ok + failed, failed, 0, None)  # type: ignore[arg-type]

    fired: set[str] = set()
    if t.error_rate.enabled:
        w = t.error_rate.window_s / TIME_SCALE
        if check_error_rate(t.error_rate, window("canary", w), window("stable", w)).state == "breaching":
            fired.add(ERROR_RATE)
    if t.fast_fail.enabled:
        w = t.fast_fail.window_s / TIME_SCALE
        if check_fast_fail(t.fast_fail, window("canary", w)).state == "breaching":
            fired.add(FAST_FAIL)
    if t.ttft_p99.enabled:
        w = t.ttft_p99.window_s / TIME_SCALE
        canary = OutcomeWindow(w, clock=lambda: 0.0)
        below, previous = 0.0, 0.0
        for le, cumulative in sorted(ttft_at_or_below["canary"].items()):
            count = round((cumulative - below) * w)
            value = previous * 2 if le == float("inf") else (previous + le) / 2  # inside (previous, le]
            canary.record_batch(count, 0, [value] * count)
            below, previous = cumulative, le
        if check_ttft_p99(t.ttft_p99, canary.stats()).state == "breaching":
            fired.add(TTFT)
    evals_config = CONFIG.rollout(scenario.group).evals
    if t.eval_score.enabled and evals_config is not None:
        # What EvalJudge decides from the same per-source log e-values (summed over replicas) and
        # sample counts: feed each source's test a stand-in state and ask the judge.
        judge = EvalJudge(t.eval_score, evals_config.sources)
        combined = mean_log_e_value(log_e.get(source, 0.0) for source in evals_config.sources)
        ready = [
            source
            for source in log_e
            if min(samples[(source, "canary")], samples[(source, "stable")]) >= t.eval_score.min_samples
        ]
        top = max(ready, key=lambda source: log_e[source], default=None)
        scores = EvalScores(
            0.0,
            0 if top is None else samples[(top, "canary")],
            0.0,
            0 if top is None else samples[(top, "stable")],
            reject=top is not None and combined >= judge.threshold,
        )
        if check_eval_score(t.eval_score, scores).state == "breaching":
            fired.add(EVAL)
    return fired


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_in_process_rules_agree_with_every_scenario(name: str) -> None:
    """The expectations above are not made up: the in-process triggers reach the same verdicts."""
    assert _in_process_verdicts(SCENARIOS[name]) == set(SCENARIOS[name].firing)


# -- rule file structure (no binaries needed) ------------------------------------------------------------


def test_alerts_carry_the_rollback_labels_windows_and_for() -> None:
    rules = prometheus_rules_data(CONFIG, time_scale=TIME_SCALE)
    alerts = _rules_by_alert(rules, "chat")
    for rule_name, alert_name in ALERT_NAMES.items():
        labels = alerts[alert_name]["labels"]
        assert labels == {
            "model_group": "chat",
            "action": "rollback",
            "severity": "critical",
            "rule": rule_name,
        }
        assert "{{ $value" in alerts[alert_name]["annotations"]["summary"]
    assert alerts[ERROR_RATE]["for"] == "10s"
    assert alerts[TTFT]["for"] == "10s"
    assert "for" not in alerts[FAST_FAIL] and "for" not in alerts[EVAL]
    records = [rule["record"] for rule in rules["groups"][0]["rules"] if "record" in rule]
    assert "model_group_side:litellm_canary_attempt_error_ratio:ratio_rate2s" in records
    assert "model_group_side:litellm_canary_ttft_seconds:p99_rate10s" in records
    ttft_p99 = next(r for r in rules["groups"][0]["rules"] if r.get("record", "").endswith("p99_rate10s"))
    assert ttft_p99["expr"] == (
        "histogram_quantile(0.99, sum by (le, model_group, side) "
        "(rate(litellm_canary_ttft_seconds_bucket[10s])))"
    )
    assert "interval" not in rules["groups"][0]
    # The significance guard: a z-score recording and condition where alpha is set, none where it is null.
    all_rules = rules["groups"][0]["rules"]
    z_records = [r["labels"]["model_group"] for r in all_rules if "z_score" in r.get("record", "")]
    assert z_records == ["chat"]
    error_rate_expr = alerts[ERROR_RATE]["expr"]
    assert "z_score:ratio_rate10s" in error_rate_expr and "> 2.326347874" in error_rate_expr
    assert "z_score" not in _rules_by_alert(rules, "embed")[ERROR_RATE]["expr"]
    assert prometheus_rules_data(CONFIG, interval_s=0.5)["groups"][0]["interval"] == "500ms"


def test_time_scale_divides_every_window_and_for() -> None:
    unscaled = prometheus_rules(CONFIG)
    assert "[1m40s]" in unscaled and "for: 1m40s" in unscaled and "[20s]" in unscaled
    odd = prometheus_rules(CONFIG, time_scale=7)
    assert "[14286ms]" in odd and "for: 14286ms" in odd and "[2857ms]" in odd
    with pytest.raises(ValueError, match="time_scale"):
        prometheus_rules(CONFIG, time_scale=0)
    with pytest.raises(ValueError, match="at least 1 ms"):
        prometheus_rules(CONFIG, time_scale=1e6)


def test_disabled_rules_are_not_emitted() -> None:
    config = parse_config(
        {
            "rollouts": [
                {
                    "model_group": "chat",
                    "stable": ["s"],
                    "canary": ["c"],
                    "flag_key": "f",
                    "triggers": {
                        "error_rate": False,
                        "ttft_p99": False,
                        "fast_fail": False,
                        "eval_score": False,
                    },
                }
            ]
        }
    )
    assert prometheus_rules_data(config) == {"groups": []}
    config = parse_config(
        {
            "rollouts": [
                {
                    "model_group": "chat",
                    "stable": ["s"],
                    "canary": ["c"],
                    "flag_key": "f",
                    "triggers": {"error_rate": False, "ttft_p99": {"enabled": False}, "eval_score": False},
                }
            ]
        }
    )
    text = prometheus_rules(config)
    assert "LitellmCanaryFastFail" in text
    for absent in (
        "LitellmCanaryErrorRate",
        "LitellmCanaryTtftP99",
        "LitellmCanaryEvalScore",
        "ttft",
        "eval",
    ):
        assert absent not in text
    assert ttft_thresholds_s(config) == ()
    assert ttft_thresholds_s(CONFIG) == (4.0,)


def test_label_values_are_escaped(tools: dict[str, str], tmp_path: Path) -> None:
    config = parse_config(
        {
            "rollouts": [
                {
                    "model_group": 'we"ird $1 \\ group',
                    "stable": ["s"],
                    "canary": ["c"],
                    "flag_key": "f",
                    "triggers": {"error_rate": {"baseline_error_rate": 0.02}},
                }
            ]
        }
    )
    path = tmp_path / "rules.yml"
    path.write_text(prometheus_rules(config))
    result = _run(tools["promtool"], "check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'model_group="we\\"ird $1 \\\\ group"' in path.read_text()
    assert '"we\\"ird $$1 \\\\ group"' in path.read_text()  # label_replace's replacement: $$ is a literal $


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (120, "2m"),
        (90, "1m30s"),
        (1.5, "1500ms"),
        (10, "10s"),
        (3600, "1h"),
        (86400 + 1, "1d1s"),
        (0.001, "1ms"),
        (2 / 7, "286ms"),
    ],
)
def test_prometheus_durations(seconds: float, text: str) -> None:
    assert prometheus_duration(seconds) == text


def test_prometheus_duration_rejects_what_prometheus_cannot_express() -> None:
    for bad in (0.0, 0.0004, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            prometheus_duration(bad)


# -- Alertmanager -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "authorization"),
    [
        ({"token_file": "/run/secrets/canary-token"}, {"credentials_file": "/run/secrets/canary-token"}),
        ({"token": "s3cret"}, {"credentials": "s3cret"}),
    ],
)
def test_alertmanager_config_passes_amtool_and_routes_only_rollbacks(
    tools: dict[str, str], tmp_path: Path, kwargs: dict[str, str], authorization: dict[str, str]
) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(alertmanager_config("http://127.0.0.1:8321/litellm-canary/alerts", **kwargs))
    result = _run(tools["amtool"], "check-config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout

    def receiver(*labels: str) -> str:
        routed = _run(
            tools["amtool"], "config", "routes", "test", f"--config.file={path}", *labels, cwd=tmp_path
        )
        assert routed.returncode == 0, routed.stdout + routed.stderr
        return routed.stdout.strip()

    assert receiver("alertname=LitellmCanaryErrorRate", "model_group=chat", "action=rollback") == (
        "litellm-canary-rollback"
    )
    assert receiver("alertname=SomethingElse", "severity=critical") == "litellm-canary-null"
    webhook = yaml.safe_load(path.read_text())["receivers"][1]["webhook_configs"][0]
    assert webhook["send_resolved"] is True
    assert webhook["http_config"] == {"authorization": {"type": "Bearer", **authorization}}


def test_alertmanager_route_is_tuned_for_a_sub_minute_budget() -> None:
    route = alertmanager_config_data("https://canary.internal/alerts", token_file="/t")["route"]["routes"][0]
    assert route["matchers"] == ['action="rollback"']
    assert route["group_by"] == ["alertname", "model_group"]
    assert route["group_wait"] == "0s" and route["group_interval"] == "10s"
    assert route["repeat_interval"] == "1h"
    with pytest.raises(ValueError, match="exactly one"):
        alertmanager_config_data("http://x/a", token="t", token_file="/t")
    with pytest.raises(ValueError, match="exactly one"):
        alertmanager_config_data("http://x/a")
    with pytest.raises(ValueError, match="http"):
        alertmanager_config_data("ftp://x/a", token_file="/t")

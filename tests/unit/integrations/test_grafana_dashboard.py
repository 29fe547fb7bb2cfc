"""The Grafana dashboard's JSON model: importable structure, one row per rollout, thresholds from the
config, and every PromQL expression well formed (a promtool-free check) over series the metrics
really expose."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from litellm import Router

import litellm_canary
from litellm_canary.cli import main
from litellm_canary.core.config import parse_config
from litellm_canary.integrations.grafana_dashboard import dashboard, dashboard_expressions
from litellm_canary.integrations.metrics import CanaryMetrics
from tests.support.helpers import chat_rollout, deployment

CONFIG: dict[str, Any] = {
    "rollouts": [
        chat_rollout(
            triggers={
                "error_rate": {"ratio": 3.0, "min_delta": 0.02, "window_s": 90},
                "fast_fail": {"error_rate": 0.3},
                "ttft_p99": {"slo_ms": 1500, "ratio": 1.5, "window_s": 240},
                "eval_score": {"alpha": 0.01},
            },
            evals={"scorer": {"builtin": "regex", "pattern": "answer"}},
        ),
        {
            "model_group": "embed",
            "stable": ["embed-stable"],
            "canary": ["embed-canary"],
            "flag_key": "embed-canary",
            "triggers": {"fast_fail": False},  # eval_score on, but no evals: no scores to show
        },
    ],
    "flag_store": {"kind": "memory"},
}

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_FUNCTIONS = {"sum", "max", "rate", "increase", "histogram_quantile", "label_replace", "by", "ignoring"}
_KEYWORDS = {"group_left", "or", "and", "on"}


def _rows(model: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    rows: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for panel in model["panels"]:
        if panel["type"] == "row":
            rows.append((panel, []))
        else:
            rows[-1][1].append(panel)
    return rows


def _lines(panel: dict[str, Any]) -> list[float]:
    return [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]


def _panel(panels: list[dict[str, Any]], title_start: str) -> dict[str, Any]:
    (panel,) = (p for p in panels if p["title"].startswith(title_start))
    return panel


def check_promql(expr: str) -> set[str]:
    """A promtool-free syntax check: brackets balance outside string literals, every range is a
    Prometheus duration, every label matcher is ``name op "value"``, only known functions and
    keywords; returns the metric names the expression reads."""
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    outside = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    for char in outside:
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            assert stack and stack.pop() == pairs[char], f"unbalanced {char!r} in {expr!r}"
    assert not stack, f"unclosed {stack} in {expr!r}"
    for duration in re.findall(r"\[([^\]]*)\]", outside):
        assert _DURATION.match(duration), f"bad range {duration!r} in {expr!r}"
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        for matcher in re.split(r",(?=[a-z_]+\s*(?:=~|!~|!=|=))", matchers):
            assert re.fullmatch(r'[a-z_]+(=~|!~|!=|=)"[^"]*"', matcher), f"bad matcher {matcher!r}"
    names: set[str] = set()
    for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", outside)):
        if word.startswith("litellm_canary_"):
            names.add(word)
        else:
            assert word in _FUNCTIONS | _KEYWORDS | {
                "le",
                "side",
                "source",
                "cause",
                "model_group",
                "kind",
            }, f"unknown word {word!r} in {expr!r}"
    return names


def test_structure_is_an_importable_grafana_model() -> None:
    model = dashboard(parse_config(CONFIG))
    assert isinstance(model["schemaVersion"], int) and model["schemaVersion"] >= 36
    (variable,) = model["templating"]["list"]
    assert variable == {**variable, "name": "datasource", "type": "datasource", "query": "prometheus"}
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in model["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
    json.loads(json.dumps(model))  # plain JSON all the way down


def test_one_row_per_rollout_each_reading_its_own_group() -> None:
    model = dashboard(parse_config(CONFIG))
    rows = _rows(model)
    assert [row["title"] for row, _ in rows] == [
        "Rollout chat (flag chat-canary)",
        "Rollout embed (flag embed-canary)",
    ]
    for (row, panels), group in zip(rows, ["chat", "embed"], strict=True):
        assert all(p["gridPos"]["y"] > row["gridPos"]["y"] for p in panels)
        for panel in panels:
            for target in panel["targets"]:
                if "flag_" not in target["expr"]:  # flag errors are gateway-wide
                    assert f'model_group="{group}"' in target["expr"], (panel["title"], target["expr"])
    annotations = [a for a in model["annotations"]["list"] if "expr" in a]
    assert [a["name"] for a in annotations] == ["Rollbacks of chat", "Rollbacks of embed"]
    assert 'model_group="embed"' in annotations[1]["expr"] and "kind" in annotations[1]["titleFormat"]


def test_thresholds_and_windows_come_from_the_config() -> None:
    (_, chat_panels), (_, embed_panels) = _rows(dashboard(parse_config(CONFIG)))
    errors = _panel(chat_panels, "Error rate")
    assert errors["title"].endswith("(1m30s)") and _lines(errors) == [0.3]
    threshold = errors["targets"][1]["expr"]
    assert threshold.startswith("(3.0 * (") and "+ 0.02" in threshold and "[1m30s]" in threshold
    ttft = _panel(chat_panels, "p99 TTFT")
    assert sorted(_lines(ttft)) == [1.5, 2.25] and "[4m]" in ttft["targets"][0]["expr"]
    evals = _panel(chat_panels, "Eval log e-values")
    assert _lines(evals) == [pytest.approx(math.log(100))]
    # embed: the defaults, fast_fail off (no line), no evals (no eval panel)
    assert _lines(_panel(embed_panels, "Error rate")) == []
    assert sorted(_lines(_panel(embed_panels, "p99 TTFT"))) == [2.0, 4.0]
    assert not [p for p in embed_panels if p["title"].startswith("Eval")]


def test_every_expression_parses_and_reads_exposed_series() -> None:
    config = parse_config(CONFIG)
    router = Router(
        model_list=[
            deployment(group, f"{group}-{side}", side)
            for group in ("chat", "embed")
            for side in ("stable", "canary")
        ]
    )
    canary = litellm_canary.attach(router, CONFIG)
    text = CanaryMetrics(canary).exposition().decode()
    exposed: set[str] = set()
    suffixes = {"histogram": ["_bucket", "_count", "_sum"]}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        exposed |= {name + suffix for suffix in suffixes.get(kind, [""])}
    read: set[str] = set()
    expressions = dashboard_expressions(dashboard(config))
    assert len(expressions) == 8 + 7 + 2  # chat: 7 targets + eval; embed: 7; two annotations
    for expr in expressions:
        read |= check_promql(expr)
    assert read and read <= exposed, read - exposed


def test_the_checker_rejects_broken_expressions() -> None:
    for broken in ["sum(rate(x_total[2m])", "rate(litellm_canary_x[2 m])", 'foo(litellm_canary_x{a="b"})']:
        with pytest.raises(AssertionError):
            check_promql(broken)


def test_cli_prints_the_dashboard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "canary.json"
    path.write_text(json.dumps(CONFIG))
    assert main(["dashboard", "--config", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == dashboard(parse_config(CONFIG))
    path.write_text("rollouts: [")
    assert main(["dashboard", "--config", str(path)]) == 2
    assert "litellm-canary:" in capsys.readouterr().err

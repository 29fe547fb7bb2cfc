"""The benchmarks' figures and settings: quantiles, the p50/p99/max table, defaults and their checks."""

from __future__ import annotations

import json

import pytest

from litellm_canary.bench import overhead, report, switch_setup


def test_quantile_interpolates_and_is_none_without_samples() -> None:
    assert report.quantile([], 0.5) is None
    assert report.quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert report.quantile([0.0, 10.0], 0.99) == pytest.approx(9.9)
    assert report.quantile([5.0], 0.99) == 5.0


def test_table_has_p50_p99_max_per_row_and_a_dash_for_a_missing_figure() -> None:
    result = {"restored_us_p50": 2.5, "restored_us_p99": 97.14, "restored_us_max": 100.0, "idle_us_p50": None}
    lines = report.table(result, {"restored": "restored_us", "idle": "idle_us"})
    assert lines[0].split() == ["p50", "p99", "max"]
    assert lines[1].split() == ["restored", "2.5", "97.1", "100.0"]
    assert lines[2].split() == ["idle", "-", "-", "-"]


def test_emit_prints_one_json_line_or_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    report.emit({"a": 1}, True, lambda result: ["never"])
    assert json.loads(capsys.readouterr().out) == {"a": 1}
    report.emit({"a": 1}, False, lambda result: [f"a is {result['a']}", "done"])
    assert capsys.readouterr().out == "a is 1\ndone\n"


def test_stray_prints_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert report.without_stray_prints(lambda: print("noise") or 7) == 7
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "noise\n"


def test_measure_and_emit_keeps_stray_prints_out_of_the_json(capsys: pytest.CaptureFixture[str]) -> None:
    def measure() -> dict[str, int]:
        print("a library talking")
        return {"flips": 3}

    report.measure_and_emit(measure, True, lambda result: ["never"])
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"flips": 3} and captured.err == "a library talking\n"


def test_switch_defaults_overrides_and_refusals() -> None:
    full, quick = switch_setup.default_settings(), switch_setup.default_settings(quick=True)
    assert (full.clients, full.flips) == (200, 100)
    assert (quick.clients, quick.flips) < (full.clients, full.flips)
    assert switch_setup.default_settings(True, clients=7, flips=None).clients == 7
    assert switch_setup.default_settings(True, clients=7, flips=None).flips == quick.flips
    with pytest.raises(ValueError, match="canary_percent must be within"):
        switch_setup.default_settings(canary_percent=0)
    with pytest.raises(ValueError, match="upstreams must be"):
        switch_setup.default_settings(upstreams="cloud")


def test_overhead_defaults_overrides_and_refusals() -> None:
    assert overhead.default_settings(iterations=10).iterations == 10
    assert overhead.default_settings(quick=True).iterations < overhead.default_settings().iterations
    with pytest.raises(ValueError, match="warmup must not be negative"):
        overhead.default_settings(warmup=-1)
    with pytest.raises(ValueError, match="flag_variant must be"):
        overhead.default_settings(flag_variant="both")

"""Issue 13 §4: the incident's timeline picture can be read on its own.

On landed main canary and stable drew on top of each other when both were 0, the error-rate axis
went to -0.04, no threshold or SLO line was drawn, a 5-minute rule showed ~7 s before the decision,
and a drill was titled "automatic rollback".
"""

from __future__ import annotations

from typing import Any

import pytest

from litellm_canary.response.incidents.model import Incident, TimelineSeries, Trigger

pytest.importorskip("matplotlib")

from litellm_canary.response.incidents.picture import render_picture, timeline_figure

ZEROS = TimelineSeries(
    t_s=[-6.5, -5.5, -4.5, -3.5, -2.5, -1.5, -0.5, 0.5, 1.5],
    canary_error_rate=[0.0] * 9,
    stable_error_rate=[0.0] * 9,
    canary_ttft_p99_ms=[90, 95, 100, 2000, 2040, 2050, 2040, None, None],
    stable_ttft_p99_ms=[90, 92, 93, 94, 93, 95, 94, 95, 96],
)


def _incident(
    *, rule: str = "ttft_p99", threshold: float = 1000.0, window_s: float = 300.0, **extra: Any
) -> Incident:
    return Incident(
        id="20261206T031416490Z-dd3866",
        model_group="chat",
        kind="automatic",
        decided_at="2026-12-06T03:14:16.490+00:00",
        trigger=Trigger(rule=rule, reason="r", threshold=threshold, window_s=window_s),
        timeline=[],
        restored_after_ms=0.27,
        verification={
            "ttft_p99": {"slo_ms": 500.0, "state": "passed", "summary": "s"},
            "error_rate": {"threshold": 0.05, "state": "passed", "summary": "s"},
        },
        **extra,
    )


def _lines(axes: Any) -> dict[str, Any]:
    return {str(line.get_label()): line for line in axes.get_lines()}


def test_both_sides_stay_visible_when_equal() -> None:
    error_axes, _ = timeline_figure(_incident(), ZEROS).axes
    lines = _lines(error_axes)
    canary, stable = lines["canary"], lines["stable"]
    assert list(canary.get_ydata()) == list(stable.get_ydata()) == [0.0] * 9
    assert canary.get_marker() != stable.get_marker()
    assert canary.get_linestyle() != stable.get_linestyle()
    assert canary.get_color() != stable.get_color()


def test_axes_start_at_zero() -> None:
    for axes in timeline_figure(_incident(), ZEROS).axes:
        bottom, top = axes.get_ylim()
        assert bottom == 0.0 and top > 0.0


def test_threshold_and_slo_lines_are_drawn_on_their_axes() -> None:
    error_axes, ttft_axes = timeline_figure(_incident(), ZEROS).axes
    ttft = _lines(ttft_axes)
    assert list(ttft["trigger ttft_p99 threshold 1000"].get_ydata()) == [1000.0, 1000.0]
    assert list(ttft["TTFT SLO 500 ms"].get_ydata()) == [500.0, 500.0]
    assert list(_lines(error_axes)["verification limit 0.05"].get_ydata()) == [0.05, 0.05]
    assert ttft_axes.get_ylim()[1] > 2050  # the highest point fits


def test_an_error_rate_trigger_draws_its_threshold_on_the_error_axis() -> None:
    error_axes, ttft_axes = timeline_figure(_incident(rule="error_rate", threshold=0.2), ZEROS).axes
    assert "trigger error_rate threshold 0.2" in _lines(error_axes)
    assert not any(label.startswith("trigger") for label in _lines(ttft_axes))


def test_the_trigger_s_whole_window_is_shown_before_the_decision() -> None:
    error_axes, _ = timeline_figure(_incident(window_s=300.0), ZEROS).axes
    left, right = error_axes.get_xlim()
    assert left <= -300.0 and right >= 1.5


def test_the_title_names_the_kind_and_a_drill_says_drill() -> None:
    assert "automatic rollback" in timeline_figure(_incident(), ZEROS).get_suptitle()
    drill = timeline_figure(_incident(drill={"fault": "slow-ttft"}), ZEROS).get_suptitle()
    assert drill.startswith("chat: drill (automatic rollback)")
    recorded = _incident(drill={"fault": "slow-ttft"}).model_copy(update={"kind": "drill"})
    assert timeline_figure(recorded, ZEROS).get_suptitle().startswith("chat: drill rollback ")


def test_render_picture_is_a_png() -> None:
    assert render_picture(_incident(), ZEROS).startswith(b"\x89PNG")


def test_the_picture_is_redrawn_when_the_drill_and_verification_arrive(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from litellm_canary.response.incidents import IncidentStore
    from litellm_canary.response.incidents.picture import picture_title

    store = IncidentStore(tmp_path)
    drawn: list[str] = []
    import litellm_canary.response.incidents.store as store_module
    from litellm_canary.response.incidents.picture import render_picture as original

    def spy(incident: Incident, series: TimelineSeries) -> bytes:
        drawn.append(picture_title(incident))
        return original(incident, series)

    monkeypatch.setattr(store_module, "render_picture", spy)
    bare = _incident().model_copy(update={"verification": None})
    incident = store.write(bare, series=ZEROS)
    store.update(incident.id, drill={"fault": "slow-ttft"})
    store.annotate(incident.id, "cause", "change")  # neither drill nor verification: no redraw
    assert drawn == [
        f"chat: automatic rollback {incident.id}",
        f"chat: drill (automatic rollback) {incident.id}",
    ]
    assert [s.id for s in store.list()] == [incident.id]  # the kept series is not an incident

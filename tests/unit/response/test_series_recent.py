"""SeriesBuffer.recent: the per-second series of the last seconds that the web console charts."""

from __future__ import annotations

from litellm_canary.core.decision import Side
from litellm_canary.response.followup.series import SeriesBuffer
from tests.support.helpers import FakeClock


def test_recent_has_one_entry_per_second_with_quiet_seconds_as_zero() -> None:
    clock = FakeClock()
    buffer = SeriesBuffer(clock)
    clock.now = 1000.2
    buffer.record(Side.CANARY, True, 0.100)
    buffer.record(Side.CANARY, False, None)
    buffer.record(Side.STABLE, True, 0.010)
    clock.now = 1002.7
    buffer.record(Side.STABLE, True, 0.020)
    clock.now = 1003.1  # second 1003 is not complete: not shown

    recent = buffer.recent(4)

    assert recent["t"] == [-4, -3, -2, -1]  # seconds 999, 1000, 1001, 1002
    assert recent["canary"]["requests"] == [0, 2, 0, 0]
    assert recent["canary"]["failures"] == [0, 1, 0, 0]
    assert recent["canary"]["error_rate"] == [None, 0.5, None, None]
    assert recent["canary"]["ttft_p99_ms"] == [None, 100.0, None, None]
    assert recent["stable"]["requests"] == [0, 1, 0, 1]
    assert recent["stable"]["ttft_p99_ms"] == [None, 10.0, None, 20.0]


def test_the_incident_series_is_unchanged_by_the_shared_helpers() -> None:
    clock = FakeClock()
    buffer = SeriesBuffer(clock)
    clock.now = 1000.5
    buffer.record(Side.CANARY, False, 0.2)
    buffer.record(Side.CANARY, True, 0.4)
    series = buffer.series(decided_mono=1001.0, before_s=10)
    assert series is not None
    assert series.t_s == [-0.5]
    assert series.canary_error_rate == [0.5]
    assert series.canary_ttft_p99_ms == [400.0]
    assert series.stable_error_rate == [None]

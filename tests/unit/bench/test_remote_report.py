"""``bench switch --url``'s figures from a recorded run: what counts as restored, as canary after the
latch or the switch, and how the streams in flight at a flip ended."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from litellm_canary.bench.remote_admin import AdminClient, GroupState, Target
from litellm_canary.bench.remote_load import Load, RequestRecord
from litellm_canary.bench.remote_report import summarize, summary_lines
from litellm_canary.bench.remote_switch import Flip, RemoteSettings, Session, _answered_everywhere

URLS = ("http://gw-a", "http://gw-b")
STATE = GroupState(False, 30.0, frozenset({"s"}), frozenset({"c"}), "memory")


def record(
    target: int,
    side: str | None,
    start: float,
    answered: float,
    end: float,
    *,
    stream: bool = True,
    outcome: str = "completed",
) -> RequestRecord:
    return RequestRecord(target, stream, start, answered, end, side, outcome)


@pytest.fixture
def session() -> Iterator[Session]:
    settings = RemoteSettings(
        urls=URLS, group="chat", model="chat", token="t", api_key="k", clients=2, flips=1
    )
    admin = AdminClient("t", 1.0)
    targets = [Target(url, url) for url in URLS]
    made = Session(settings, admin, targets, [STATE, STATE], started=9.0, ended=11.0)
    made.load = Load(targets, [STATE, STATE], "chat", "k", 2)
    yield made
    admin.close()


def test_the_figures_of_one_flip(session: Session) -> None:
    assert session.load is not None
    streams = [
        record(0, "canary", 9.90, 9.95, 10.20),  # in flight at the flip, completed
        record(1, "canary", 9.95, 9.97, 10.10, outcome="failed"),  # in flight at the flip, failed
    ]
    session.load.records += [
        *streams,
        record(1, "stable", 10.000, 10.050, 10.06, stream=False),  # B's first stable answer: switched
        record(0, "canary", 10.005, 10.006, 10.30),  # before A's rollback call returned: not counted
        record(0, "stable", 10.020, 10.030, 10.04, stream=False),  # A's first stable answer
        record(1, "canary", 10.060, 10.070, 10.40),  # B back on the canary after switching: counted
        record(0, "canary", 10.600, 10.610, 10.70),  # after the re-arm: not counted
    ]
    flip = Flip(0, t0=10.0, returned=[10.01, None], call_ms=[10.0], latch_us=[20.0], restored=[10.03, 10.05])
    flip.in_flight, flip.drained_at, flip.rearm_started, flip.rearm_ms = streams, 10.2, 10.5, 3.0
    session.flips.append(flip)

    result = summarize(session)

    assert result["restored_ms_max"] == pytest.approx(50.0)  # the last gateway on stable
    assert [g["restored_ms_max"] for g in result["gateways"]] == [pytest.approx(30.0), pytest.approx(50.0)]
    assert result["canary_after_latch"] == 0
    assert result["canary_after_switch"] == 1
    assert result["canary_after_switch_detail"] == [
        {"flip": 0, "url": "http://gw-b", "started_after_switch_ms": pytest.approx(10.0)}
    ]
    assert (result["inflight_at_flip"], result["inflight_completed"], result["inflight_failed"]) == (2, 1, 1)
    assert result["drain_ms_max"] == pytest.approx(200.0)
    assert result["meets_targets"] == {
        "canary_after_latch": True,
        "canary_after_switch": False,
        "inflight_failed": False,
        "every_gateway_restored": True,
    }
    assert result["requests"]["total"] == 7 and result["requests"]["streaming"] == 5
    text = "\n".join(summary_lines(result))
    assert "1 on the others after they switched (MISSED)" in text
    assert "2 canary streams: 1 completed, 1 failed" in text


def test_a_flip_where_a_gateway_never_answered_from_stable_is_a_restore_timeout(session: Session) -> None:
    session.flips.append(Flip(0, t0=10.0, returned=[10.01, None], call_ms=[10.0], restored=[10.03, None]))
    result = summarize(session)
    assert result["restore_timeouts"] == 1 and result["restored_ms_max"] is None
    assert result["meets_targets"]["every_gateway_restored"] is False


def test_a_flip_waits_for_canary_answers_in_a_row_on_every_gateway(session: Session) -> None:
    assert session.load is not None
    records = session.load.records
    ready = _answered_everywhere(session.load, "canary", since=10.0, in_a_row=2)
    records += [record(0, "canary", 10.1, 10.2, 10.3), record(1, "canary", 10.1, 10.2, 10.3)]
    assert not ready()  # one each
    records += [record(0, "canary", 10.4, 10.5, 10.6), record(1, "stable", 10.4, 10.5, 10.6)]
    assert not ready()  # B's last answer was stable
    records += [record(1, "canary", 10.7, 10.8, 10.9), record(1, None, 10.8, 0, 0)]
    assert not ready()  # B: one canary since its stable answer (the unanswered one does not count)
    records.append(record(1, "canary", 10.9, 11.0, 11.1))
    assert ready()

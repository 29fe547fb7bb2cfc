"""Processes sharing one flagd flag file (``--num_workers`` workers, replicas without Redis) follow
each other's rollbacks and re-arms: a rollback anywhere latches everyone, a re-arm anywhere releases
everyone. Two canaries in one process stand for two workers: each has its own OpenFeature domain
and its own flagd file provider on the same file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litellm import Router

import litellm_canary
from litellm_canary import Canary
from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagdFileStore
from litellm_canary.core.rollback_record import REARMED_AT, ROLLED_BACK_AT, parse_wall
from litellm_canary.testing.gateway_process import wait_until
from tests.support.helpers import chat_rollout, deployment

FOLLOW_S = 10.0  # the provider polls every 50 ms; generous for a loaded machine


def _state(canary: Canary) -> str:
    return str(canary.status()["groups"]["chat"]["state"])


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Canary, Canary]]:
    attached = []
    try:
        for name in ("worker-1", "worker-2"):
            router = Router(
                model_list=[deployment("chat", "chat-stable", "s"), deployment("chat", "chat-canary", "c")]
            )
            config = {
                "rollouts": [chat_rollout()],
                "flag_store": {"kind": "flagd_file", "path": str(tmp_path / "flags.json"), "poll_ms": 50},
                "openfeature_domain": name,
            }
            attached.append(litellm_canary.attach(router, config))
        yield attached[0], attached[1]
    finally:
        for canary in attached:
            canary.detach()


def test_a_rollback_in_one_worker_latches_the_other(workers: tuple[Canary, Canary]) -> None:
    first, second = workers
    first.set_canary_percent("chat", 100)
    first.rollback("chat", "bad canary")
    wait_until(lambda: _state(second) == "rolled_back", FOLLOW_S, what="worker 2 to latch")
    followed = second.status()["groups"]["chat"]["last_rollback"]
    decided = first.status()["groups"]["chat"]["last_rollback"]
    assert followed["reason"] == "bad canary" and followed["decided_at"] == decided["decided_at"]
    # Each worker says when it latched itself: the follower after the decider (its file poll).
    assert (
        parse_wall(followed["latched_at"])
        >= parse_wall(decided["latched_at"])
        >= parse_wall(decided["decided_at"])
    )


def test_a_rearm_in_either_worker_releases_both(workers: tuple[Canary, Canary]) -> None:
    first, second = workers
    first.rollback("chat", "bad canary")
    wait_until(lambda: _state(second) == "rolled_back", FOLLOW_S, what="worker 2 to latch")
    assert second.rearm("chat") is True  # re-armed where it did not start
    assert _state(second) == "armed"
    wait_until(lambda: _state(first) == "armed", FOLLOW_S, what="worker 1 to follow the re-arm")
    second.set_canary_percent("chat", 20)  # neither refuses any more


def test_a_file_rewritten_without_the_mark_does_not_release_anybody(
    workers: tuple[Canary, Canary], tmp_path: Path
) -> None:
    first, second = workers
    first.rollback("chat", "bad canary")
    wait_until(lambda: _state(second) == "rolled_back", FOLLOW_S, what="worker 2 to latch")
    # e.g. a config-management sync puts its own copy of the file back: the canary at 100 %, no metadata
    path = tmp_path / "flags.json"
    FlagdFileStore(tmp_path / "other.json").set_side("chat-canary", Side.CANARY)
    (tmp_path / "other.json").replace(path)
    for canary in workers:  # what each one's provider-change handler runs once it reloads the file
        canary.controller.follow_store()
    # when in doubt, stable: no word of a re-arm, so both stay latched and say so
    assert _state(first) == _state(second) == "rolled_back"
    assert ROLLED_BACK_AT not in path.read_text() and REARMED_AT not in path.read_text()


def test_a_rearm_reaches_a_worker_that_has_not_followed_the_rollback_yet(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    routers = [
        Router(model_list=[deployment("chat", "chat-stable", "s"), deployment("chat", "chat-canary", "c")])
        for _ in range(2)
    ]
    store = {"kind": "flagd_file", "path": str(path), "poll_ms": 60_000}  # polls too slowly to follow
    first = litellm_canary.attach(routers[0], {"rollouts": [chat_rollout()], "flag_store": store})
    second = litellm_canary.attach(
        routers[1], {"rollouts": [chat_rollout()], "flag_store": store, "openfeature_domain": "w2"}
    )
    try:
        first.rollback("chat", "bad canary")
        assert ROLLED_BACK_AT in path.read_text()
        assert _state(second) == "armed"  # has not read the file since
        assert second.rearm("chat") is True  # the file's rollback is the one re-armed
        assert ROLLED_BACK_AT not in path.read_text()
    finally:
        first.detach()
        second.detach()

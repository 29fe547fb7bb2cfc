"""``bench switch --url``'s rollback call: which answers a flip accepts from which gateway."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from litellm_canary.bench.remote_admin import Target
from litellm_canary.bench.remote_switch import BenchFailed, _roll_back

FIRST, FOLLOWER = Target("http://a", "http://a/canary"), Target("http://b", "http://b/canary")


def _session(via: str, webhook_result: str = "rolled_back", repeated: bool = False) -> Any:
    admin = SimpleNamespace(
        webhook=lambda target, group, index: ({"alerts": [{"result": webhook_result, "rollback": {}}]}, 3.0),
        rollback=lambda target, group, reason: ({"repeated": repeated, "latch_us": 5.0}, 2.0),
    )
    return SimpleNamespace(
        settings=SimpleNamespace(via=via, group="chat"), admin=admin, targets=[FIRST, FOLLOWER]
    )


def test_a_follower_that_followed_the_first_rollback_already_is_accepted() -> None:
    """--rollback-to all: the follower may have read the shared flag store before its own call came."""
    assert _roll_back(_session("webhook", "already_rolled_back"), FOLLOWER, 0)[1] == 3.0
    assert _roll_back(_session("admin", repeated=True), FOLLOWER, 0)[1] == 2.0


@pytest.mark.parametrize(
    ("via", "result", "repeated"), [("webhook", "already_rolled_back", False), ("admin", "", True)]
)
def test_the_first_gateway_must_roll_back_afresh(via: str, result: str, repeated: bool) -> None:
    with pytest.raises(BenchFailed, match="flip 0"):
        _roll_back(_session(via, result or "rolled_back", repeated), FIRST, 0)


def test_a_follower_answering_anything_else_fails_the_flip() -> None:
    with pytest.raises(BenchFailed, match="'duplicate', not rolled_back"):
        _roll_back(_session("webhook", "duplicate"), FOLLOWER, 0)

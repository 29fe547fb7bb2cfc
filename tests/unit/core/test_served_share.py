"""``status()``'s ``canary_percent``: the share of users a stored flag sends to the canary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litellm import Router

import litellm_canary
from litellm_canary.core.decision import Side
from litellm_canary.core.flags import flag_definition
from litellm_canary.core.flags.definitions import canary_share
from tests.support.helpers import chat_rollout, deployment


@pytest.mark.parametrize(
    ("definition", "percent"),
    [
        (flag_definition(Side.STABLE), 0.0),
        (flag_definition(Side.CANARY), 100.0),
        (flag_definition(canary_percent=12.5), 12.5),
        (flag_definition(canary_percent=100), 100.0),
        (flag_definition(canary_percent=0), 0.0),
        (None, 0.0),  # a missing flag routes to stable
        ({"defaultVariant": "blue"}, None),
        ({"targeting": {"if": [True, "canary", "stable"]}}, None),
        ({"targeting": {"fractional": [["canary", 1], ["green", 1]]}}, None),
        ({"targeting": {"fractional": [["canary", "x"]]}}, None),
        ("not a mapping", None),
        ({**flag_definition(Side.CANARY), "state": "DISABLED"}, 0.0),
        ({"default_variant": "canary"}, 100.0),  # the key as flagd's in-process core renames it
    ],
)
def test_the_share_of_a_definition(definition: Any, percent: float | None) -> None:
    assert canary_share(definition) == percent


@pytest.mark.parametrize("kind", ["memory", "flagd_file"])
def test_status_reads_the_share_back_from_the_store(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "flags.json"
    flag_store = {"kind": kind, **({"path": str(path), "poll_ms": 50} if kind == "flagd_file" else {})}
    router = Router(
        model_list=[deployment("chat", "chat-stable", "s"), deployment("chat", "chat-canary", "c")]
    )
    canary = litellm_canary.attach(router, {"rollouts": [chat_rollout()], "flag_store": flag_store})
    try:
        canary.set_canary_percent("chat", 30)
        assert canary.status()["groups"]["chat"]["canary_percent"] == 30.0
        canary.rollback("chat", "test")
        assert canary.status()["groups"]["chat"]["canary_percent"] == 0.0
        if kind == "flagd_file":
            path.write_text("{ not json")
            group = canary.status()["groups"]["chat"]
            assert group["canary_percent"] is None  # unreadable: unknown, not guessed
            assert group["flag_store"]["serves"].startswith("unreadable: ")
    finally:
        canary.detach()

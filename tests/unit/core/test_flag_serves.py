"""What a flag serves, in words (``status()["groups"][g]["flag_store"]["serves"]``, shown by the console)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagdFileStore, flag_definition
from litellm_canary.core.flags.definitions import describe_definition
from litellm_canary.core.flags.memory import MemoryFlagStore


@pytest.mark.parametrize(
    ("definition", "words"),
    [
        (flag_definition(variant=Side.STABLE), "stable"),
        (flag_definition(variant=Side.CANARY), "canary"),
        (flag_definition(canary_percent=25), "canary to 25 % of users (sticky)"),
        (flag_definition(canary_percent=12.5), "canary to 12.5 % of users (sticky)"),
        (flag_definition(canary_percent=100), "canary"),
        (flag_definition(canary_percent=0), "stable"),
        (None, "no such flag (routes to stable)"),
        ({**flag_definition(variant=Side.CANARY), "state": "DISABLED"}, "disabled (routes to stable)"),
        (
            {**flag_definition(), "targeting": {"if": [{"in": ["@x", {"var": "email"}]}, "canary", None]}},
            "custom targeting (default stable)",
        ),
    ],
)
def test_each_definition_is_described(definition: dict[str, Any] | None, words: str) -> None:
    assert describe_definition(definition) == words


def test_both_stores_read_back_what_they_wrote(tmp_path: Path) -> None:
    for store in (MemoryFlagStore(), FlagdFileStore(tmp_path / "flags.json")):
        assert store.definition("chat") is None
        store.set_canary_percent("chat", 30)
        assert describe_definition(store.definition("chat")) == "canary to 30 % of users (sticky)"
        store.set_side("chat", Side.STABLE)
        assert describe_definition(store.definition("chat")) == "stable"

"""``status()``'s ``canary_percent``: the share a stored flag serves, read back from the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagdFileStore, MemoryFlagStore, flag_definition
from litellm_canary.core.flags.served_share import canary_percent_of, stored_canary_percent


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
    ],
)
def test_the_share_of_a_definition(definition: Any, percent: float | None) -> None:
    assert canary_percent_of(definition) == percent


def test_the_share_read_back_from_each_store(tmp_path: Path) -> None:
    memory = MemoryFlagStore()
    memory.set_canary_percent("chat", 30)
    assert stored_canary_percent(memory, "chat") == 30.0
    flags = FlagdFileStore(tmp_path / "flags.json")
    flags.set_canary_percent("chat", 7)
    assert stored_canary_percent(flags, "chat") == 7.0
    flags.set_side("chat", Side.STABLE)
    assert stored_canary_percent(flags, "chat") == 0.0
    (tmp_path / "flags.json").write_text("{ not json")
    assert stored_canary_percent(flags, "chat") is None  # unreadable: unknown, not guessed
    assert stored_canary_percent(None, "chat") is None

"""The canary window: recorded, persisted across restarts, ready_to_promote at its end, promotion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from litellm import Router

import litellm_canary
from litellm_canary import ConfigError
from litellm_canary.core.flags import FlagdFileStore
from litellm_canary.release.canary_window import PromoteRefused
from tests.support.helpers import chat_rollout, deployment

HOUR = 3600.0
T0 = 1_800_000_000.0  # a wall-clock time (2027-01-15)


class WallClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _router() -> Router:
    return Router(
        model_list=[deployment("chat", "chat-stable", "stable"), deployment("chat", "chat-canary", "canary")]
    )


def _attach(store: dict[str, Any], clock: WallClock, **rollout: Any) -> Any:
    return litellm_canary.attach(
        _router(),
        {"rollouts": [chat_rollout(**rollout)], "flag_store": store},
        background=False,
        wall_clock=clock,
    )


async def _served_by(canary: Any) -> str:
    response = await canary._router.acompletion(model="chat", messages=[{"role": "user", "content": "hi"}])
    return str(response.choices[0].message.content)


def test_window_is_recorded_and_ends_ready_to_promote() -> None:
    clock = WallClock()
    canary = _attach({"kind": "memory"}, clock, window_h=0.5)
    window = canary.status()["groups"]["chat"]["window"]
    assert window["window_h"] == 0.5
    assert window["started_at"] == "2027-01-15T08:00:00+00:00"
    assert window["ends_at"] == "2027-01-15T08:30:00+00:00"
    assert window["remaining_s"] == 1800.0
    assert not window["ended"] and not window["ready_to_promote"]

    clock.now += 1799
    assert canary.status()["groups"]["chat"]["window"]["remaining_s"] == 1.0
    clock.now += 1
    window = canary.status()["groups"]["chat"]["window"]
    assert window["ended"] and window["ready_to_promote"] and window["remaining_s"] == 0.0
    canary.detach()


def test_default_window_is_48_hours_and_length_is_validated() -> None:
    canary = _attach({"kind": "memory"}, WallClock())
    assert canary.status()["groups"]["chat"]["window"]["remaining_s"] == 48 * HOUR
    canary.detach()
    with pytest.raises(ConfigError, match=r"rollouts\[0\]\.window_h: Input should be greater than 0"):
        _attach({"kind": "memory"}, WallClock(), window_h=0)


def test_a_rollback_blocks_promotion_and_a_rearm_opens_a_new_window() -> None:
    clock = WallClock()
    canary = _attach({"kind": "memory"}, clock, window_h=1)
    clock.now += 2 * HOUR
    canary.rollback("chat", "bad canary")
    window = canary.status()["groups"]["chat"]["window"]
    assert window["ended"] and not window["ready_to_promote"]
    with pytest.raises(PromoteRefused, match="'chat' is rolled back"):
        canary.promote("chat")

    canary.rearm("chat")
    window = canary.status()["groups"]["chat"]["window"]
    assert window["started_at"] == "2027-01-15T10:00:00+00:00" and window["remaining_s"] == HOUR
    assert not window["ready_to_promote"]
    canary.detach()


async def test_promote_refuses_an_open_window_unless_forced_then_serves_canary() -> None:
    clock = WallClock()
    canary = _attach({"kind": "memory"}, clock, window_h=1)
    with pytest.raises(PromoteRefused, match="serves stable to everybody, so no canary is being tried"):
        canary.promote("chat", force=True)  # the flag serves stable: nothing was canaried
    assert await _served_by(canary) == "stable"

    canary.set_canary_percent("chat", 10)
    flag = dict(canary.store.provider.flag("chat-canary"))
    with pytest.raises(PromoteRefused, match=r"still open \(1.00 h of 1 h left"):
        canary.promote("chat")
    assert canary.store.provider.flag("chat-canary") == flag  # nothing half-applied
    assert not canary.status()["groups"]["chat"]["window"]["ended"]

    view = canary.promote("chat", force=True)
    assert view["promoted_at"] == "2027-01-15T08:00:00+00:00" and view["ended"]
    assert not view["ready_to_promote"] and view["remaining_s"] == 0.0
    assert {await _served_by(canary) for _ in range(5)} == {"canary"}
    canary.detach()


def test_promote_needs_a_flag_store() -> None:
    canary = litellm_canary.attach(_router(), {"rollouts": [chat_rollout()]}, background=False)
    with pytest.raises(ConfigError, match="promote needs a flag_store"):
        canary.promote("chat", force=True)
    canary.detach()


def test_flagd_file_keeps_the_window_across_restarts_and_rewrites(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    store = {"kind": "flagd_file", "path": str(flags), "poll_ms": 10}
    clock = WallClock()
    first = _attach(store, clock, window_h=2)
    first.rollback("chat", "test")  # rewrites the flag: the window metadata must survive
    first.rearm("chat")  # a new window from now
    first.detach()

    clock.now += HOUR  # the process restarts an hour later
    second = _attach(store, clock, window_h=2)
    window = second.status()["groups"]["chat"]["window"]
    assert window["started_at"] == "2027-01-15T08:00:00+00:00"
    assert window["remaining_s"] == HOUR
    metadata = json.loads(flags.read_text())["flags"]["chat-canary"]["metadata"]
    assert metadata["litellm_canary.window_started_at"] == T0
    assert "litellm_canary.rolled_back_at" not in metadata
    second.detach()

    # A changed window length applies to the running window.
    third = _attach(store, clock, window_h=0.5)
    assert third.status()["groups"]["chat"]["window"]["ready_to_promote"]
    third.detach()


# -- the command line ----------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "litellm_canary.cli", *args], capture_output=True, text=True, timeout=60
    )


def _config_file(tmp_path: Path, store: str, name: str = "canary.yaml") -> Path:
    path = tmp_path / name
    path.write_text(
        "rollouts:\n"
        "  - {model_group: chat, stable: [chat-stable], canary: [chat-canary], flag_key: chat-canary,"
        " window_h: 0.001}\n"
        f"flag_store: {store}\n"
    )
    return path


def _window_ended_at(flags: Path, started: float) -> None:
    """What a gateway attached at ``started`` (wall time) wrote to the flag file."""
    store = FlagdFileStore(flags)
    store.set_canary_percent("chat-canary", 25)
    store.update_metadata(
        "chat-canary", {"litellm_canary.window_started_at": started, "litellm_canary.window_h": 0.001}
    )


def test_cli_promote_refuses_a_rolled_back_group_then_promotes(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    config = _config_file(tmp_path, f"{{kind: flagd_file, path: {flags}}}")
    _window_ended_at(flags, started=1_000.0)  # long over
    FlagdFileStore(flags).update_metadata("chat-canary", {"litellm_canary.rolled_back_at": 2_000.0})

    refused = _cli("promote", "--config", str(config), "--group", "chat")
    assert refused.returncode == 3
    assert (
        "promote refused: model group 'chat' is rolled back (since 1970-01-01T00:33:20+00:00)"
        in refused.stderr
    )
    assert json.loads(flags.read_text())["flags"]["chat-canary"]["defaultVariant"] == "stable"

    FlagdFileStore(flags).update_metadata("chat-canary", {"litellm_canary.rolled_back_at": None})
    done = _cli("promote", "--config", str(config), "--group", "chat", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["serving"] == "canary" and report["promoted_at"] is not None
    flag = json.loads(flags.read_text())["flags"]["chat-canary"]
    assert flag["defaultVariant"] == "canary"
    assert "litellm_canary.promoted_at" in flag["metadata"]


def test_cli_promote_refuses_after_a_rollback_written_straight_to_the_flag_file(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    config = _config_file(tmp_path, f"{{kind: flagd_file, path: {flags}}}")
    _window_ended_at(flags, started=1_000.0)
    FlagdFileStore(flags).set_side("chat-canary", litellm_canary.Side.STABLE)  # `rollback` without a gateway
    refused = _cli("promote", "--config", str(config), "--group", "chat", "--force")
    assert refused.returncode == 3 and "serves stable to everybody" in refused.stderr
    assert json.loads(flags.read_text())["flags"]["chat-canary"]["defaultVariant"] == "stable"


def test_cli_promote_refuses_an_open_window_without_force(tmp_path: Path) -> None:
    import time

    flags = tmp_path / "flags.json"
    config = _config_file(tmp_path, f"{{kind: flagd_file, path: {flags}}}")
    _window_ended_at(flags, started=time.time() + HOUR)  # opened "in the future": still open
    refused = _cli("promote", "--config", str(config), "--group", "chat")
    assert refused.returncode == 3 and "still open" in refused.stderr and "--force" in refused.stderr
    forced = _cli("promote", "--config", str(config), "--group", "chat", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "chat: promoted, flag 'chat-canary' serves canary to everybody" in forced.stdout


def test_cli_promote_bad_inputs(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    config = _config_file(tmp_path, f"{{kind: flagd_file, path: {flags}}}")
    no_window = _cli("promote", "--config", str(config), "--group", "chat")
    assert no_window.returncode == 3 and "has no canary window" in no_window.stderr
    unknown = _cli("promote", "--config", str(config), "--group", "nope")
    assert unknown.returncode == 2 and "no rollout for model group 'nope'" in unknown.stderr
    memory = _cli(
        "promote", "--config", str(_config_file(tmp_path, "{kind: memory}", "memory.yaml")), "--group", "chat"
    )
    assert memory.returncode == 2 and "needs flag_store.kind 'flagd_file'" in memory.stderr
    flags.write_text("not json")
    broken = _cli("promote", "--config", str(config), "--group", "chat")
    assert broken.returncode == 2 and "cannot read flag file" in broken.stderr


def test_an_unreadable_flag_file_shows_the_last_window_read(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    clock = WallClock()
    canary = _attach({"kind": "flagd_file", "path": str(flags), "poll_ms": 10}, clock, window_h=1)
    assert canary.status()["groups"]["chat"]["window"]["remaining_s"] == HOUR
    good = flags.read_text()
    flags.write_text("{broken")
    clock.now += 60
    window = canary.status()["groups"]["chat"]["window"]
    assert window["remaining_s"] == HOUR - 60 and window["read_error"].startswith("JSONDecodeError")
    flags.write_text(good)
    assert "read_error" not in canary.status()["groups"]["chat"]["window"]
    canary.detach()

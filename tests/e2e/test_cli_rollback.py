"""``litellm-canary rollback`` / ``rearm`` as real processes: against a real gateway process
(``--url``) and straight at a flagd flag file and a real ``redis-server`` (``--config``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagdFileStore
from litellm_canary.core.flags.definitions import flag_definition
from litellm_canary.integrations.broadcast import state_key
from litellm_canary.release.canary_window import FlagMetadataWindowStore, WindowState
from litellm_canary.testing.gateway_process import GatewayProcess, free_port
from litellm_canary.testing.redis_server import RedisServer, require_redis_server
from tests.support.helpers import chat_rollout, started_upstreams

TOKEN = "cli-test-token"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "LITELLM_CANARY_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "litellm_canary.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})},
    )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    directory = tmp_path_factory.mktemp("gateway")
    upstreams = started_upstreams({"chat-stable": "stable", "chat-canary": "canary"})
    config = {
        "model_list": [u.deployment("chat", d) for d, u in upstreams.items()],
        "litellm_canary": {
            "rollouts": [chat_rollout()],
            "flag_store": {"kind": "flagd_file", "path": str(directory / "flags.json")},
        },
    }
    try:
        with GatewayProcess(directory, config, token=TOKEN) as process:
            yield process
    finally:
        for upstream in upstreams.values():
            upstream.stop()


def _state(gateway: GatewayProcess) -> str:
    status = httpx.get(f"{gateway.url}/canary/status", headers=gateway.headers).json()
    return str(status["groups"]["chat"]["state"])


def test_rollback_and_rearm_through_a_gateway(gateway: GatewayProcess, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    target = ("--url", gateway.url, "--token-file", str(token_file))

    done = _run("rollback", "--group", "chat", "--reason", "bad answers", *target)
    assert done.returncode == 0, done.stderr
    assert f"rolled back 'chat' on {gateway.url}" in done.stdout and "latched in" in done.stdout
    assert "flag flagd_file:" in done.stdout and "written after" in done.stdout
    assert _state(gateway) == "rolled_back"

    again = _run("rollback", "--group", "chat", "--reason", "again", *target, "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["rollback"]["repeated"] is True and report["rollback"]["reason"] == "bad answers"

    rearm = _run("rearm", "--group", "chat", "--url", gateway.url, env={"LITELLM_CANARY_TOKEN": TOKEN})
    assert rearm.returncode == 0, rearm.stderr
    assert "re-armed 'chat'" in rearm.stdout and _state(gateway) == "armed"
    nothing = _run("rearm", "--group", "chat", *target)
    assert nothing.returncode == 0 and "was not rolled back" in nothing.stdout


def test_gateway_errors_name_the_problem(gateway: GatewayProcess, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token")
    refused = _run(
        "rollback", "--group", "chat", "--reason", "r", "--url", gateway.url, "--token-file", str(wrong)
    )
    assert refused.returncode == 2 and "refused the token (401)" in refused.stderr

    env = {"LITELLM_CANARY_TOKEN": TOKEN}
    unknown = _run("rollback", "--group", "nope", "--reason", "r", "--url", gateway.url, env=env)
    assert unknown.returncode == 2 and "no rollout manages model group 'nope'" in unknown.stderr
    assert _state(gateway) == "armed"

    no_token = _run("rearm", "--group", "chat", "--url", gateway.url)
    assert no_token.returncode == 2 and "needs a bearer token" in no_token.stderr

    dead = f"http://127.0.0.1:{free_port()}"
    unreachable = _run("rollback", "--group", "chat", "--reason", "r", "--url", dead, env=env)
    assert unreachable.returncode == 1 and f"cannot reach {dead}/canary/rollback" in unreachable.stderr

    blank = _run("rollback", "--group", "chat", "--reason", "  ", "--url", gateway.url, env=env)
    assert blank.returncode == 2 and "--reason must not be blank" in blank.stderr
    bad_url = _run("rearm", "--group", "chat", "--url", "ftp://x", env=env)
    assert bad_url.returncode == 2 and "http(s) URL" in bad_url.stderr
    both = _run("rearm", "--group", "chat", "--url", gateway.url, "--config", "c.yaml")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def _config(tmp_path: Path, flags: Path, **extra: Any) -> Path:
    path = tmp_path / "canary.yaml"
    document = {"rollouts": [chat_rollout()], "flag_store": {"kind": "flagd_file", "path": str(flags)}}
    path.write_text(yaml.safe_dump({**document, **extra}))
    return path


def _serving(flags: Path) -> dict[str, Any]:
    definition: dict[str, Any] = FlagdFileStore(flags).read()["flags"]["chat-canary"]
    return definition


def test_rollback_writes_the_flag_file(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    FlagdFileStore(flags).set_side("chat-canary", Side.CANARY)
    config = str(_config(tmp_path, flags))

    done = _run("rollback", "--group", "chat", "--reason", "bad", "--config", config)
    assert done.returncode == 0, done.stderr
    assert _serving(flags)["defaultVariant"] == "stable"
    assert f"flag 'chat-canary' in {flags} -> stable (" in done.stdout
    assert "no broadcast configured" in done.stdout

    old_window = WindowState(time.time() - 7200, 48.0, rolled_back_at=time.time() - 60)
    FlagMetadataWindowStore(FlagdFileStore(flags)).save("chat-canary", old_window)
    rearm = _run("rearm", "--group", "chat", "--config", config, "--canary-percent", "25", "--json")
    assert rearm.returncode == 0, rearm.stderr
    assert json.loads(rearm.stdout)["flag"]["serving"] == "25 % canary"
    assert _serving(flags)["targeting"]["fractional"] == [["canary", 2500], ["stable", 7500]]
    window = FlagMetadataWindowStore(FlagdFileStore(flags)).load("chat-canary")
    assert window is not None and window.rolled_back_at is None  # a fresh window opened
    assert window.started_at > old_window.started_at + 3600

    bare = _run("rearm", "--group", "chat", "--config", config)
    assert bare.returncode == 2 and "--canary-percent" in bare.stderr


def test_config_mode_errors_name_the_problem(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    FlagdFileStore(flags).set_side("chat-canary", Side.CANARY)
    config = str(_config(tmp_path, flags))
    unknown = _run("rollback", "--group", "embed", "--reason", "r", "--config", config)
    assert unknown.returncode == 2 and "no rollout manages model group 'embed'" in unknown.stderr

    missing = _run(
        "rollback",
        "--group",
        "chat",
        "--reason",
        "r",
        "--config",
        str(_config(tmp_path, tmp_path / "x.json")),
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "x.json").exists()

    memory = tmp_path / "memory.yaml"
    memory.write_text(yaml.safe_dump({"rollouts": [chat_rollout()], "flag_store": {"kind": "memory"}}))
    refused = _run("rollback", "--group", "chat", "--reason", "r", "--config", str(memory))
    assert refused.returncode == 2 and "lives inside each process" in refused.stderr

    absent = _run("rollback", "--group", "chat", "--reason", "r", "--config", str(tmp_path / "nope.yaml"))
    assert absent.returncode == 2 and "cannot read config file" in absent.stderr
    percent = _run("rearm", "--group", "chat", "--config", config, "--canary-percent", "140")
    assert percent.returncode == 2 and "within 0..100" in percent.stderr
    assert _serving(flags)["defaultVariant"] == "canary"  # no error changed anything


def test_config_mode_publishes_on_redis_and_reports_a_dead_redis(tmp_path: Path) -> None:
    require_redis_server()
    flags = tmp_path / "flags.json"
    FlagdFileStore(flags).set_side("chat-canary", Side.CANARY)
    with RedisServer() as server:
        broadcast = {"kind": "redis", "url": server.url, "channel": "cli-test"}
        config = str(_config(tmp_path, flags, broadcast=broadcast))
        done = _run("rollback", "--group", "chat", "--reason", "bad", "--config", config)
        assert done.returncode == 0, done.stderr
        assert (
            "broadcast rollback of 'chat' on redis://127.0.0.1" in done.stdout
            and "(version 1," in done.stdout
        )
        stored = redis.Redis.from_url(server.url).hgetall(state_key("cli-test", "chat"))
        assert stored[b"state"] == b"rolled_back" and stored[b"reason"] == b"bad"
        assert stored[b"origin"].startswith(b"cli:")

        rearm = _run("rearm", "--group", "chat", "--config", config, "--json")
        assert rearm.returncode == 0, rearm.stderr
        assert json.loads(rearm.stdout)["broadcast"]["version"] == 2
        assert redis.Redis.from_url(server.url).hget(state_key("cli-test", "chat"), "state") == b"armed"

    FlagdFileStore(flags).set_side("chat-canary", Side.CANARY)
    dead = {"kind": "redis", "url": f"redis://127.0.0.1:{free_port()}/0", "connect_timeout_s": 0.5}
    config = str(_config(tmp_path, flags, broadcast=dead))
    failed = _run("rollback", "--group", "chat", "--reason", "bad", "--config", config)
    assert failed.returncode == 1
    assert "FAILED to broadcast the rollback: cannot publish to redis://127.0.0.1" in failed.stderr
    assert "the flag file was written" in failed.stdout
    assert _serving(flags)["defaultVariant"] == "stable"  # the flag path worked regardless


def test_rearm_through_a_gateway_says_what_the_flag_serves(gateway: GatewayProcess) -> None:
    """Issue 13 §3 item 9: ``rearm --url`` left the flag at stable with no word about it, and
    ``--canary-percent`` worked with ``--config`` only."""
    env = {"LITELLM_CANARY_TOKEN": TOKEN}
    url = ("--url", gateway.url)
    assert _run("rollback", "--group", "chat", "--reason", "r", *url, env=env).returncode == 0
    plain = _run("rearm", "--group", "chat", *url, env=env)
    assert plain.returncode == 0, plain.stderr
    assert "traffic stays on stable" in plain.stdout and "--canary-percent" in plain.stdout

    assert _run("rollback", "--group", "chat", "--reason", "r", *url, env=env).returncode == 0
    share = _run("rearm", "--group", "chat", *url, "--canary-percent", "25", "--json", env=env)
    assert share.returncode == 0, share.stderr
    report = json.loads(share.stdout)
    assert report["rearmed"] is True and report["canary_percent"] == 25
    assert "the flag now serves the canary to 25 % of users" in report["lines"]
    assert _state(gateway) == "armed"
    written = json.loads((gateway.config_path.parent / "flags.json").read_text())["flags"]["chat-canary"]
    expected = flag_definition(canary_percent=25.0)
    assert {k: written[k] for k in expected} == expected

    bad = _run("rearm", "--group", "chat", *url, "--canary-percent", "101", env=env)
    assert bad.returncode == 2 and "--canary-percent must be within 0..100" in bad.stderr

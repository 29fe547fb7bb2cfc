"""Issue 10 item 2 and item 5 (last bullet): a rollback outlives a restart, and its mark is retried.

A restart is a new Router and a new ``attach()`` on the same flagd flag file (real flagd provider in
in-process file mode); only the upstreams are LiteLLM's ``mock_response``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from litellm import Router

import litellm_canary
from litellm_canary import Canary, RolledBackError
from litellm_canary.cli import main
from litellm_canary.cli.promote import PROMOTE_REFUSED
from litellm_canary.core.rollback_record import LAST_ROLLBACK_REASON, ROLLED_BACK_AT
from litellm_canary.integrations.admin_api import create_app
from litellm_canary.release.canary_window import PromoteRefused
from tests.support.helpers import chat_rollout, deployment

MESSAGES = [{"role": "user", "content": "hi"}]
TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _router() -> Router:
    return Router(
        model_list=[deployment("chat", "chat-stable", "stable"), deployment("chat", "chat-canary", "canary")]
    )


def _config(flags: Path) -> dict[str, Any]:
    return {
        "rollouts": [chat_rollout()],
        "flag_store": {"kind": "flagd_file", "path": str(flags), "poll_ms": 20},
    }


def _attach(flags: Path) -> tuple[Router, Canary]:
    router = _router()
    return router, litellm_canary.attach(router, _config(flags), background=False)


async def _canary_answers(router: Router, requests: int) -> int:
    answers = []
    for index in range(requests):
        response = await router.acompletion(model="chat", messages=MESSAGES, user=f"user-{index}")
        answers.append(response.choices[0].message.content)
    return answers.count("canary")


def _metadata(flags: Path) -> dict[str, Any]:
    metadata: dict[str, Any] = json.loads(flags.read_text())["flags"]["chat-canary"].get("metadata", {})
    return metadata


async def test_a_rollback_survives_a_restart_and_refuses_canary_traffic(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    router, canary = _attach(flags)
    canary.set_canary_percent("chat", 100)
    canary.rollback("chat", reason="error rate 3x stable", kind="automatic")
    assert _metadata(flags)[ROLLED_BACK_AT] > 0
    canary.detach()

    # The restart: a new Router, a new attach on the same flag file.
    router, canary = _attach(flags)
    group = canary.status()["groups"]["chat"]
    assert group["state"] == "rolled_back"
    last = group["last_rollback"]
    assert (last["kind"], last["reason"], last["restored"]) == ("automatic", "error rate 3x stable", True)
    assert group["window"]["ready_to_promote"] is False

    with pytest.raises(RolledBackError, match="re-arm it first"):
        canary.set_canary_percent("chat", 30)
    with pytest.raises(RolledBackError, match="re-arm it first"):
        canary.set_side("chat", "canary")
    with pytest.raises(PromoteRefused, match="re-arm"):
        canary.promote("chat", force=True)
    assert await _canary_answers(router, 40) == 0
    assert canary.status()["groups"]["chat"]["state"] == "rolled_back"

    # Only an explicit re-arm opens the canary again, and the re-arm is recorded too.
    assert canary.rearm("chat") is True
    assert ROLLED_BACK_AT not in _metadata(flags)
    assert _metadata(flags)[LAST_ROLLBACK_REASON] == "error rate 3x stable"  # the record stays
    canary.set_canary_percent("chat", 100)
    canary.detach()
    router, canary = _attach(flags)
    assert canary.status()["groups"]["chat"]["state"] == "armed"
    assert await _canary_answers(router, 5) == 5
    canary.detach()


async def test_http_and_cli_refuse_while_rolled_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = tmp_path / "flags.json"
    config_file = tmp_path / "canary.json"
    config_file.write_text(json.dumps(_config(flags)))
    router, canary = _attach(flags)
    canary.set_canary_percent("chat", 50)
    canary.detach()

    # A rollback from the command line, straight into the flag file, is a rollback after a restart too.
    assert main(["rollback", "--config", str(config_file), "--group", "chat", "--reason", "bad answers"]) == 0
    router, canary = _attach(flags)
    assert canary.status()["groups"]["chat"]["last_rollback"]["reason"] == "bad answers"

    app = create_app(canary, token=TOKEN)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://canary") as client:
        refused = await client.post(
            "/canary/percent", json={"model_group": "chat", "percent": 30}, headers=AUTH
        )
        assert refused.status_code == 409 and "re-arm it first" in refused.json()["error"]
        refused = await client.post(
            "/canary/promote", json={"model_group": "chat", "force": True}, headers=AUTH
        )
        assert refused.status_code == 409 and "re-arm" in refused.json()["error"]
        assert await _canary_answers(router, 20) == 0

        capsys.readouterr()
        assert (
            main(["promote", "--config", str(config_file), "--group", "chat", "--force"]) == PROMOTE_REFUSED
        )
        assert "rolled back" in capsys.readouterr().err

        rearmed = await client.post("/canary/rearm", json={"model_group": "chat"}, headers=AUTH)
        assert rearmed.json()["rearmed"] is True
        done = await client.post(
            "/canary/percent", json={"model_group": "chat", "percent": 100}, headers=AUTH
        )
        assert done.status_code == 200
    canary.detach()


async def test_a_rollback_while_the_flag_file_is_corrupt_is_marked_once_it_is_readable(
    tmp_path: Path,
) -> None:
    flags = tmp_path / "flags.json"
    router, canary = _attach(flags)
    canary.set_canary_percent("chat", 100)
    canary.controller._retry_initial_s = 0.01
    good = flags.read_text()
    flags.write_text("{ not json")

    canary.rollback("chat", reason="during corruption")
    group = canary.status()["groups"]["chat"]
    assert group["state"] == "rolled_back"
    assert group["flag_store"]["write_pending"] is True
    assert group["window"]["rolled_back_mark_pending"] is True
    assert await _canary_answers(router, 10) == 0  # the latch holds meanwhile

    flags.write_text(good)  # the file is readable again: the retry writes the flag and the mark
    assert canary.controller.runtime("chat").flag_written.wait(10)
    assert _metadata(flags)[ROLLED_BACK_AT] > 0
    assert json.loads(flags.read_text())["flags"]["chat-canary"]["defaultVariant"] == "stable"
    assert canary.status()["groups"]["chat"]["window"]["rolled_back_mark_pending"] is False
    canary.detach()

    _, restarted = _attach(flags)
    assert restarted.status()["groups"]["chat"]["state"] == "rolled_back"
    restarted.detach()


def test_the_memory_store_keeps_the_rollback_in_process_only() -> None:
    config = {"rollouts": [chat_rollout()], "flag_store": {"kind": "memory"}}
    canary = litellm_canary.attach(_router(), config, background=False)
    canary.rollback("chat", reason="x")
    with pytest.raises(RolledBackError):
        canary.set_canary_percent("chat", 30)
    canary.detach()
    restarted = litellm_canary.attach(_router(), config, background=False)
    assert restarted.status()["groups"]["chat"]["state"] == "armed"  # documented: memory forgets
    restarted.detach()


@pytest.mark.e2e  # a real redis-server
def test_a_rollback_in_the_flag_file_wins_over_an_older_rearm_on_redis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from litellm_canary.integrations.broadcast import state_key
    from litellm_canary.testing.redis_server import RedisServer, require_redis_server

    require_redis_server()
    flags = tmp_path / "flags.json"
    with RedisServer() as server:
        config = {**_config(flags), "broadcast": {"kind": "redis", "url": server.url, "channel": "restart"}}
        first = litellm_canary.attach(_router(), {**config, "openfeature_domain": "a"}, background=False)
        first.rollback("chat", reason="first")
        assert first.rearm("chat")
        assert first.broadcast is not None
        assert first.broadcast.wait_for(lambda bc: not bc.status()["publish_pending"], 10)
        first.detach()
        # Later, a rollback reaches only the flag file (the command line, with a config without Redis).
        file_only = tmp_path / "file-only.json"
        file_only.write_text(json.dumps(_config(flags)))
        assert main(["rollback", "--config", str(file_only), "--group", "chat", "--reason", "later"]) == 0

        restarted = litellm_canary.attach(_router(), {**config, "openfeature_domain": "b"}, background=False)
        try:
            assert restarted.status()["groups"]["chat"]["state"] == "rolled_back"
            assert restarted.broadcast is not None
            stored = restarted.broadcast.wait_for(lambda bc: not bc.status()["publish_pending"], 10)
            assert stored
            import redis

            state = redis.Redis.from_url(server.url).hgetall(state_key("restart", "chat"))
            assert state[b"state"] == b"rolled_back"
        finally:
            restarted.detach()


async def test_a_replica_that_missed_the_rollback_refuses_and_latches(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    _, replica_a = _attach(flags)
    router_b = _router()
    replica_b = litellm_canary.attach(
        router_b, {**_config(flags), "openfeature_domain": "b"}, background=False
    )
    replica_a.set_canary_percent("chat", 100)
    replica_a.rollback("chat", reason="seen on A")
    assert replica_b.status()["groups"]["chat"]["state"] == "armed"  # B follows the flag, no latch
    with pytest.raises(RolledBackError, match="seen on A"):
        replica_b.set_canary_percent("chat", 30)
    assert replica_b.status()["groups"]["chat"]["state"] == "rolled_back"
    assert json.loads(flags.read_text())["flags"]["chat-canary"]["defaultVariant"] == "stable"
    assert await _canary_answers(router_b, 10) == 0
    replica_a.detach()
    replica_b.detach()

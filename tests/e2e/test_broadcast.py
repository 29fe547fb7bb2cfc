"""The Redis broadcast of the rollback latch, against a real ``redis-server`` on loopback.

Replicas are Canary instances on real Routers in this process (each with its own OpenFeature domain
and memory flag store), plus one real ``litellm-canary serve`` gateway process. Nothing sleeps to
synchronise: tests wait on controller listeners or on ``RedisBroadcast.wait_for``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litellm.router import Router

from litellm_canary import attach
from litellm_canary.canary import Canary
from litellm_canary.core.config import BroadcastConfig, ConfigError, parse_config
from litellm_canary.integrations.broadcast import RedisBroadcast, publish_change, redact_url, state_key
from litellm_canary.testing.gateway_process import GatewayProcess, free_port, wait_until
from litellm_canary.testing.redis_server import RedisServer, require_redis_server
from tests.support.helpers import chat_rollout, deployment, started_upstreams

WAIT_S = 10.0
CHANNEL = "canary-test"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    require_redis_server()
    with RedisServer() as running:
        yield running


class Replica:
    """One Canary on its own Router, with events for latches arriving from elsewhere."""

    def __init__(self, name: str, url: str, **broadcast: Any) -> None:
        self.name = name
        self.router = Router(
            model_list=[
                deployment("chat", "chat-stable", answer="stable"),
                deployment("chat", "chat-canary", answer="canary"),
            ]
        )
        self.canary: Canary = attach(
            self.router,
            {
                "rollouts": [chat_rollout()],
                "openfeature_domain": f"replica-{name}",
                "flag_store": {"kind": "memory"},
                "broadcast": {
                    "kind": "redis",
                    "url": url,
                    "channel": CHANNEL,
                    "replica_id": name,
                    **broadcast,
                },
            },
            background=False,
        )
        self.canary.route_sync_calls()  # answer() is a sync call: steered only through the opt-in
        self.rolled_back = threading.Event()
        self.rearmed = threading.Event()
        self.records: list[Any] = []
        self.canary.controller.on_rollback(self._on_rollback)
        self.canary.controller.on_rearm(lambda group, origin: self.rearmed.set())

    def _on_rollback(self, record: Any) -> None:
        self.records.append(record)
        self.rolled_back.set()

    @property
    def broadcast(self) -> RedisBroadcast:
        assert self.canary.broadcast is not None
        return self.canary.broadcast

    def answer(self) -> str:
        response = self.router.completion(model="chat", messages=[{"role": "user", "content": "hi"}])
        return str(response.choices[0].message.content)

    def latched(self) -> bool:
        return self.canary.runtimes["chat"].rolled_back

    def close(self) -> None:
        self.canary.detach()


@pytest.fixture
def replicas(server: RedisServer) -> Iterator[list[Replica]]:
    made: list[Replica] = []
    yield made
    for replica in made:
        replica.close()


def _replica(made: list[Replica], name: str, url: str, **broadcast: Any) -> Replica:
    replica = Replica(name, url, **broadcast)
    made.append(replica)
    if not replica.latched():  # a replica that comes up rolled back refuses the canary until re-armed
        replica.canary.set_side("chat", "canary")
    return replica


def test_a_rollback_on_one_replica_latches_the_others_and_a_rearm_releases_them(
    server: RedisServer, replicas: list[Replica]
) -> None:
    a, b, c = (_replica(replicas, name, server.url) for name in ("a", "b", "c"))
    assert [r.answer() for r in (a, b, c)] == ["canary"] * 3
    assert all(r.broadcast.status()["connected"] for r in (a, b, c))

    a.canary.rollback("chat", "canary answers badly")
    assert b.rolled_back.wait(WAIT_S) and c.rolled_back.wait(WAIT_S)
    assert [r.answer() for r in (a, b, c)] == ["stable"] * 3

    record = b.canary.status()["groups"]["chat"]["last_rollback"]
    assert record["origin"] == "a" and record["kind"] == "manual"
    assert record["reason"] == "canary answers badly"
    assert record["cause"]["via"] == "broadcast" and record["cause"]["version"] == 1
    assert record["flag_store"] is None  # the origin wrote the flag; B only latched
    assert a.canary.status()["groups"]["chat"]["last_rollback"]["origin"] is None

    # Nobody re-broadcast: one change, published once, by A.
    assert a.broadcast.wait_for(lambda bc: bc.status()["published"] == 1, WAIT_S)
    assert [r.broadcast.status()["published"] for r in (b, c)] == [0, 0]
    stored = redis.Redis.from_url(server.url).hgetall(state_key(CHANNEL, "chat"))
    assert stored[b"state"] == b"rolled_back" and stored[b"version"] == b"1" and stored[b"origin"] == b"a"

    b.canary.rearm("chat")  # any replica may re-arm; every replica follows
    assert a.rearmed.wait(WAIT_S) and c.rearmed.wait(WAIT_S)
    assert not a.latched() and not c.latched()
    # B and C never wrote their flag (still canary); A's rollback wrote stable to A's store.
    assert [b.answer(), c.answer()] == ["canary", "canary"]
    status = c.broadcast.status()
    assert status["versions"] == {"chat": 2} and status["messages_applied"] == 2
    assert status["malformed_messages"] == 0 and status["last_message_at"] is not None


def test_the_latch_is_broadcast_before_the_deciding_replica_writes_its_flag_store(
    server: RedisServer, replicas: list[Replica]
) -> None:
    """The other replicas must not wait for this process's flag write (an fsynced file, a remote
    store): while A's write is held, B already latches."""
    a, b = (_replica(replicas, name, server.url) for name in ("a", "b"))
    store = a.canary.store
    assert store is not None
    release = threading.Event()
    original = store.set_side

    def held_set_side(*args: Any, **kwargs: Any) -> None:
        assert release.wait(WAIT_S), "the test never released the write"
        original(*args, **kwargs)

    store.set_side = held_set_side  # type: ignore[method-assign]
    rolling_back = threading.Thread(target=a.canary.rollback, args=("chat", "bad canary"))
    rolling_back.start()
    try:
        assert b.rolled_back.wait(WAIT_S), "B latched only after A's flag write (or never)"
        assert not a.canary.runtimes["chat"].flag_written.is_set()
    finally:
        release.set()
        rolling_back.join(WAIT_S)
    assert a.answer() == "stable" and b.answer() == "stable"


def test_a_secret_in_the_reason_never_reaches_redis(server: RedisServer, replicas: list[Replica]) -> None:
    a, b = (_replica(replicas, name, server.url) for name in ("a", "b"))
    a.canary.rollback("chat", "paged; upstream said Bearer sk-live-abcdef123456 was refused")
    assert b.rolled_back.wait(WAIT_S)
    stored = redis.Redis.from_url(server.url).hgetall(state_key(CHANNEL, "chat"))
    assert b"sk-live" not in stored[b"reason"] and b"[REDACTED]" in stored[b"reason"]
    assert "sk-live" not in b.canary.status()["groups"]["chat"]["last_rollback"]["reason"]


def test_a_replica_started_after_the_rollback_comes_up_latched(
    server: RedisServer, replicas: list[Replica]
) -> None:
    a = _replica(replicas, "a", server.url)
    a.canary.rollback("chat", "before the new replica existed", kind="automatic")
    assert a.broadcast.wait_for(lambda bc: bc.status()["published"] == 1, WAIT_S)

    late = _replica(replicas, "late", server.url)
    assert late.latched()  # attach() read the stored state before returning
    assert late.answer() == "stable"
    record = late.canary.runtimes["chat"].last_rollback
    assert record is not None and record.origin == "a" and record.kind == "automatic"


def test_redis_down_keeps_the_flag_path_and_shows_the_error_then_recovers(
    server: RedisServer, replicas: list[Replica]
) -> None:
    a = _replica(replicas, "a", server.url, reconnect_max_s=0.2)
    b = _replica(replicas, "b", server.url, reconnect_max_s=0.2)
    server.stop()
    assert a.broadcast.wait_for(lambda bc: not bc.connected, WAIT_S)

    record = a.canary.rollback("chat", "while Redis is down")
    assert a.latched() and a.answer() == "stable"
    assert record["flag_error"] is None and record["flag_store"] == "memory"  # the flag was written
    status = a.canary.status()["broadcast"]
    assert status["connected"] is False
    assert "ConnectionError" in status["last_error"] or "Connection" in status["last_error"]
    assert status["publish_pending"] == ["chat"]
    assert not b.latched()  # B cannot know yet

    server.start()  # same port, empty: both replicas reconnect, A publishes what it did meanwhile
    assert b.rolled_back.wait(WAIT_S)
    assert b.latched() and b.answer() == "stable"
    assert a.broadcast.wait_for(lambda bc: bc.connected and not bc.status()["publish_pending"], WAIT_S)
    assert a.broadcast.status()["connects"] >= 2
    assert b.canary.runtimes["chat"].last_rollback.origin == "a"  # type: ignore[union-attr]


def test_a_restarted_redis_gets_the_latch_back_from_the_replicas(
    server: RedisServer, replicas: list[Replica]
) -> None:
    a = _replica(replicas, "a", server.url, reconnect_max_s=0.2)
    a.canary.rollback("chat", "rolled back before the Redis restart")
    assert a.broadcast.wait_for(lambda bc: bc.status()["published"] == 1, WAIT_S)
    server.stop()
    assert a.broadcast.wait_for(lambda bc: not bc.connected, WAIT_S)
    server.start()  # no persistence: Redis forgot the latch
    assert a.broadcast.wait_for(lambda bc: bc.connected and bc.status()["published"] == 2, WAIT_S)
    stored = redis.Redis.from_url(server.url).hgetall(state_key(CHANNEL, "chat"))
    assert stored[b"state"] == b"rolled_back" and stored[b"origin"] == b"a"
    assert _replica(replicas, "new", server.url).latched()


def test_a_replica_that_starts_while_redis_is_down_serves_and_catches_up(
    server: RedisServer, replicas: list[Replica]
) -> None:
    publisher = _replica(replicas, "publisher", server.url)
    publisher.canary.rollback("chat", "rolled back while the new replica cannot reach Redis")
    assert publisher.broadcast.wait_for(lambda bc: bc.status()["published"] == 1, WAIT_S)

    dead_port = free_port()
    lonely = _replica(replicas, "lonely", f"redis://127.0.0.1:{dead_port}/0", connect_timeout_s=0.5)
    status = lonely.canary.status()["broadcast"]
    assert status["connected"] is False and status["last_error"].startswith("subscribe: ")
    assert not lonely.latched() and lonely.answer() == "canary"  # the flag path still decides
    record = lonely.canary.rollback("chat", "local rollback, no broadcast")
    assert record["flag_error"] is None and lonely.answer() == "stable"


def test_malformed_messages_are_ignored_and_counted(server: RedisServer, replicas: list[Replica]) -> None:
    b = _replica(replicas, "b", server.url)
    client = redis.Redis.from_url(server.url)
    valid = {
        "v": 1,
        "op": "rollback",
        "group": "chat",
        "version": 7,
        "origin": "x",
        "kind": "manual",
        "reason": "r",
        "at": time.time(),
    }
    garbage: list[bytes | str] = [
        b"not json",
        b"\xff\xfe",
        "[]",
        "null",
        json.dumps({**valid, "v": 2}),
        json.dumps({**valid, "op": "explode"}),
        json.dumps({**valid, "version": "7"}),
        json.dumps({**valid, "version": 0}),
        json.dumps({**valid, "kind": "sabotage"}),
        json.dumps({**valid, "group": ""}),
        json.dumps({key: value for key, value in valid.items() if key != "origin"}),
        "{" * 100_000,
    ]
    for message in garbage:
        client.publish(CHANNEL, message)
    assert b.broadcast.wait_for(lambda bc: bc.status()["malformed_messages"] == len(garbage), WAIT_S)
    assert not b.latched()

    client.publish(CHANNEL, json.dumps({**valid, "group": "not-managed-here"}))  # another team's group
    result = publish_change(
        BroadcastConfig(kind="redis", url=server.url, channel=CHANNEL), "chat", "rollback"
    )
    assert result.accepted and result.state == "rolled_back"
    assert b.rolled_back.wait(WAIT_S)  # the subscriber survived all of it
    status = b.broadcast.status()
    assert status["malformed_messages"] == len(garbage) and status["connected"]
    assert status["messages_received"] == len(garbage) + 2


def test_a_gateway_process_follows_and_drives_the_broadcast(
    server: RedisServer, replicas: list[Replica], tmp_path: Path
) -> None:
    import httpx

    upstreams = started_upstreams({"chat-stable": "stable", "chat-canary": "canary"})
    try:
        config = {
            "model_list": [u.deployment("chat", d) for d, u in upstreams.items()],
            "litellm_canary": {
                "rollouts": [chat_rollout()],
                "flag_store": {"kind": "flagd_file", "path": str(tmp_path / "flags.json")},
                "broadcast": {"kind": "redis", "url": server.url, "channel": CHANNEL, "replica_id": "gw"},
            },
        }
        local = _replica(replicas, "local", server.url)
        with GatewayProcess(tmp_path, config, token="gateway-token") as gateway:
            # the gateway rolls back through its admin API; the in-process replica follows
            response = httpx.post(
                f"{gateway.url}/canary/rollback",
                json={"model_group": "chat", "reason": "from the gateway"},
                headers=gateway.headers,
            )
            assert response.status_code == 200, response.text
            assert local.rolled_back.wait(WAIT_S)
            assert local.canary.runtimes["chat"].last_rollback.origin == "gw"  # type: ignore[union-attr]

            # the in-process replica re-arms; the gateway process follows
            assert local.canary.rearm("chat")

            def gateway_armed() -> dict[str, Any] | None:
                status = httpx.get(f"{gateway.url}/canary/status", headers=gateway.headers).json()
                return status if status["groups"]["chat"]["state"] == "armed" else None

            # another process: poll its status until it has applied version 2
            status = wait_until(gateway_armed, WAIT_S, what="the gateway to follow the re-arm")
            assert status["broadcast"]["replica_id"] == "gw" and status["broadcast"]["connected"]
            assert status["broadcast"]["versions"] == {"chat": 2}
    finally:
        for upstream in upstreams.values():
            upstream.stop()


def test_broadcast_config_errors_name_the_field() -> None:
    rollout = chat_rollout()
    for broadcast, expected in [
        ({"kind": "redis", "url": "http://127.0.0.1:6379"}, "broadcast.url"),
        ({"kind": "kafka"}, "broadcast.kind"),
        ({"kind": "redis", "channel": ""}, "broadcast.channel"),
        ({"kind": "redis", "reconnect_max_s": 0}, "broadcast.reconnect_max_s"),
        ({"kind": "redis", "port": 1}, "broadcast.port"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(expected)):
            parse_config({"rollouts": [rollout], "broadcast": broadcast})
    router = Router(
        model_list=[deployment("chat", "chat-stable", "s"), deployment("chat", "chat-canary", "c")]
    )
    with pytest.raises(ConfigError, match=r"broadcast\.url"):
        attach(router, {"rollouts": [rollout], "broadcast": {"kind": "redis", "url": "redis://h:notaport/0"}})
    assert redact_url("redis://user:secret@h:6379/0") == "redis://user:***@h:6379/0"


def test_a_publish_sends_its_script_without_a_connection_handshake(server: RedisServer) -> None:
    """The one-shot publish (the CLI's) is one round trip after the TCP connect: no HELLO, no
    CLIENT SETINFO before the script; the stored state and the message are the same as before."""
    watcher = redis.Redis.from_url(server.url)
    pubsub = watcher.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    watcher.config_resetstat()
    config = BroadcastConfig(kind="redis", url=server.url, channel=CHANNEL)
    result = publish_change(config, "chat", "rollback", reason="wire test", origin="cli")
    assert (result.accepted, result.version, result.state) == (True, 1, "rolled_back")
    commands = {
        name.removeprefix("cmdstat_") for name in watcher.info("commandstats") if name.startswith("cmdstat_")
    }
    assert "eval" in commands and "publish" in commands
    assert not commands & {"hello", "client|setinfo"}, commands
    message = None
    deadline = time.monotonic() + WAIT_S
    while message is None and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=WAIT_S)
    assert message is not None and json.loads(message["data"])["op"] == "rollback"
    assert watcher.hget(state_key(CHANNEL, "chat"), "state") == b"rolled_back"
    pubsub.close()
    watcher.close()

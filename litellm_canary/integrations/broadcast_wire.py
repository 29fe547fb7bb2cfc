"""The Redis side of the latch broadcast: the message format, the state hash and the publish script.

This module owns what travels over Redis: the channel message (:class:`Message`), the per-group
state hash (:func:`state_key`), the atomic Lua script that bumps a group's version, stores its state
and publishes the change in one step, the client factory, and :func:`publish_change` (a one-shot,
synchronous publish for the CLI and benchmarks). It knows nothing about latches or replicas; the
subscriber and publisher threads live in :mod:`litellm_canary.integrations.broadcast`.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from litellm_canary.core.config import BroadcastConfig
from litellm_canary.core.redact import scrub

__all__ = [
    "BroadcastError",
    "Change",
    "Message",
    "Op",
    "PublishResult",
    "default_replica_id",
    "describe_error",
    "publish_change",
    "publish_script",
    "redact_url",
    "redis_client",
    "state_key",
]

Op = Literal["rollback", "rearm"]

# KEYS[1]: the group's state hash. ARGV: channel, op, base version (-1: unconditional), origin,
# kind, reason, wall-clock time, group. Returns {accepted (0/1), version, state}. A re-arm is refused
# when the stored version moved on since the version the replica last saw (and Redis has a state).
PUBLISH_LUA = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local base = tonumber(ARGV[3])
if ARGV[2] == 'rearm' and base >= 0 and current > 0 and current ~= base then
  return {0, current, redis.call('HGET', KEYS[1], 'state') or ''}
end
local version = current + 1
local state = 'armed'
if ARGV[2] == 'rollback' then state = 'rolled_back' end
redis.call('HSET', KEYS[1], 'state', state, 'version', version, 'origin', ARGV[4], 'kind', ARGV[5],
           'reason', ARGV[6], 'at', ARGV[7])
redis.call('PUBLISH', ARGV[1], cjson.encode({v = 1, op = ARGV[2], group = ARGV[8], version = version,
           origin = ARGV[4], kind = ARGV[5], reason = ARGV[6], at = tonumber(ARGV[7])}))
return {1, version, state}
"""


class BroadcastError(RuntimeError):
    """Redis could not be reached or refused the change; the message names the URL and the cause."""


class Message(BaseModel):
    """One change as published on the channel."""

    model_config = ConfigDict(extra="ignore", strict=True)

    v: Literal[1]
    op: Op
    group: str = Field(min_length=1)
    version: int = Field(ge=1)
    origin: str = Field(min_length=1)
    kind: str
    reason: str
    at: float | int


@dataclass(frozen=True)
class Change:
    """A local change waiting to be published."""

    op: Op
    group: str
    kind: str
    reason: str
    at: float
    base_version: int


@dataclass(frozen=True)
class PublishResult:
    accepted: bool
    version: int
    state: str  # the group's stored state after the call: "rolled_back" or "armed"
    elapsed_ms: float


def state_key(channel: str, group: str) -> str:
    return f"{channel}:latch:{group}"


def redact_url(url: str) -> str:
    """The URL without its password, for logs and status."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def default_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def redis_client(config: BroadcastConfig, *, socket_timeout: float, health_check_s: int = 0) -> Any:
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as error:
        raise BroadcastError(
            f"the Redis broadcast needs the redis extra (pip install 'litellm-canary[redis]'): {error}"
        ) from None
    return redis.Redis.from_url(
        config.url,
        socket_connect_timeout=config.connect_timeout_s,
        socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),  # we reconnect ourselves, with backoff and visible errors
        health_check_interval=health_check_s,  # the subscriber PINGs an idle connection
        # A new connection sends its first command right away: redis-py's default handshake (HELLO 3,
        # then CLIENT SETINFO) costs two round trips before it, and the one-shot publish of the CLI
        # connects for every rollback. RESP2 carries all we use (EVAL replies, HGETALL, pub/sub).
        protocol=2,
        driver_info=None,
    )


def publish_script(client: Any, channel: str, change: Change, origin: str) -> tuple[bool, int, str]:
    accepted, version, state = client.eval(
        PUBLISH_LUA,
        1,
        state_key(channel, change.group),
        channel,
        change.op,
        change.base_version,
        origin,
        change.kind,
        scrub(change.reason),  # Redis is shared infrastructure: no secrets in what we store there
        repr(change.at),
        change.group,
    )
    return bool(accepted), int(version), state.decode() if isinstance(state, bytes) else str(state)


def publish_change(
    config: BroadcastConfig,
    group: str,
    op: Op,
    *,
    reason: str = "",
    kind: str = "manual",
    origin: str | None = None,
) -> PublishResult:
    """Publish one rollback or re-arm now (the CLI and benchmarks); unconditional, synchronous.

    Raises :class:`BroadcastError` when Redis cannot be reached.
    """
    change = Change(op, group, kind if op == "rollback" else "", reason, time.time(), -1)
    started = time.perf_counter()
    client = redis_client(config, socket_timeout=config.connect_timeout_s)
    try:
        accepted, version, state = publish_script(
            client, config.channel, change, origin or default_replica_id()
        )
    except Exception as error:
        raise BroadcastError(f"cannot publish to {redact_url(config.url)}: {describe_error(error)}") from None
    finally:
        client.close()
    return PublishResult(accepted, version, state, round((time.perf_counter() - started) * 1e3, 3))


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"

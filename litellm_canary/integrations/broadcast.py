"""The Redis broadcast of the rollback latch between replicas.

This module owns the second propagation path of a rollback, next to the flag store: a Redis
pub/sub channel plus one Redis hash per model group holding the current latch state. It knows the
controller only through ``Canary.controller`` (``on_rollback``/``on_rearm``/``rollback``) and
``Canary.rearm``; nothing in the core imports it.

* A local rollback or re-arm is published by one atomic Lua script that bumps the group's version,
  stores the state in the hash ``<channel>:latch:<group>`` and publishes the change, so the stored
  state and the messages never disagree. Publishing happens on a background thread: a slow or dead
  Redis never blocks the rollback itself.
* Every subscribed replica applies a message through the same controller path, with ``origin`` set
  to the publishing replica: the record says where it came from, the flag store is not written
  again (the origin did that) and nothing is re-broadcast.
* A replica that starts or (re)connects subscribes first, then publishes any change it made while
  Redis was unreachable, then reads every group's stored state and adopts it — so a replica started
  after a rollback comes up latched.
* Conflicts (a change made while disconnected from a view that is no longer current): a rollback is
  always accepted (stable is the safe side); a re-arm based on an out-of-date version is refused and
  the replica adopts the stored state instead.
* Redis down: the flag path is untouched; ``status()`` shows ``connected: false`` and the last
  error, the log says it once per outage, and the subscriber reconnects with exponential backoff.

Malformed messages on the channel are counted and ignored. Runs on two daemon threads with the sync
``redis`` client, so it works the same for sync SDK users, async gateways and the LiteLLM proxy.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from litellm_canary.core.config import BroadcastConfig, ConfigError
from litellm_canary.core.redact import scrub
from litellm_canary.core.rollback_record import RollbackKind, RollbackRecord

if TYPE_CHECKING:
    from litellm_canary.canary import Canary

logger = logging.getLogger("litellm_canary.broadcast")

__all__ = ["BroadcastError", "PublishResult", "RedisBroadcast", "publish_change", "redact_url"]

Op = Literal["rollback", "rearm"]
_ROLLBACK_KINDS: tuple[str, ...] = get_args(RollbackKind)
_POLL_S = 0.5  # how long the subscriber blocks on the socket before checking for stop()

# KEYS[1]: the group's state hash. ARGV: channel, op, base version (-1: unconditional), origin,
# kind, reason, wall-clock time, group. Returns {accepted (0/1), version, state}. A re-arm is refused
# when the stored version moved on since the version the replica last saw (and Redis has a state).
_PUBLISH_LUA = """
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


class _Message(BaseModel):
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
class _Change:
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


def _client(config: BroadcastConfig, *, socket_timeout: float, health_check_s: int = 0) -> Any:
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
    )


def _publish(client: Any, channel: str, change: _Change, origin: str) -> tuple[bool, int, str]:
    accepted, version, state = client.eval(
        _PUBLISH_LUA,
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
    change = _Change(op, group, kind if op == "rollback" else "", reason, time.time(), -1)
    started = time.perf_counter()
    client = _client(config, socket_timeout=config.connect_timeout_s)
    try:
        accepted, version, state = _publish(client, config.channel, change, origin or default_replica_id())
    except Exception as error:
        raise BroadcastError(f"cannot publish to {redact_url(config.url)}: {_describe(error)}") from None
    finally:
        client.close()
    return PublishResult(accepted, version, state, round((time.perf_counter() - started) * 1e3, 3))


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _later(at: object, than: float | None) -> bool:
    """Whether the broadcast time ``at`` (Unix seconds, maybe a string from Redis) is after ``than``."""
    try:
        return than is not None and float(str(at)) > than
    except ValueError:
        return False


def _iso(wall: float | None) -> str | None:
    return None if wall is None else datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")


class RedisBroadcast:
    """The broadcast of one :class:`~litellm_canary.canary.Canary`'s latches. Create, then ``start()``."""

    def __init__(
        self,
        canary: Canary,
        config: BroadcastConfig,
        *,
        backoff_initial_s: float = 0.05,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._canary = canary
        self.config = config
        self.replica_id = config.replica_id or default_replica_id()
        self._channel = config.channel
        self._backoff_initial_s = backoff_initial_s
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._pending: dict[str, _Change] = {}
        self._versions: dict[str, int] = {}
        self._changed = threading.Condition()  # notified whenever the status changes
        self._flush_lock = threading.Lock()  # one flush at a time (publisher thread or a re-sync)
        self._wake_publisher = threading.Event()
        self._stop = threading.Event()
        self._first_sync = threading.Event()
        self._threads: list[threading.Thread] = []
        self._outage_logged = False
        try:  # fail at attach time on a missing extra or an unusable URL, not in a thread
            self._publisher = _client(config, socket_timeout=config.connect_timeout_s)
        except (ValueError, BroadcastError) as error:
            raise ConfigError(f"broadcast.url {redact_url(config.url)!r}: {error}") from None
        # status
        self.connected = False
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_message_at: float | None = None
        self.last_sync_at: float | None = None
        self.connects = 0
        self.received = 0
        self.applied = 0
        self.malformed = 0
        self.published = 0
        self.refused = 0
        canary.controller.on_rollback(self._on_local_rollback)
        canary.controller.on_rearm(self._on_local_rearm)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, initial_sync_timeout_s: float = 2.0) -> RedisBroadcast:
        """Start the threads; wait (at most ``initial_sync_timeout_s``) for the first state read, so
        that a replica started after a rollback is latched before it serves a request."""
        for name, target in (("subscriber", self._subscribe_loop), ("publisher", self._publish_loop)):
            thread = threading.Thread(target=target, name=f"litellm-canary-broadcast-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if not self._first_sync.wait(initial_sync_timeout_s):
            logger.warning(
                "canary broadcast: no state read from %s within %.1f s; starting without it",
                redact_url(self.config.url),
                initial_sync_timeout_s,
            )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake_publisher.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        self.connected = False
        self._publisher.close()

    def wait_for(self, predicate: Callable[[RedisBroadcast], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on every status change) or ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def status(self) -> dict[str, Any]:
        with self._lock:
            pending = sorted(self._pending)
            versions = dict(self._versions)
        return {
            "kind": "redis",
            "url": redact_url(self.config.url),
            "channel": self._channel,
            "replica_id": self.replica_id,
            "connected": self.connected,
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "last_message_at": _iso(self.last_message_at),
            "last_sync_at": _iso(self.last_sync_at),
            "connects": self.connects,
            "messages_received": self.received,
            "messages_applied": self.applied,
            "malformed_messages": self.malformed,
            "published": self.published,
            "refused": self.refused,
            "publish_pending": pending,
            "versions": versions,
        }

    # -- local changes -> Redis ------------------------------------------------------------------

    def _on_local_rollback(self, record: RollbackRecord) -> None:
        if record.origin is not None:  # it came from the broadcast: do not send it back
            return
        self._queue("rollback", record.model_group, record.kind, record.reason)

    def _on_local_rearm(self, group: str, origin: str | None) -> None:
        if origin is not None:
            return
        self._queue("rearm", group, "", "")

    def _queue(self, op: Op, group: str, kind: str, reason: str) -> None:
        with self._lock:
            base = self._versions.get(group, 0)
            self._pending[group] = _Change(op, group, kind, reason, self._wall_clock(), base)
        self._wake_publisher.set()

    def _publish_loop(self) -> None:
        client = self._publisher
        delay = self._backoff_initial_s
        try:
            while not self._stop.is_set():
                with self._lock:
                    idle = not self._pending
                self._wake_publisher.wait(None if idle else delay)
                self._wake_publisher.clear()
                if self._stop.is_set():
                    return
                if self._flush(client):
                    delay = self._backoff_initial_s
                else:
                    delay = min(delay * 2, self.config.reconnect_max_s)
        finally:
            client.close()

    def _flush(self, client: Any) -> bool:
        """Publish every pending change; False when Redis failed (they stay pending)."""
        with self._flush_lock:
            return self._flush_locked(client)

    def _flush_locked(self, client: Any) -> bool:
        with self._lock:
            changes = list(self._pending.values())
        for change in changes:
            try:
                accepted, version, state = _publish(client, self._channel, change, self.replica_id)
            except Exception as error:
                self._failed("publish", error, disconnected=False)
                return False
            with self._lock:
                if self._pending.get(change.group) is change:
                    del self._pending[change.group]
                self._versions[change.group] = max(version, self._versions.get(change.group, 0))
            if accepted:
                self.published += 1
                logger.info(
                    "canary broadcast: published %s of %r (version %d)", change.op, change.group, version
                )
            else:
                self.refused += 1
                logger.warning(
                    "canary broadcast: re-arm of %r refused: another replica changed it meanwhile "
                    "(version %d, %s); adopting that state",
                    change.group,
                    version,
                    state,
                )
                self._adopt(change.group, state, version, {"origin": "redis", "kind": "manual"})
            self._notify()
        return True

    # -- Redis -> local latches ------------------------------------------------------------------

    def _subscribe_loop(self) -> None:
        delay = self._backoff_initial_s
        while not self._stop.is_set():
            client = _client(
                self.config, socket_timeout=max(5.0, self.config.connect_timeout_s), health_check_s=2
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._channel)
                self._sync(client)
                delay = self._backoff_initial_s
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=_POLL_S)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message.get("data"))
                        self._notify()
            except Exception as error:
                self._failed("subscribe", error)
                self._first_sync.set()
                self._stop.wait(delay)
                delay = min(delay * 2, self.config.reconnect_max_s)
            finally:
                self.connected = False
                try:
                    pubsub.close()
                    client.close()
                except Exception:  # closing a dead connection: nothing left to do
                    pass

    def _sync(self, client: Any) -> None:
        """After (re)subscribing: publish what changed here meanwhile, then adopt the stored state."""
        if not self._flush(client):
            raise BroadcastError(self.last_error or "publish failed")
        groups = list(self._canary.runtimes)
        pipe = client.pipeline(transaction=False)
        for group in groups:
            pipe.hgetall(state_key(self._channel, group))
        stored = pipe.execute()
        reconnect = self.connects > 0
        self.connected = True
        self._outage_logged = False
        self.connects += 1
        self.last_sync_at = self._wall_clock()
        for group, fields in zip(groups, stored, strict=True):
            decoded = {k.decode(): v.decode() for k, v in fields.items()}
            if not decoded:  # Redis lost it (restart without persistence) or never had it
                with self._lock:
                    self._versions[group] = 0
                if self._canary.runtimes[group].rolled_back:
                    self._queue_restore(group)
                continue
            try:
                version = int(decoded["version"])
                state = decoded["state"]
            except (KeyError, ValueError):
                self.malformed += 1
                logger.warning("canary broadcast: stored state of %r is malformed: %r", group, decoded)
                continue
            with self._lock:
                self._versions[group] = version
            self._adopt(group, state, version, decoded)
        if reconnect:
            logger.warning("canary broadcast: reconnected to %s, state re-read", redact_url(self.config.url))
        self._first_sync.set()
        self._wake_publisher.set()
        self._notify()

    def _queue_restore(self, group: str) -> None:
        record = self._canary.runtimes[group].last_rollback
        with self._lock:
            if group not in self._pending:
                self._pending[group] = _Change(
                    "rollback",
                    group,
                    record.kind if record else "manual",
                    record.reason if record else "restored after Redis lost the state",
                    self._wall_clock(),
                    -1,
                )

    def _on_message(self, data: Any) -> None:
        self.received += 1
        self.last_message_at = self._wall_clock()
        try:
            message = _Message.model_validate(json.loads(data))
            if message.op == "rollback" and message.kind not in _ROLLBACK_KINDS:
                raise ValueError(f"unknown rollback kind {message.kind!r}")
        except (ValueError, TypeError, ValidationError) as error:
            self.malformed += 1
            logger.warning(
                "canary broadcast: ignoring malformed message on %r (%d so far): %s",
                self._channel,
                self.malformed,
                str(error).splitlines()[0][:200],
            )
            return
        with self._lock:
            if message.version <= self._versions.get(message.group, 0):
                return  # already seen (published by us, or read with the stored state)
            self._versions[message.group] = message.version
        if message.origin == self.replica_id or message.group not in self._canary.runtimes:
            return
        state = "rolled_back" if message.op == "rollback" else "armed"
        self._adopt(message.group, state, message.version, message.model_dump())

    def _adopt(self, group: str, state: str, version: int, fields: dict[str, Any]) -> None:
        """Make the local latch of ``group`` match ``state`` through the controller."""
        runtime = self._canary.runtimes.get(group)
        if runtime is None:
            return
        origin = str(fields.get("origin") or "redis")
        if state == "rolled_back" and not runtime.rolled_back:
            kind = str(fields.get("kind"))
            wall = fields.get("at")
            self._canary.controller.rollback(
                group,
                str(fields.get("reason") or "rollback broadcast by another replica"),
                kind=kind if kind in _ROLLBACK_KINDS else "manual",  # type: ignore[arg-type]
                cause={
                    "via": "broadcast",
                    "origin_replica": origin,
                    "version": version,
                    "origin_at": _iso(float(wall)) if wall not in (None, "") else None,
                },
                origin=origin,
            )
            self.applied += 1
        elif state == "armed" and runtime.rolled_back:
            last = runtime.last_rollback
            if last is not None and last.restored and not _later(fields.get("at"), last.decided_wall):
                # The flag store recorded a rollback after this re-arm (or we cannot tell): when in
                # doubt, stable. Keep the latch and tell the others.
                logger.warning(
                    "canary broadcast: %r re-armed on Redis but rolled back later in %s; keeping the latch",
                    group,
                    last.flag_store,
                )
                self._queue_restore(group)
                self._wake_publisher.set()
                return
            self._canary.rearm(group, origin=origin)
            self.applied += 1

    def _failed(self, what: str, error: BaseException, *, disconnected: bool = True) -> None:
        self.last_error = f"{what}: {_describe(error)}"
        self.last_error_at = self._wall_clock()
        if disconnected:
            self.connected = False
        self._notify()
        if not self._outage_logged:  # once per outage; the status keeps the latest error
            self._outage_logged = True
            logger.error(
                "canary broadcast: Redis %s failed (%s); the flag store still propagates rollbacks, "
                "reconnecting with backoff",
                redact_url(self.config.url),
                self.last_error,
            )


def install_broadcast(canary: Canary) -> RedisBroadcast | None:
    """Create and start the broadcast the canary's config asks for (None when it asks for none)."""
    config = canary.config.broadcast
    if config is None:
        return None
    return RedisBroadcast(canary, config).start()

"""The Redis broadcast of the rollback latch between replicas.

This module owns the second propagation path of a rollback, next to the flag store: the publisher
and subscriber threads that keep every replica's latches in step over Redis (the wire format and the
publish script are in :mod:`litellm_canary.integrations.broadcast_wire`). It knows the controller
only through the narrow :class:`Latches` Protocol (``rollback``/``rearm`` and a connect for each of
their signals) and reads each group's state through a mapping of :class:`LatchState`; nothing in
the core imports it.

* A local rollback or re-arm is published by one atomic Lua script that bumps the group's version,
  stores the state in the hash ``<channel>:latch:<group>`` and publishes the change, so the stored
  state and the messages never disagree. Publishing happens on a background thread: a slow or dead
  Redis never blocks the rollback itself.
* Every subscribed replica applies a message through the same controller path (``rollback`` or
  ``rearm``), with ``origin`` set to the publishing replica: the record says where it came from, the
  flag store is not written again (the origin did that) and nothing is re-broadcast.
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
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from litellm_canary.core.config import BroadcastConfig, ConfigError
from litellm_canary.core.rollback_record import RollbackRecord
from litellm_canary.integrations.broadcast_latches import ROLLBACK_KINDS, Latches, LatchState, adopt, iso
from litellm_canary.integrations.broadcast_wire import (
    BroadcastError,
    Change,
    Message,
    Op,
    PublishResult,
    default_replica_id,
    describe_error,
    publish_change,
    publish_script,
    redact_url,
    redis_client,
    state_key,
)

logger = logging.getLogger("litellm_canary.broadcast")

__all__ = [
    "BroadcastError",
    "LatchState",
    "Latches",
    "PublishResult",
    "RedisBroadcast",
    "install_broadcast",
    "publish_change",
    "redact_url",
    "state_key",
]

_POLL_S = 0.5  # how long the subscriber blocks on the socket before checking for stop()


class RedisBroadcast:
    """The broadcast of one process's latches. Create, then ``start()``."""

    def __init__(
        self,
        latches: Latches,
        states: Mapping[str, LatchState],
        config: BroadcastConfig,
        *,
        backoff_initial_s: float = 0.05,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._latches = latches
        self._states = states
        self.config = config
        self.replica_id = config.replica_id or default_replica_id()
        self._channel = config.channel
        self._backoff_initial_s = backoff_initial_s
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._pending: dict[str, Change] = {}
        self._versions: dict[str, int] = {}
        self._changed = threading.Condition()  # notified whenever the status changes
        self._flush_lock = threading.Lock()  # one flush at a time (publisher thread or a re-sync)
        self._wake_publisher = threading.Event()
        self._stop = threading.Event()
        self._first_sync = threading.Event()
        self._threads: list[threading.Thread] = []
        self._outage_logged = False
        try:  # fail at attach time on a missing extra or an unusable URL, not in a thread
            self._publisher = redis_client(config, socket_timeout=config.connect_timeout_s)
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
        latches.on_latched(self._on_local_rollback)
        latches.on_rearm(self._on_local_rearm)

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
            "last_error_at": iso(self.last_error_at),
            "last_message_at": iso(self.last_message_at),
            "last_sync_at": iso(self.last_sync_at),
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
            self._pending[group] = Change(op, group, kind, reason, self._wall_clock(), base)
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
                accepted, version, state = publish_script(client, self._channel, change, self.replica_id)
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
            client = redis_client(
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
        groups = list(self._states)
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
                if self._states[group].rolled_back:
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
        record = self._states[group].last_rollback
        with self._lock:
            if group not in self._pending:
                self._pending[group] = Change(
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
            message = Message.model_validate(json.loads(data))
            if message.op == "rollback" and message.kind not in ROLLBACK_KINDS:
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
        if message.origin == self.replica_id or message.group not in self._states:
            return
        state = "rolled_back" if message.op == "rollback" else "armed"
        self._adopt(message.group, state, message.version, message.model_dump())

    def _adopt(self, group: str, state: str, version: int, fields: Mapping[str, Any]) -> None:
        """Make the local latch of ``group`` match ``state`` through the controller."""
        result = adopt(self._latches, self._states, group, state, version, fields)
        if result == "applied":
            self.applied += 1
        elif result == "kept_latch":  # when in doubt, stable: keep the latch and tell the others
            self._queue_restore(group)
            self._wake_publisher.set()

    def _failed(self, what: str, error: BaseException, *, disconnected: bool = True) -> None:
        self.last_error = f"{what}: {describe_error(error)}"
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


def install_broadcast(
    config: BroadcastConfig | None, latches: Latches, states: Mapping[str, LatchState]
) -> RedisBroadcast | None:
    """Create and start the broadcast ``config`` asks for (None when it asks for none)."""
    if config is None:
        return None
    return RedisBroadcast(latches, states, config).start()

"""The canary window of each rollout, and promotion at its end.

A rollout's window opens when the canary is first attached (and again on every re-arm after a
rollback: the canary starts a fresh watch) and lasts ``window_h`` hours (config, default 48). When
it has ended without a rollback the rollout is ``ready_to_promote``; promoting — an operator's act
(``litellm-canary promote`` or :meth:`Canary.promote`) — writes the flag to ``canary`` for good and
closes the window.

Where the window is kept, so that a restart does not reset it:

* ``flag_store: flagd_file`` — in the flag's own ``metadata`` in the flagd file (flagd allows
  string/number/bool metadata per flag, and the flag writers keep it across re-writes). Every
  process sharing the file sees one window, and the command line can promote without a gateway.
* ``flag_store: memory`` or none — in the process's memory: a restart opens a new window.

Times here are wall-clock (Unix seconds, injectable): a window spans restarts and days, which a
monotonic clock cannot. This module knows nothing of LiteLLM, HTTP or the CLI.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from litellm_canary.core.config import CanaryConfig, ConfigError, Rollout
from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagdFileStore, FlagStore
from litellm_canary.core.flags.definitions import canary_share
from litellm_canary.core.rollback_record import ROLLED_BACK_AT

__all__ = [
    "CanaryWindows",
    "FlagMetadataWindowStore",
    "MemoryWindowStore",
    "PromoteRefused",
    "WindowState",
    "WindowStore",
    "promote",
    "promote_from_config",
    "window_view",
]

_STARTED = "litellm_canary.window_started_at"
_LENGTH = "litellm_canary.window_h"
_PROMOTED = "litellm_canary.promoted_at"
_ROLLED_BACK = ROLLED_BACK_AT  # written by the controller with the flag, in the same file write


class PromoteRefused(Exception):
    """Promotion is not allowed now (rolled back, window still open, or no window)."""


@dataclass(frozen=True, slots=True)
class WindowState:
    """One rollout's window; times are Unix seconds."""

    started_at: float
    window_h: float
    promoted_at: float | None = None
    rolled_back_at: float | None = None  # set while the rollout is rolled back

    @property
    def ends_at(self) -> float:
        return self.started_at + self.window_h * 3600.0

    def to_metadata(self) -> dict[str, float | None]:
        return {
            _STARTED: self.started_at,
            _LENGTH: self.window_h,
            _PROMOTED: self.promoted_at,
            _ROLLED_BACK: self.rolled_back_at,
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None) -> WindowState | None:
        """The state written in a flag's metadata; None when absent or not numbers."""
        if not metadata:
            return None

        def number(key: str) -> float | None:
            value = metadata.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                return None
            return float(value)

        started, length = number(_STARTED), number(_LENGTH)
        if started is None or length is None or length <= 0:
            return None
        return cls(started, length, number(_PROMOTED), number(_ROLLED_BACK))


class WindowStore(Protocol):
    """Keeps window states by flag key."""

    def load(self, flag_key: str) -> WindowState | None: ...
    def save(self, flag_key: str, state: WindowState) -> None: ...
    def describe(self) -> str: ...


class MemoryWindowStore:
    """Windows in this process's memory (a restart opens new windows)."""

    def __init__(self) -> None:
        self._states: dict[str, WindowState] = {}

    def load(self, flag_key: str) -> WindowState | None:
        return self._states.get(flag_key)

    def save(self, flag_key: str, state: WindowState) -> None:
        self._states[flag_key] = state

    def describe(self) -> str:
        return "memory"


class FlagMetadataWindowStore:
    """Windows in the flag's ``metadata`` of a flagd flag file (shared by processes, survives restarts)."""

    def __init__(self, store: FlagdFileStore) -> None:
        self.store = store

    def load(self, flag_key: str) -> WindowState | None:
        flag = self.store.read()["flags"].get(flag_key)
        return WindowState.from_metadata(flag.get("metadata")) if isinstance(flag, dict) else None

    def save(self, flag_key: str, state: WindowState) -> None:
        self.store.update_metadata(flag_key, state.to_metadata())

    def describe(self) -> str:
        return f"flag_metadata:{self.store.path}"


def _iso(wall: float | None) -> str | None:
    return None if wall is None else datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds")


def window_view(state: WindowState, now: float, *, rolled_back: bool) -> dict[str, Any]:
    """The JSON view of a window at wall time ``now`` (as shown in ``status()``)."""
    remaining = max(state.ends_at - now, 0.0)
    promoted = state.promoted_at is not None
    ended = remaining == 0.0 or promoted
    return {
        "started_at": _iso(state.started_at),
        "window_h": state.window_h,
        "ends_at": _iso(state.ends_at),
        "remaining_s": 0.0 if promoted else round(remaining, 3),
        "ended": ended,
        "promoted_at": _iso(state.promoted_at),
        "ready_to_promote": ended and not promoted and not rolled_back and state.rolled_back_at is None,
    }


def promote(
    store: FlagStore,
    windows: WindowStore,
    rollout: Rollout,
    *,
    now: float,
    rolled_back: bool = False,
    force: bool = False,
) -> WindowState:
    """Write ``rollout``'s flag to canary for good and close its window; raises :class:`PromoteRefused`.

    Refused while the rollout is rolled back, while its flag serves stable to everybody (nothing is
    being canaried — e.g. after a rollback written straight to the flag file), and before its window
    has ended (unless ``force``). Promoting a promoted rollout writes the flag again and keeps the
    first promotion time.
    """
    group = rollout.model_group
    state = windows.load(rollout.flag_key)
    if state is None:
        raise PromoteRefused(
            f"model group {group!r} has no canary window in {windows.describe()}: "
            "attach the canary (start the gateway) first"
        )
    if rolled_back or state.rolled_back_at is not None:
        since = _iso(state.rolled_back_at)
        raise PromoteRefused(
            f"model group {group!r} is rolled back{f' (since {since})' if since else ''}: "
            "re-arm it and let a new canary window pass before promoting"
        )
    if state.promoted_at is None and _serves_only_stable(store, rollout.flag_key):
        raise PromoteRefused(
            f"flag {rollout.flag_key!r} of {group!r} serves stable to everybody, so no canary is being "
            "tried (rolled back from the command line?): set a canary percentage and let a window pass"
        )
    if state.promoted_at is None and now < state.ends_at and not force:
        left_h = (state.ends_at - now) / 3600.0
        raise PromoteRefused(
            f"the canary window of {group!r} is still open ({left_h:.2f} h of {state.window_h:g} h left, "
            f"until {_iso(state.ends_at)}); pass --force (force=True) to promote anyway"
        )
    store.set_side(rollout.flag_key, Side.CANARY)
    promoted = state if state.promoted_at is not None else replace(state, promoted_at=now)
    windows.save(rollout.flag_key, promoted)
    return promoted


def _serves_only_stable(store: FlagStore, flag_key: str) -> bool:
    """Whether the store's flag definition serves stable to everybody (unknown stores: False)."""
    definition = getattr(store, "definition", None)  # not part of the FlagStore protocol
    return definition is not None and canary_share(definition(flag_key)) == 0


class CanaryWindows:
    """The windows of a canary's rollouts: opened at attach, reopened on re-arm, marked on rollback."""

    def __init__(
        self,
        rollouts: tuple[Rollout, ...],
        store: WindowStore,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._rollouts = {rollout.model_group: rollout for rollout in rollouts}
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._known: dict[str, WindowState] = {}  # the last state read, by model group
        self._read_errors: dict[str, str] = {}
        now = wall_clock()
        for rollout in rollouts:
            state = store.load(rollout.flag_key)
            if state is None:
                state = WindowState(now, rollout.window_h)
            elif state.window_h != rollout.window_h:
                state = replace(state, window_h=rollout.window_h)  # the configured length rules
            else:
                self._known[rollout.model_group] = state
                continue
            store.save(rollout.flag_key, state)
            self._known[rollout.model_group] = state

    def state(self, model_group: str) -> WindowState | None:
        """The persisted state; while the store cannot be read, the last one read (never raises)."""
        try:
            state = self.store.load(self._rollouts[model_group].flag_key)
        except (OSError, ValueError) as error:
            self._read_errors[model_group] = f"{type(error).__name__}: {error}"
            return self._known.get(model_group)
        self._read_errors.pop(model_group, None)
        if state is not None:
            self._known[model_group] = state
        return state

    def view(self, model_group: str, *, rolled_back: bool) -> dict[str, Any] | None:
        state = self.state(model_group)
        if state is None:
            return None
        view = window_view(state, self._wall_clock(), rolled_back=rolled_back)
        error = self._read_errors.get(model_group)
        if error is not None:
            view["read_error"] = error  # shown from the last state read
        return view

    def promoted(self, model_group: str) -> bool:
        state = self.state(model_group)
        return state is not None and state.promoted_at is not None

    def rolled_back(self, model_group: str) -> None:
        """Remember the rollback (so that the command line refuses to promote)."""
        self._update(model_group, lambda state, now: replace(state, rolled_back_at=now))

    def rearmed(self, model_group: str) -> None:
        """A re-armed canary starts a fresh window."""
        rollout = self._rollouts[model_group]
        self._update(model_group, lambda state, now: WindowState(now, rollout.window_h))

    def promote(
        self, flag_store: FlagStore, model_group: str, *, rolled_back: bool, force: bool
    ) -> WindowState:
        with self._lock:
            return promote(
                flag_store,
                self.store,
                self._rollouts[model_group],
                now=self._wall_clock(),
                rolled_back=rolled_back,
                force=force,
            )

    def _update(self, model_group: str, change: Callable[[WindowState, float], WindowState]) -> None:
        rollout = self._rollouts[model_group]
        with self._lock:
            now = self._wall_clock()
            state = self.store.load(rollout.flag_key) or WindowState(now, rollout.window_h)
            self.store.save(rollout.flag_key, change(state, now))


def promote_from_config(
    config: CanaryConfig, model_group: str, *, force: bool = False, now: float | None = None
) -> dict[str, Any]:
    """Promote ``model_group`` straight in the config's flagd flag file (``litellm-canary promote``).

    Raises ``ConfigError`` for an unknown group, a config without a flagd file store or an unreadable
    flag file, and :class:`PromoteRefused` when promotion is not allowed now.
    """
    try:
        rollout = config.rollout(model_group)
    except KeyError as error:
        raise ConfigError(str(error.args[0])) from None
    store_config = config.flag_store
    if store_config is None or store_config.kind != "flagd_file" or store_config.path is None:
        raise ConfigError(
            "promote from the command line needs flag_store.kind 'flagd_file' (the canary window and "
            "the flag live in that file); with a memory store call Canary.promote in the serving process"
        )
    store = FlagdFileStore(store_config.path)
    windows = FlagMetadataWindowStore(store)
    try:
        windows.load(rollout.flag_key)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read flag file {store_config.path}: {error}") from None
    when = time.time() if now is None else now
    state = promote(store, windows, rollout, now=when, force=force)
    return {
        "model_group": model_group,
        "flag_key": rollout.flag_key,
        "serving": "canary",
        **window_view(state, when, rolled_back=False),
    }

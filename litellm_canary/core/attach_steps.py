"""What ``attach`` does to the world outside the canary's own objects, each step with its undo.

The flag store and its OpenFeature provider (made, validated, seeded), the provider installed for
the canary's domain, files and directories created by the attach: each step here either returns or
appends an undo callable, so that a failed attach leaves the application exactly as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openfeature import api
from openfeature.provider._registry import provider_registry

from litellm_canary.core.config import CanaryConfig
from litellm_canary.core.decision import Side
from litellm_canary.core.flags import (
    FlagdFileStore,
    FlagStore,
    MemoryFlagProvider,
    MemoryFlagStore,
    flagd_file_provider,
    validate_flagd_file,
)

__all__ = [
    "make_flag_store",
    "provider_restorer",
    "remove_created",
    "seed_flag_store",
    "set_provider",
    "validate_flag_store",
]


def validate_flag_store(config: CanaryConfig) -> None:
    """An existing flag file must be a readable flagd document (before anything is changed)."""
    store_config = config.flag_store
    if store_config is None or store_config.kind != "flagd_file" or store_config.path is None:
        return
    validate_flagd_file(store_config.path)  # a ConfigError naming the file and the problem (line, column)


def remove_created(files: tuple[Path, ...] = (), directories: tuple[Path, ...] = ()) -> Callable[[], None]:
    """An undo step removing those of ``files`` and ``directories`` (and their parent directories)
    that do not exist now; a directory is removed only while empty."""
    missing = [path for path in files if not path.exists()]
    new_dirs: list[Path] = []
    for path in (*files, *directories):
        for parent in (
            (path.absolute(), *path.absolute().parents) if path in directories else path.absolute().parents
        ):
            if parent.exists():
                break
            new_dirs.append(parent)

    def remove() -> None:
        for path in missing:
            path.unlink(missing_ok=True)
        for directory in sorted(set(new_dirs), key=lambda d: len(d.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()

    return remove


def provider_restorer(domain: str | None) -> Callable[[], None]:
    """An undo step putting back the provider ``domain`` has now."""
    previous = provider_registry.get_provider(domain)
    # The SDK has no public "unbind a domain"; its registry's domain map is the one private piece
    # used here (contract test: tests/integration/test_attach_atomic.py).
    bound = domain is None or domain in provider_registry._providers

    def restore() -> None:
        if domain is None:
            api.set_provider(previous)
        elif bound:
            api.set_provider(previous, domain)
        else:
            with provider_registry._lock:
                ours = provider_registry._providers.pop(domain, None)
            if ours is not None:
                ours.shutdown()

    return restore


def set_provider(provider: Any, domain: str | None) -> None:
    if domain is None:
        api.set_provider_and_wait(provider)
    else:
        api.set_provider_and_wait(provider, domain)


def make_flag_store(config: CanaryConfig) -> tuple[FlagStore | None, Any]:
    """The flag store and the provider to install for it (neither written nor installed yet)."""
    store_config = config.flag_store
    if store_config is None:
        return None, None
    if store_config.kind == "memory":
        provider = MemoryFlagProvider()
        store = MemoryFlagStore(provider)
        for rollout in config.rollouts:
            store.set_side(rollout.flag_key, Side.STABLE)  # in the new provider only
        return store, provider
    assert store_config.path is not None
    return FlagdFileStore(store_config.path), flagd_file_provider(store_config.path, store_config.poll_ms)


def seed_flag_store(store: FlagStore | None, config: CanaryConfig, undo: list[Callable[[], None]]) -> None:
    """Create each rollout's flag (serving stable) in a flag file that lacks it; ``undo`` removes
    the file, its lock and directories if this attach created them."""
    if not isinstance(store, FlagdFileStore):
        return
    file_store = store
    undo.append(remove_created(files=(file_store.path, Path(str(file_store.path) + ".lock"))))
    document = file_store.read()
    for rollout in config.rollouts:
        if rollout.flag_key not in document["flags"]:
            file_store.set_side(rollout.flag_key, Side.STABLE)

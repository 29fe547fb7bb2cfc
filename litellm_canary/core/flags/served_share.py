"""What a stored flag serves, read back: the canary's share of users (for ``status()``).

A flag written by :func:`~litellm_canary.core.flags.definitions.flag_definition` serves stable (0),
the canary (100) or a sticky ``fractional`` percentage. Anything else (custom targeting, a store
that cannot be read back) is ``None``: unknown, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litellm_canary.core.flags.definitions import FlagStore
from litellm_canary.core.flags.flagd_file import FlagdFileStore
from litellm_canary.core.flags.memory import MemoryFlagStore

__all__ = ["canary_percent_of", "stored_canary_percent"]


def canary_percent_of(definition: Any) -> float | None:
    """The canary share (0..100) a flag definition serves; None when it cannot be told."""
    if definition is None:
        return 0.0  # a missing flag routes to stable
    if not isinstance(definition, Mapping):
        return None
    targeting = definition.get("targeting")
    if not targeting:
        variant = definition.get("defaultVariant", "stable")
        return {"stable": 0.0, "canary": 100.0}.get(variant) if isinstance(variant, str) else None
    fractional = targeting.get("fractional") if isinstance(targeting, Mapping) else None
    if not isinstance(fractional, list) or len(targeting) != 1:
        return None
    try:
        weights = {str(variant): float(weight) for variant, weight in fractional}
    except (TypeError, ValueError):
        return None
    total = sum(weights.values())
    if total <= 0 or set(weights) - {"stable", "canary"}:
        return None
    return round(100 * weights.get("canary", 0.0) / total, 2)


def stored_canary_percent(store: FlagStore | None, flag_key: str) -> float | None:
    """The canary share the store's flag serves now; None for no store, another kind, or an error."""
    try:
        if isinstance(store, FlagdFileStore):
            return canary_percent_of(store.read()["flags"].get(flag_key))
        if isinstance(store, MemoryFlagStore):
            return canary_percent_of(store.provider.flag(flag_key))
    except Exception:  # an unreadable file: the status shows "unknown", the routing is unaffected
        return None
    return None

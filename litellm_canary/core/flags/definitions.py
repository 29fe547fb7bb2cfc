"""Flag documents and the store interface: the flagd flag definition that serves one side or a
sticky percentage (:func:`flag_definition`), and :class:`FlagStore`, what every store writes.

flagd's ``fractional`` operator is sticky per targeting key; the canary is listed first so that a
ramp-up moves no canary user back to stable. The memory store and the flagd file store write the
same definitions, so a percentage means the same thing in both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from litellm_canary.core.decision import Side


def flag_definition(variant: Side | None = None, canary_percent: float | None = None) -> dict[str, Any]:
    """A flagd flag definition that serves one side, or a sticky percentage to the canary."""
    definition: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {"stable": "stable", "canary": "canary"},
        "defaultVariant": "stable",
    }
    if canary_percent is not None:
        if not 0 <= canary_percent <= 100:
            raise ValueError(f"canary percent must be within 0..100, got {canary_percent!r}")
        if canary_percent in (0, 100):
            definition["defaultVariant"] = "canary" if canary_percent == 100 else "stable"
            return definition
        # Weights in hundredths of a percent; canary first so that a ramp-up keeps its users.
        canary_weight = round(canary_percent * 100)
        definition["targeting"] = {
            "fractional": [["canary", canary_weight], ["stable", 10_000 - canary_weight]]
        }
    elif variant is not None:
        definition["defaultVariant"] = variant.value
    return definition


def describe_definition(definition: Mapping[str, Any] | None) -> str:
    """What a flag definition serves, in words: ``stable``, ``canary``, ``canary to 25 % of users
    (sticky)``; the inverse of :func:`flag_definition`, for people reading ``status()``."""
    if definition is None:
        return "no such flag (routes to stable)"
    if definition.get("state") == "DISABLED":
        return "disabled (routes to stable)"
    # flagd's in-process core renames the key when it loads a definition (the memory store's copy)
    default = definition.get("defaultVariant", definition.get("default_variant"))
    targeting = definition.get("targeting")
    if not targeting:
        return str(default)
    split = targeting.get("fractional") if isinstance(targeting, Mapping) else None
    if isinstance(split, list) and all(isinstance(w, list) and len(w) == 2 for w in split):
        weights = {str(variant): weight for variant, weight in split}
        total = sum(w for w in weights.values() if isinstance(w, int | float))
        canary = weights.get("canary")
        if set(weights) == {"canary", "stable"} and isinstance(canary, int | float) and total > 0:
            return f"canary to {round(100 * canary / total, 2):g} % of users (sticky)"
    return f"custom targeting (default {default})"


class FlagStore(Protocol):
    """Writes canary flags where every process reading them will see the change."""

    def set_side(self, flag_key: str, side: Side) -> None: ...

    def set_canary_percent(self, flag_key: str, percent: float) -> None: ...

    def describe(self) -> str: ...

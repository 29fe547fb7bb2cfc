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


def canary_share(definition: Any) -> float | None:
    """The share of users (0..100) a flag definition sends to the canary: 0 for no flag, a disabled
    flag or stable, 100 for the canary, the percentage of a sticky ``fractional`` split of the two
    sides; ``None`` for anything else (custom targeting, other variants): unknown, never guessed."""
    if definition is None:
        return 0.0
    if not isinstance(definition, Mapping):
        return None
    if definition.get("state") == "DISABLED":
        return 0.0
    targeting = definition.get("targeting")
    if not targeting:
        return {"stable": 0.0, "canary": 100.0}.get(str(_default_variant(definition)))
    split = targeting.get("fractional") if isinstance(targeting, Mapping) and len(targeting) == 1 else None
    if not isinstance(split, list) or not all(isinstance(w, list | tuple) and len(w) == 2 for w in split):
        return None
    weights = {str(variant): weight for variant, weight in split}
    if set(weights) - {"stable", "canary"} or not all(
        isinstance(w, int | float) and not isinstance(w, bool) for w in weights.values()
    ):
        return None
    total = sum(weights.values())
    return round(100 * weights.get("canary", 0) / total, 2) if total > 0 else None


def describe_definition(definition: Mapping[str, Any] | None) -> str:
    """What a flag definition serves, in words: ``stable``, ``canary``, ``canary to 25 % of users
    (sticky)``; the inverse of :func:`flag_definition`, for people reading ``status()``."""
    if definition is None:
        return "no such flag (routes to stable)"
    if definition.get("state") == "DISABLED":
        return "disabled (routes to stable)"
    default = _default_variant(definition)
    if not definition.get("targeting"):
        return str(default)
    share = canary_share(definition)
    if share is None:
        return f"custom targeting (default {default})"
    return f"canary to {share:g} % of users (sticky)"


def _default_variant(definition: Mapping[str, Any]) -> Any:
    # flagd's in-process core renames the key when it loads a definition (the memory store's copy)
    return definition.get("defaultVariant", definition.get("default_variant", "stable"))


class FlagStore(Protocol):
    """Writes canary flags where every process reading them will see the change."""

    def set_side(self, flag_key: str, side: Side) -> None: ...

    def set_canary_percent(self, flag_key: str, percent: float) -> None: ...

    def describe(self) -> str: ...

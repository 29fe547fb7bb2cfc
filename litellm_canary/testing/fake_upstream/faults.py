"""What a fake upstream does wrong: the immutable :class:`Faults` and their JSON form.

This module owns the fault fields, their validation, and the conversion to and from the JSON of
``/_control/faults``. Applying them to a request or a stream is the job of the ``upstream`` and
``streaming`` modules of this package.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Faults", "MidStreamMode"]

MidStreamMode = Literal["disconnect", "error_event"]


@dataclass(frozen=True, slots=True)
class Faults:
    """What a :class:`FakeUpstream` does wrong. Immutable; swap it with ``FakeUpstream.set_faults``.

    All delays are in seconds and are interrupted by ``FakeUpstream.stop()``.
    """

    latency_s: float = 0.0
    """Delay before the response status/headers (applies to errors too)."""
    first_token_delay_s: float = 0.0
    """Streams only: delay between the headers and the first chunk."""
    chunk_delay_s: float = 0.0
    """Streams only: delay before every chunk after the first."""
    error_rate: float = 0.0
    """Fraction (0..1) of requests answered with ``error_status``; reproducible for a given ``seed``."""
    error_status: int = 500
    """HTTP status of injected errors (400..599; typically 500, 429 or 503)."""
    fail_nth: AbstractSet[int] = frozenset()
    """1-based request numbers that fail with ``error_status`` (numbering spans all ``/v1`` requests)."""
    fail_mid_stream_after: int | None = None
    """Streams only: cut the stream after this many content chunks (0 = before any text)."""
    mid_stream_mode: MidStreamMode = "disconnect"
    """How a stream is cut: drop the connection mid-body, or send an SSE error event and end."""
    bad_answer: str | None = None
    """If set, this text replaces the configured answer (simulates a wrong answer)."""
    hang: bool = False
    """Never answer: the request waits until the client disconnects or the upstream stops."""
    hold_stream: bool = False
    """Streams only: pause after ``hold_after_chunks`` content chunks until ``release_streams()``."""
    hold_after_chunks: int = 1
    """Where a held stream pauses, counted in content chunks already sent."""
    seed: int = 0
    """Seed of the random generator behind ``error_rate``; reseeded whenever faults are set."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fail_nth", frozenset(self.fail_nth))
        for name in ("latency_s", "first_token_delay_s", "chunk_delay_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be within 0..1, got {self.error_rate!r}")
        if not 400 <= self.error_status <= 599:
            raise ValueError(
                f"error_status must be an HTTP error status (400..599), got {self.error_status!r}"
            )
        if any(n < 1 for n in self.fail_nth):
            raise ValueError(f"fail_nth holds 1-based request numbers, got {sorted(self.fail_nth)!r}")
        if self.fail_mid_stream_after is not None and self.fail_mid_stream_after < 0:
            raise ValueError(f"fail_mid_stream_after must be >= 0, got {self.fail_mid_stream_after!r}")
        if self.mid_stream_mode not in ("disconnect", "error_event"):
            raise ValueError(
                f"mid_stream_mode must be 'disconnect' or 'error_event', got {self.mid_stream_mode!r}"
            )
        if self.hold_after_chunks < 0:
            raise ValueError(f"hold_after_chunks must be >= 0, got {self.hold_after_chunks!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (the format of ``/_control/faults``)."""
        data = dataclasses.asdict(self)
        data["fail_nth"] = sorted(self.fail_nth)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: Faults | None = None) -> Faults:
        """Build faults from JSON-like data; fields missing from ``data`` come from ``base`` (or defaults).

        Raises ``ValueError`` for unknown fields or values of the wrong type.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        changes: dict[str, Any] = {}
        for key, value in data.items():
            changes[key] = _coerce_field(key, value)
        return dataclasses.replace(base if base is not None else cls(), **changes)


def _coerce_field(key: str, value: Any) -> Any:
    def fail(kind: str) -> ValueError:
        return ValueError(f"fault field {key!r} must be {kind}, got {value!r}")

    if key in ("latency_s", "first_token_delay_s", "chunk_delay_s", "error_rate"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail("a number")
        return float(value)
    if key in ("error_status", "hold_after_chunks", "seed"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if key == "fail_mid_stream_after":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise fail("an integer or null")
        return value
    if key == "fail_nth":
        if not isinstance(value, list | tuple | set | frozenset) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in value
        ):
            raise fail("a list of integers")
        return frozenset(value)
    if key in ("hang", "hold_stream"):
        if not isinstance(value, bool):
            raise fail("a boolean")
        return value
    if key == "bad_answer":
        if value is not None and not isinstance(value, str):
            raise fail("a string or null")
        return value
    if key == "mid_stream_mode":
        if value not in ("disconnect", "error_event"):
            raise fail("'disconnect' or 'error_event'")
        return value
    raise fail("a known field")  # pragma: no cover - from_dict rejects unknown keys first


# ---------------------------------------------------------------------------------------------- stats

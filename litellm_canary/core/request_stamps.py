"""Per-request canary state in the request's own LiteLLM metadata: the stamps.

A stamp per model group and logical request (keyed by ``litellm_trace_id``, which every retry and
fallback hop of a request shares) holds the decided side and the open attempt, so retries keep their
side, a metadata dict that the caller reuses for several requests (even concurrently) keeps them
apart, and nothing is left behind when the request ends. ``STAMP_KEY`` names our entry in the
metadata; ``FORCED_SIDE_KEY`` is the proxy's forced-side marker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litellm_canary.core.controller import RolloutRuntime
from litellm_canary.core.decision import Side
from litellm_canary.core.pins import Attempt

STAMP_KEY = "litellm_canary"
FORCED_SIDE_KEY = "litellm_canary_forced_side"  # a Side instance, never JSON: set by litellm_canary.proxy
MAX_STAMPS = 32  # per metadata dict; only a dict reused across many requests gets near it
METADATA_KEYS = ("metadata", "litellm_metadata")


@dataclass(slots=True)
class Stamp:
    """The side and the open attempt of one logical request in one managed group.

    ``deployment_id`` is empty until LiteLLM dispatches the attempt (the filter only chooses the
    side; LiteLLM chooses the deployment)."""

    side: Side
    deployment_id: str
    attempt: Attempt
    session_id: str | None = None

    @property
    def dispatched(self) -> bool:
        return bool(self.deployment_id)


@dataclass(slots=True)
class PendingStamp:
    """Where one decision's stamp goes."""

    stamps: dict[str, Stamp]
    key: str
    session_id: str | None


def deployment_id_of(deployment: object) -> str | None:
    info = deployment.get("model_info") if isinstance(deployment, Mapping) else None
    found = info.get("id") if isinstance(info, Mapping) else None
    return found if isinstance(found, str) else None


def stamps_in(*containers: Mapping[str, object] | None) -> dict[str, Stamp] | None:
    """Our per-group stamps, wherever LiteLLM carried the request's metadata to."""
    for container in containers:
        for key in METADATA_KEYS:
            bucket = container.get(key) if container else None
            if isinstance(bucket, dict) and isinstance(bucket.get(STAMP_KEY), dict):
                stamps: dict[str, Stamp] = bucket[STAMP_KEY]
                return stamps
    return None


def stamp_key(model_group: str, trace_id: object) -> str:
    return f"{model_group}|{trace_id}" if isinstance(trace_id, str) and trace_id else model_group


def prune(stamps: dict[str, Stamp]) -> None:
    """Drop stamps of finished attempts from a metadata dict that the caller keeps reusing."""
    if len(stamps) >= MAX_STAMPS:
        for key in [key for key, stamp in stamps.items() if stamp.attempt.outcome is not None]:
            stamps.pop(key, None)


def session_id_of(request: Mapping[str, Any]) -> str | None:
    for key in METADATA_KEYS:
        bucket = request.get(key)
        if isinstance(bucket, dict) and isinstance(bucket.get("session_id"), str) and bucket["session_id"]:
            return str(bucket["session_id"])
    session = request.get("litellm_session_id")
    return session if isinstance(session, str) and session else None


def repin_conversation(runtime: RolloutRuntime, stamp: Stamp, deployment_id: str) -> None:
    """Record the deployment LiteLLM chose for the stamp's conversation, if it is still pinned to
    the stamp's side (a rollback may have released it meanwhile: never re-create a released pin)."""
    if stamp.session_id is None:
        return
    current = runtime.pins.conversation(stamp.session_id)
    if current is not None and current.side is stamp.side and current.deployment_id != deployment_id:
        runtime.pins.pin_conversation(stamp.session_id, stamp.side, deployment_id)

"""Direct calls to one deployment, outside the canary's routing: the library's own probes.

Keep-warm pings, golden-set replays and post-rollback checks need to reach **one named
deployment**, not whichever one the canary would pick. ``router.acompletion(model=<id>)`` cannot
do that here (the canary routes a managed deployment id through the group's decision), so
:func:`call_deployment` reads the deployment's ``litellm_params`` from ``router.registry()`` and
calls ``litellm.acompletion`` with them, as LiteLLM 1.110's Router does for a chat attempt.

A probe is never user traffic: it carries no canary stamp, so ``CanaryCallbacks`` ignore it and it
reaches no outcome window, trigger, metric or feedback map; it is also marked in its LiteLLM
metadata (``litellm_canary_probe``) so that any other callback can tell it apart (:func:`is_probe`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import litellm

__all__ = ["PROBE_MARKER", "ProbeResult", "UnknownDeployment", "call_deployment", "is_probe"]

PROBE_MARKER = "litellm_canary_probe"
"""Key set in a probe call's LiteLLM ``metadata``; its value names the probe's purpose."""

# Router-only keys of a deployment's litellm_params that mean nothing to a single direct call.
_ROUTER_ONLY = frozenset({"rpm", "tpm", "weight", "order", "max_parallel_requests", "tags"})


class UnknownDeployment(KeyError):
    """The router has no deployment with this ``model_info.id``."""

    def __str__(self) -> str:
        return f"no deployment with model_info.id {self.args[0]!r} in the router"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """How one probe call ended."""

    deployment_id: str
    ok: bool
    latency_s: float
    response: Any = None  # the LiteLLM ModelResponse when ok
    error: str | None = None  # "<ExceptionType>: message" when not ok

    @property
    def text(self) -> str | None:
        """The first choice's message content, if the call succeeded and had one."""
        try:
            content = self.response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            return None
        return content if isinstance(content, str) else None


def deployment_params(router: Any, deployment_id: str) -> dict[str, Any]:
    """A copy of the deployment's ``litellm_params`` (raises :class:`UnknownDeployment`)."""
    found = router.registry().deployment_dict(deployment_id)
    if not isinstance(found, Mapping) or not isinstance(found.get("litellm_params"), Mapping):
        raise UnknownDeployment(deployment_id)
    return {k: v for k, v in found["litellm_params"].items() if k not in _ROUTER_ONLY}


async def call_deployment(
    router: Any,
    deployment_id: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int | None = None,
    timeout_s: float = 30.0,
    purpose: str = "probe",
) -> ProbeResult:
    """Send one chat request straight to the deployment ``deployment_id`` of ``router``.

    Never raises for a failed call (the result says ``ok=False`` with the error text); raises
    :class:`UnknownDeployment` when the router has no such deployment and ``ValueError`` for a
    non-positive ``timeout_s``. No retries: a probe reports what one attempt did.
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
    params = deployment_params(router, deployment_id)
    metadata = dict(params.pop("metadata", None) or {})
    metadata[PROBE_MARKER] = purpose
    params.pop("max_retries", None)
    params.pop("timeout", None)
    params.pop("stream_timeout", None)
    kwargs: dict[str, Any] = {
        **params,
        "messages": messages,
        "metadata": metadata,
        "timeout": timeout_s,
        "max_retries": 0,
        "num_retries": 0,
    }
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    started = time.perf_counter()
    try:
        # LiteLLM's own timeout covers the HTTP call; the outer one also bounds everything around it.
        async with asyncio.timeout(timeout_s + 1.0):
            response = await litellm.acompletion(**kwargs)
    except Exception as error:  # a probe reports failures, it does not raise them
        return ProbeResult(
            deployment_id, False, time.perf_counter() - started, error=f"{type(error).__name__}: {error}"
        )
    return ProbeResult(deployment_id, True, time.perf_counter() - started, response=response)


def is_probe(kwargs: Mapping[str, Any]) -> bool:
    """Whether a LiteLLM callback's ``kwargs`` belong to a probe call (not user traffic)."""
    for container in (kwargs.get("litellm_params"), kwargs):
        if not isinstance(container, Mapping):
            continue
        for key in ("metadata", "litellm_metadata"):
            bucket = container.get(key)
            if isinstance(bucket, Mapping) and bucket.get(PROBE_MARKER):
                return True
    slo = kwargs.get("standard_logging_object")
    if isinstance(slo, Mapping):
        metadata = slo.get("metadata")
        if isinstance(metadata, Mapping) and metadata.get(PROBE_MARKER):
            return True
    return False

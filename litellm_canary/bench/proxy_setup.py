"""``bench proxy``'s settings and its processes: one fake upstream, and the same ``litellm --config``
proxy twice (``baseline`` without the canary callback, ``canary`` with it), plus, for the workers
phase, the canary proxy with ``--num_workers 2``.

Both proxies get the same ``model_list`` (group ``chat``: ``chat-stable`` and ``chat-canary`` on the
same fake upstream, which answers at once, so the proxy's own work is what is measured) and the
same router settings; the canary proxy adds only ``litellm_settings.callbacks`` and its
``litellm_canary`` section (a flagd flag file serving the canary to ``canary_percent`` % of users).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from litellm_canary.bench.proxy_load import PAIRED, SCHEDULES
from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagdFileStore
from litellm_canary.testing.litellm_proxy import LiteLLMProxy, UpstreamProcess

__all__ = [
    "CANARY_ID",
    "FLAG_KEY",
    "FLAG_POLL_MS",
    "GROUP",
    "STABLE_ID",
    "Rig",
    "Settings",
    "default_settings",
    "proxy_config",
    "rig",
    "workers_proxy",
]

GROUP = "chat"
FLAG_KEY = "chat"
STABLE_ID = "chat-stable"
CANARY_ID = "chat-canary"
FLAG_POLL_MS = 50  # the workers phase's flag file poll (the overhead phase uses the config default)
WORKERS_VIA = ("file", "redis")


@dataclass(frozen=True)
class Settings:
    clients: int  # concurrent streaming clients
    requests: int  # streamed requests per configuration per round
    rounds: int  # rounds; each runs both configurations as the schedule says
    warmup: int  # untimed requests per configuration first
    canary_percent: float  # users the flag sends to the canary in the canary proxy
    flips: int  # rollback / re-arm cycles of the --num_workers 2 phase (0: skip that phase)
    workers: int  # workers of the propagation phase's proxy
    schedule: str = PAIRED  # "paired" (both proxies at once per round) or "alternating"
    workers_via: str = "file"  # how a rollback reaches the other workers: the flag "file" or "redis"


def default_settings(quick: bool = False, **overrides: Any) -> Settings:
    """The full run's settings (``quick``: a short smoke run), with ``overrides`` applied.

    Raises ``ValueError`` naming the setting that is out of range."""
    settings = Settings(
        clients=8 if quick else 32,
        requests=40 if quick else 400,
        rounds=2 if quick else 8,
        warmup=10 if quick else 100,
        canary_percent=10.0,
        flips=1 if quick else 10,
        workers=2,
    )
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    for name in ("clients", "requests", "rounds"):
        if getattr(settings, name) < 1:
            raise ValueError(f"{name} must be positive, got {getattr(settings, name)}")
    for name in ("warmup", "flips"):
        if getattr(settings, name) < 0:
            raise ValueError(f"{name} must not be negative, got {getattr(settings, name)}")
    if not 0 <= settings.canary_percent <= 100:
        raise ValueError(f"canary_percent must be within 0..100, got {settings.canary_percent}")
    if settings.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {settings.schedule!r}")
    if settings.workers_via not in WORKERS_VIA:
        raise ValueError(f"workers_via must be one of {', '.join(WORKERS_VIA)}, got {settings.workers_via!r}")
    if settings.workers < 2:
        raise ValueError(f"workers must be at least 2 (the propagation phase), got {settings.workers}")
    return settings


def proxy_config(
    upstream: UpstreamProcess,
    flags_path: Path | None,
    *,
    poll_ms: int | None = None,
    broadcast_url: str | None = None,
) -> dict[str, Any]:
    """The proxy config; with ``flags_path`` the canary callback is on, reading that flag file
    (polled every ``poll_ms``, else the config default), and with ``broadcast_url`` the rollback
    latch is also broadcast through that Redis."""
    config: dict[str, Any] = {
        "model_list": [upstream.deployment(GROUP, STABLE_ID), upstream.deployment(GROUP, CANARY_ID)],
        "router_settings": {"num_retries": 2},
    }
    if flags_path is not None:
        config["litellm_settings"] = {"callbacks": ["litellm_canary.proxy.canary"]}
        flag_store: dict[str, Any] = {"kind": "flagd_file", "path": str(flags_path)}
        if poll_ms is not None:
            flag_store["poll_ms"] = poll_ms
        config["litellm_canary"] = {
            "flag_store": flag_store,
            "rollouts": [
                {"model_group": GROUP, "stable": [STABLE_ID], "canary": [CANARY_ID], "flag_key": FLAG_KEY}
            ],
        }
        if broadcast_url is not None:
            config["litellm_canary"]["broadcast"] = {"kind": "redis", "url": broadcast_url}
    return config


@dataclass
class Rig:
    directory: Path
    upstream: UpstreamProcess
    baseline: LiteLLMProxy
    canary: LiteLLMProxy
    flags: FlagdFileStore


def _start_all(proxies: list[LiteLLMProxy]) -> None:
    """Start the proxies together (start-up takes many seconds each), then wait for every one."""
    for proxy in proxies:
        proxy.start()
    for proxy in proxies:
        proxy.wait_ready()


@contextlib.contextmanager
def rig(settings: Settings) -> Iterator[Rig]:
    """The fake upstream and both proxies, running; stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="litellm-canary-bench-proxy-") as name:
        directory = Path(name)
        upstream = UpstreamProcess("upstream").wait_ready()
        flags = FlagdFileStore(directory / "flags.json")
        flags.set_canary_percent(FLAG_KEY, settings.canary_percent)
        baseline = LiteLLMProxy(directory, proxy_config(upstream, None), "baseline")
        canary = LiteLLMProxy(directory, proxy_config(upstream, flags.path), "canary")
        try:
            _start_all([baseline, canary])
            yield Rig(directory, upstream, baseline, canary, flags)
        finally:
            baseline.stop()
            canary.stop()
            upstream.stop()


@contextlib.contextmanager
def workers_proxy(
    the_rig: Rig, workers: int, broadcast_url: str | None = None
) -> Iterator[tuple[LiteLLMProxy, FlagdFileStore]]:
    """The canary proxy with ``--num_workers``, on its own flag file (serving the canary to all,
    polled every ``FLAG_POLL_MS``), broadcasting through ``broadcast_url`` if given."""
    flags = FlagdFileStore(the_rig.directory / "workers-flags.json")
    flags.set_side(FLAG_KEY, Side.CANARY)
    config = proxy_config(the_rig.upstream, flags.path, poll_ms=FLAG_POLL_MS, broadcast_url=broadcast_url)
    with LiteLLMProxy(the_rig.directory, config, "workers", num_workers=workers) as proxy:
        _start_all([proxy])
        yield proxy, flags

"""``bench switch --url``'s view of the running gateways: where their admin API and chat endpoint
live, the group's state on each, and the admin calls (status, rollback, webhook, re-arm, percent).

A ``--url`` is a server's root (``http://127.0.0.1:4000``): chat completions at ``<url>/v1``, the
admin API at ``<url><admin path>/canary/...``. The admin path is ``--admin-path`` when given, else
found by asking ``<url>/canary/status`` (``litellm-canary serve``) and then
``<url>/litellm-canary/canary/status`` (a LiteLLM proxy's default ``proxy.mount_path``).

Errors: :class:`BenchInputError` for what the user can fix (exit status 2: bad URL, refused token,
unmanaged group, ...), :class:`BenchFailed` when a gateway cannot be reached or fails (status 1).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

__all__ = [
    "AdminClient",
    "BenchFailed",
    "BenchInputError",
    "GroupState",
    "Target",
    "alertmanager_payload",
    "check_url",
]

DEFAULT_MOUNT_PATHS = ("", "/litellm-canary")


class BenchInputError(ValueError):
    """Bad input the user can fix (exit status 2)."""


class BenchFailed(RuntimeError):
    """A gateway could not be reached or failed (exit status 1)."""


@dataclass(frozen=True)
class Target:
    """One gateway or proxy: its root URL, admin base URL and OpenAI base URL."""

    url: str
    admin: str

    @property
    def chat_base(self) -> str:
        return f"{self.url}/v1"


@dataclass(frozen=True)
class GroupState:
    """The group as found on one gateway: latch state, the flag's canary share, each side's ids."""

    rolled_back: bool
    canary_percent: float | None
    stable_ids: frozenset[str]
    canary_ids: frozenset[str]
    flag_store: str | None

    @classmethod
    def from_status(cls, target: Target, group: str, status: Any) -> GroupState:
        groups = status.get("groups") if isinstance(status, dict) else None
        if not isinstance(groups, dict):
            raise BenchFailed(f"{target.admin}/canary/status: the answer has no 'groups'")
        entry = groups.get(group)
        if not isinstance(entry, dict):
            raise BenchInputError(
                f"--group {group!r} is not managed by the canary at {target.url} "
                f"(managed groups: {sorted(groups)})"
            )
        stable, canary = entry.get("stable"), entry.get("canary")
        if not isinstance(stable, list) or not isinstance(canary, list):
            raise BenchInputError(
                f"{target.url}: its status names no deployment ids for {group!r}; "
                "bench switch --url needs a gateway running this version of litellm-canary"
            )
        percent = entry.get("canary_percent")
        store = (entry.get("flag_store") or {}).get("kind")
        return cls(
            rolled_back=entry.get("state") == "rolled_back",
            canary_percent=float(percent) if isinstance(percent, int | float) else None,
            stable_ids=frozenset(map(str, stable)),
            canary_ids=frozenset(map(str, canary)),
            flag_store=store if isinstance(store, str) else None,
        )

    def side_of(self, model_id: str | None) -> str:
        """``stable``, ``canary`` or ``unknown`` for a served deployment id."""
        if model_id in self.stable_ids:
            return "stable"
        if model_id in self.canary_ids:
            return "canary"
        return "unknown"


def check_url(url: str) -> str:
    """The ``--url`` without its trailing slash; refuses anything but http(s)://host[:port][/path]."""
    base = url.rstrip("/")
    parsed = httpx.URL(base) if base.startswith(("http://", "https://")) else None
    if parsed is None or not parsed.host or parsed.query or parsed.fragment:
        raise BenchInputError(f"--url must be an http(s) URL of a gateway's root, got {url!r}")
    return base


def alertmanager_payload(group: str, index: int) -> dict[str, Any]:
    """A firing Alertmanager webhook (payload version 4) asking to roll ``group`` back; a fresh
    fingerprint each time, so the webhook's redelivery guard never takes it for a repeat."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    labels = {"alertname": "LitellmCanaryBenchSwitch", "action": "rollback", "model_group": group}
    return {
        "version": "4",
        "groupKey": f"bench-switch-{group}",
        "status": "firing",
        "receiver": "litellm-canary-bench",
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"litellm-canary bench switch, flip {index}"},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": uuid.uuid4().hex,
            }
        ],
    }


class AdminClient:
    """Authenticated admin calls to the gateways (blocking; the run calls them on a thread)."""

    def __init__(self, token: str, timeout_s: float) -> None:
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._client = httpx.Client(timeout=timeout_s, headers=self._headers)

    def close(self) -> None:
        self._client.close()

    def find(self, url: str, admin_path: str | None) -> Target:
        """The target at ``url``: its admin path (``admin_path`` or found, see the module doc)."""
        paths = (admin_path.rstrip("/"),) if admin_path is not None else DEFAULT_MOUNT_PATHS
        refused = False
        for path in paths:
            try:
                response = self._client.get(f"{url}{path}/canary/status")
            except httpx.HTTPError as error:
                raise BenchFailed(f"cannot reach {url}: {error}") from None
            if response.status_code == 200:
                return Target(url, f"{url}{path}")
            refused |= response.status_code == 401
        if refused:
            raise BenchInputError(f"{url}: the gateway refused the admin token (401); check --token-env")
        tried = ", ".join(f"{url}{p}/canary/status" for p in paths)
        raise BenchInputError(
            f"{url}: no litellm-canary admin API found (tried {tried}); "
            "behind a LiteLLM proxy pass --admin-path <proxy.mount_path>"
        )

    def call(self, target: Target, route: str, body: dict[str, Any] | None = None) -> tuple[Any, float]:
        """GET (no ``body``) or POST ``<admin><route>``: its JSON answer and the call's time in ms."""
        url = f"{target.admin}{route}"
        started = time.perf_counter()
        try:
            response = self._client.get(url) if body is None else self._client.post(url, json=body)
        except httpx.HTTPError as error:
            raise BenchFailed(f"cannot reach {url}: {error}") from None
        elapsed_ms = (time.perf_counter() - started) * 1e3
        try:
            answer = response.json()
        except ValueError:
            answer = {"error": response.text[:200]}
        if response.status_code == 401:
            raise BenchInputError(f"{url}: the gateway refused the admin token (401)")
        if response.status_code >= 400:
            detail = answer.get("error", answer) if isinstance(answer, dict) else answer
            error_type = BenchInputError if response.status_code in (400, 404, 409) else BenchFailed
            raise error_type(f"{url}: {detail} ({response.status_code})")
        return answer, elapsed_ms

    def state(self, target: Target, group: str) -> GroupState:
        answer, _ = self.call(target, "/canary/status")
        return GroupState.from_status(target, group, answer)

    def rollback(self, target: Target, group: str, reason: str) -> tuple[Any, float]:
        return self.call(target, "/canary/rollback", {"model_group": group, "reason": reason})

    def webhook(self, target: Target, group: str, index: int) -> tuple[Any, float]:
        return self.call(target, "/alertmanager", alertmanager_payload(group, index))

    def rearm(self, target: Target, group: str) -> tuple[Any, float]:
        return self.call(target, "/canary/rearm", {"model_group": group})

    def set_percent(self, target: Target, group: str, percent: float) -> tuple[Any, float]:
        return self.call(target, "/canary/percent", {"model_group": group, "percent": percent})

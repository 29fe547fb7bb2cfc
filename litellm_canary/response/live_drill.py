"""The live drill: rehearse a rollback against a running gateway (``litellm-canary drill --live``).

A synthetic Alertmanager alert (labels ``action=rollback``, ``drill=true``) at the gateway's webhook,
then decision → restored, drain and verification read from its ``/canary/status``; the incident the
gateway wrote gets the drill's measurements; ``rearm`` re-arms afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litellm_canary.response.drill_report import DrillError, finish_report, record_drill

__all__ = ["run_live_drill"]


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _alert(group: str) -> dict[str, Any]:
    fingerprint = secrets.token_hex(8)
    return {
        "version": "4",
        "groupKey": f"litellm-canary-drill:{fingerprint}",
        "status": "firing",
        "receiver": "litellm-canary",
        "groupLabels": {"alertname": "LitellmCanaryDrill"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "LitellmCanaryDrill",
                    "action": "rollback",
                    "model_group": group,
                    "drill": "true",
                    "severity": "critical",
                },
                "annotations": {"summary": "synthetic rollback drill (litellm-canary drill --live)"},
                "startsAt": _iso_now(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "litellm-canary-drill",
                "fingerprint": fingerprint,
            }
        ],
    }


def run_live_drill(
    config_path: str | os.PathLike[str],
    *,
    url: str | None = None,
    group: str | None = None,
    rearm: bool = False,
    token: str | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Drill the running gateway of ``config_path`` (see the module docstring)."""
    import httpx

    from litellm_canary.integrations.gateway import load_gateway_config
    from litellm_canary.integrations.mount_hint import mount_path_hint

    config = load_gateway_config(Path(config_path))
    incidents = config.canary.incidents
    if incidents is None:
        raise DrillError(
            f"{config_path}: --live needs 'incidents: {{dir: ...}}' in the litellm_canary section"
        )
    groups = [r.model_group for r in config.canary.rollouts]
    if group is None:
        if len(groups) != 1:
            raise DrillError(f"the config has several rollouts {groups}: choose one with --group")
        group = groups[0]
    elif group not in groups:
        raise DrillError(f"--group {group!r} is not a rollout of the config (rollouts: {groups})")
    token = token or os.environ.get(config.gateway.token_env)
    if not token:
        raise DrillError(f"no bearer token: set ${config.gateway.token_env} (gateway.token_env)")
    base = (url or config.admin_url).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise DrillError(f"--url must be an http(s) URL, got {base!r}")
    within = config.canary.rollout(group).verify_within_s
    deadline = time.monotonic() + (timeout_s if timeout_s is not None else within + 60.0)
    headers = {"Authorization": f"Bearer {token}"}

    with httpx.Client(base_url=base, headers=headers, timeout=10.0) as client:

        def status() -> dict[str, Any]:
            response = client.get("/canary/status")
            if response.status_code != 200:
                hint = ""
                if response.status_code == 404:
                    with contextlib.suppress(ValueError):
                        hint = mount_path_hint(f"{base}/canary/status", response.json())
                raise DrillError(
                    f"GET {base}/canary/status: HTTP {response.status_code}: {response.text[:200]}{hint}"
                )
            data: dict[str, Any] = response.json()["groups"][group]
            return data

        try:
            before = status()
        except httpx.HTTPError as error:
            raise DrillError(f"cannot reach the gateway at {base}: {error}") from None
        if before["state"] == "rolled_back":
            raise DrillError(f"{group!r} is already rolled back: re-arm it before drilling")
        sent = time.monotonic()
        response = client.post("/alertmanager", json=_alert(group))
        answered_ms = round((time.monotonic() - sent) * 1e3, 3)
        if response.status_code != 200:
            raise DrillError(f"POST {base}/alertmanager: HTTP {response.status_code}: {response.text[:200]}")
        result = response.json()["alerts"][0]
        if result.get("result") != "rolled_back":
            raise DrillError(f"the gateway did not roll back: {result.get('result')}")
        record = result["rollback"]
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = status()["last_rollback"] or {}
            if last.get("complete"):
                break
            time.sleep(0.2)  # polling a remote HTTP status: there is no event to wait on
        attempts = last.get("canary_attempts") or record.get("canary_attempts") or {}
        report: dict[str, Any] = {
            "mode": "live",
            "gateway": base,
            "model_group": group,
            "fault": None,
            "trigger": "alert",
            "detect_s": None,
            "alert_to_response_ms": answered_ms,
            "decision_to_restored_ms": round(float(record["latch_us"]) / 1e3, 3),
            "canary_requests_after_flip": last.get("canary_decisions_after_flip"),
            "inflight_at_flip": attempts.get("at_flip"),
            "inflight_completed": attempts.get("completed"),
            "inflight_failed": None
            if not attempts
            else int(attempts.get("failed", 0))
            + int(attempts.get("expired", 0))
            + int(attempts.get("pending", 0)),
            "drained": last.get("drained"),
            "drained_after_ms": last.get("drained_after_ms"),
            "verification": last.get("verification"),
            "complete": bool(last.get("complete")),
        }
        finish_report(report)
        report["incident_path"] = record_drill(incidents.dir, last.get("incident_id"), report)
        report["rearmed"] = False
        if rearm:
            response = client.post("/canary/rearm", json={"model_group": group})
            report["rearmed"] = response.status_code == 200 and bool(response.json().get("rearmed"))
    return report

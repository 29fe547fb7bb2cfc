"""The drill report and its standards: what a drill measures, when it passes, and its incident.

Both drills (:mod:`litellm_canary.response.drill`, offline; :mod:`litellm_canary.response.live_drill`,
against a running gateway) return one JSON-serialisable report; :func:`finish_report` judges it
against :data:`STANDARDS`, :func:`record_drill` tags its incident ``drill`` with the measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from litellm_canary.response.incidents import IncidentStore

__all__ = ["MEASUREMENTS", "RESTORED_LIMIT_MS", "STANDARDS", "DrillError", "finish_report", "record_drill"]

#: The drill standards: a drill passes when every one holds.
STANDARDS = {
    "decision_to_restored_ms": "decision -> restored under 60 s",
    "canary_requests_after_flip": "no request decided or served canary after the flip",
    "inflight_failed": "no canary stream in flight at the flip lost",
    "verification": "post-rollback verification verdict 'recovered'",
}
RESTORED_LIMIT_MS = 60_000.0
#: The figures every drill report carries (beside ``verification`` and ``incident_path``).
MEASUREMENTS = (
    "fault",
    "trigger",
    "detect_s",
    "decision_to_restored_ms",
    "canary_requests_after_flip",
    "inflight_at_flip",
    "inflight_completed",
    "inflight_failed",
)


class DrillError(Exception):
    """A drill that could not run (bad arguments, an unreachable gateway); exit status 2."""


def _standards(report: Mapping[str, Any]) -> dict[str, bool]:
    restored = report.get("decision_to_restored_ms")
    verification = report.get("verification") or {}
    return {
        "decision_to_restored_ms": restored is not None and restored < RESTORED_LIMIT_MS,
        "canary_requests_after_flip": report.get("canary_requests_after_flip") == 0,
        "inflight_failed": report.get("inflight_failed") == 0,
        "verification": verification.get("verdict") == "recovered",
    }


def finish_report(report: dict[str, Any]) -> dict[str, Any]:
    """Judge ``report`` against :data:`STANDARDS`: adds ``standards``, ``missed`` and ``passed``."""
    standards = _standards(report)
    report["standards"] = standards
    report["missed"] = [STANDARDS[name] for name, ok in standards.items() if not ok]
    report["passed"] = all(standards.values())
    return report


def record_drill(directory: Path, incident_id: str | None, report: dict[str, Any]) -> str | None:
    """Tag the incident ``drill`` and store the drill's measurements in it; returns its JSON path."""
    if incident_id is None:
        return None
    store = IncidentStore(directory)
    drill = {key: report.get(key) for key in (*MEASUREMENTS, "passed", "mode")}
    drill["verdict"] = (report.get("verification") or {}).get("verdict")
    drill["missed"] = report.get("missed")
    store.update(incident_id, kind="drill", drill=drill)
    return str(directory / f"{incident_id}.json")

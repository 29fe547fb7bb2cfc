"""The last drill of a model group, read from the incidents directory: when, its result, overdue or not.

What ``Canary.status()`` shows under ``drill``; cached per directory until a write changes it.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

from litellm_canary.response.incidents import Incident, IncidentStore

__all__ = ["drill_status"]


_drill_cache: dict[tuple[str, str], tuple[int, Incident | None]] = {}
_drill_cache_lock = threading.Lock()


def _latest_drill(store: IncidentStore, model_group: str) -> Incident | None:
    directory = store.directory
    try:
        stamp = os.stat(directory).st_mtime_ns  # every write renames a file into it
    except OSError:
        return None
    key = (str(directory), model_group)
    with _drill_cache_lock:
        cached = _drill_cache.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    latest = None
    for summary in store.list():  # newest first
        if summary.kind == "drill" and summary.model_group == model_group:
            try:
                latest = store.get(summary.id)
            except (OSError, ValueError, KeyError):
                continue
            break
    with _drill_cache_lock:
        _drill_cache[key] = (stamp, latest)
    return latest


def drill_status(
    store: IncidentStore, model_group: str, *, overdue_days: float, now: float | None = None
) -> dict[str, Any]:
    """When ``model_group``'s last drill ran (its latest ``drill`` incident), its result, and
    ``drill_overdue`` when there was none within ``overdue_days``."""
    incident = _latest_drill(store, model_group)
    now = time.time() if now is None else now
    if incident is None:
        return {"last_at": None, "incident_id": None, "result": None, "drill_overdue": True}
    decided = datetime.fromisoformat(incident.decided_at)
    if decided.tzinfo is None:
        decided = decided.replace(tzinfo=UTC)
    age_days = (now - decided.timestamp()) / 86400
    drill = incident.drill or {}
    if "passed" in drill:
        result = "passed" if drill["passed"] else "failed"
    elif incident.verification is not None:
        result = str(incident.verification.get("verdict"))
    else:
        result = "pending"
    return {
        "last_at": incident.decided_at,
        "incident_id": incident.id,
        "result": result,
        "age_days": round(age_days, 3),
        "drill_overdue": age_days > overdue_days,
    }

"""What happens after a rollback, in the background: drain, verification, the incident, escalation.

* :mod:`.post_rollback` — :class:`PostRollback`, the follow-up of every rollback;
* :mod:`.worker` — :class:`FollowupWorker`, the one thread and event loop it runs on;
* :mod:`.series` — :class:`SeriesBuffer`, the per-second data of the incident's timeline picture;
* :mod:`.verdict` — the verdict logged (CRITICAL when service was not restored) and as the incident holds it;
* :mod:`.incident_retry` — incidents the directory did not take, retried on the worker;
* :mod:`.install` — :func:`install_followup`, the wiring the composition root calls.
"""

from __future__ import annotations

from litellm_canary.response.followup.install import golden_checks, install_followup
from litellm_canary.response.followup.post_rollback import (
    FOLLOW_UP_KEYS,
    FollowupSignals,
    GoldenCheck,
    PostRollback,
)
from litellm_canary.response.followup.series import SeriesBuffer
from litellm_canary.response.followup.verdict import NOT_RESTORED_NOTE, incident_verification
from litellm_canary.response.followup.worker import FollowupWorker

__all__ = [
    "FOLLOW_UP_KEYS",
    "NOT_RESTORED_NOTE",
    "FollowupSignals",
    "FollowupWorker",
    "GoldenCheck",
    "PostRollback",
    "SeriesBuffer",
    "golden_checks",
    "incident_verification",
    "install_followup",
]

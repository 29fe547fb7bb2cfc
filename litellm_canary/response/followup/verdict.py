"""A verification verdict, told: the log record (CRITICAL for ``not_recovered``) and the incident's view.

``not_recovered`` escalates: a CRITICAL log record, and an incident that says the rollback did not
restore service (:data:`NOT_RESTORED_NOTE`), so the cause is probably not the canary.
"""

from __future__ import annotations

import logging
from typing import Any

from litellm_canary.response.verification import VerificationResult

logger = logging.getLogger("litellm_canary.followup")

__all__ = ["NOT_RESTORED_NOTE", "incident_verification", "log_verdict"]

NOT_RESTORED_NOTE = (
    "The rollback did not restore service: stable is still unhealthy after the canary was taken out of "
    "traffic, so the cause is probably not the canary."
)


def log_verdict(group: str, result: VerificationResult) -> None:
    """Log the verdict of ``group``'s rollback: CRITICAL when service was not restored."""
    if result.verdict == "not_recovered":
        logger.critical(
            "rollback of %r did not restore service within %gs: %s failed — the cause is probably "
            "not the canary",
            group,
            result.within_s,
            ", ".join(result.failed),
            extra={"litellm_canary_verification": result.as_dict()},
        )
    elif result.verdict == "insufficient_data":
        logger.warning(
            "rollback of %r: verification had insufficient data within %gs (%s)",
            group,
            result.within_s,
            "; ".join(c.summary for c in result.checks.values() if c.state == "insufficient_data"),
        )
    else:
        logger.info("rollback of %r verified: service restored after %.3fs", group, result.elapsed_s)


def incident_verification(
    result: VerificationResult, user_feedback: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The verification as an incident holds it (flat: one level of nesting per check), with the user
    feedback per side beside it."""
    data: dict[str, Any] = {
        "restored_service": result.restored,
        "failed_checks": result.failed,
        "elapsed_s": round(result.elapsed_s, 3),
        "within_s": result.within_s,
        "baseline": result.baseline.as_dict(),
    }
    for name, check in result.checks.items():
        data[name] = check.as_dict()
    if user_feedback is not None:  # flat, like the checks: {"canary_count": 5, "canary_mean": 0.5, ...}
        data["user_feedback"] = {
            f"{side}_{key}": value for side, tally in user_feedback.items() for key, value in tally.items()
        }
    if result.verdict == "not_recovered":
        data["note"] = NOT_RESTORED_NOTE
    return data

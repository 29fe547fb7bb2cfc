"""The auto-rollback trigger rules of a rollout and their thresholds (:class:`Triggers`)."""

from __future__ import annotations

from pydantic import Field, field_validator

from litellm_canary.core.config.strict_model import StrictModel


class _Rule(StrictModel):
    enabled: bool = True


class ErrorRateTrigger(_Rule):
    """Canary error rate above ``ratio`` x baseline (and baseline + ``min_delta``) for ``window_s``."""

    ratio: float = Field(2.0, gt=1.0)
    window_s: float = Field(120.0, gt=0)
    min_requests: int = Field(20, ge=1)
    min_delta: float = Field(0.01, ge=0, le=1)
    baseline_error_rate: float | None = Field(
        None, ge=0, le=1, description="pre-canary baseline, used while stable has too few requests"
    )
    alpha: float | None = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="significance guard: the excess over the baseline must also pass a one-sided z-test "
        "at this level (null disables the guard)",
    )


class TtftP99Trigger(_Rule):
    """Canary p99 time to first token above ``ratio`` x ``slo_ms`` for ``window_s``."""

    slo_ms: float = Field(2000.0, gt=0)
    ratio: float = Field(2.0, gt=0)
    window_s: float = Field(300.0, gt=0)
    min_requests: int = Field(20, ge=1)


class FastFailTrigger(_Rule):
    """A plainly broken canary: error rate at or above ``error_rate`` over a short ``window_s``."""

    error_rate: float = Field(0.5, gt=0, le=1)
    window_s: float = Field(10.0, gt=0)
    min_requests: int = Field(10, ge=1)


class EvalScoreTrigger(_Rule):
    """Canary mean eval score below stable's by more than ``max_drop`` (relative)."""

    max_drop: float = Field(0.05, gt=0, lt=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    min_samples: int = Field(30, ge=1)


class CooldownTrigger(_Rule):
    """Every canary deployment is in LiteLLM cooldown: LiteLLM itself has stopped trusting it."""


def _rule_or_disabled(value: object) -> object:
    # `"fast_fail": false` (or null) disables a rule; `true` enables it with its defaults.
    if value is False or value is None:
        return {"enabled": False}
    if value is True:
        return {}
    return value


class Triggers(StrictModel):
    error_rate: ErrorRateTrigger = ErrorRateTrigger()
    ttft_p99: TtftP99Trigger = TtftP99Trigger()
    fast_fail: FastFailTrigger = FastFailTrigger()
    eval_score: EvalScoreTrigger = EvalScoreTrigger()
    cooldown: CooldownTrigger = CooldownTrigger()

    _disable = field_validator(
        "error_rate", "ttft_p99", "fast_fail", "eval_score", "cooldown", mode="before"
    )(_rule_or_disabled)

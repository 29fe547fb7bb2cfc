"""One rollout's model (:class:`Rollout`): its deployments, flag, evals, keep-warm and flag-read budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from litellm_canary.core.config.strict_model import StrictModel
from litellm_canary.core.config.triggers import Triggers


class KeepWarmConfig(StrictModel):
    """Probe each stable deployment while stable gets too little traffic
    (:mod:`litellm_canary.release.keepwarm`)."""

    floor: float = Field(0.05, ge=0, le=1, description="probe while stable's share of traffic is below this")
    share_window_s: float = Field(300.0, gt=0, description="the recent window the share is measured over")
    interval_s: float = Field(30.0, gt=0, description="time between probe rounds")
    prompt: str = Field("ping", min_length=1, max_length=10_000)
    timeout_s: float = Field(10.0, gt=0, le=600)


EvalSource = Literal["traffic", "golden", "feedback"]


class BuiltinScorer(StrictModel):
    """A built-in scorer by name (see :mod:`litellm_canary.detection.evals`) with its arguments."""

    builtin: Literal["exact", "regex", "json_schema", "reference_similarity"]
    pattern: str | None = None
    reference: str | None = None
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    case_sensitive: bool = True

    @model_validator(mode="after")
    def _has_its_argument(self) -> BuiltinScorer:
        needs = {"exact": "reference", "regex": "pattern", "json_schema": "json_schema"}
        needs["reference_similarity"] = "reference"
        field = needs[self.builtin]
        if getattr(self, field) is None:
            raise ValueError(f"builtin scorer {self.builtin!r} needs {field.replace('json_', '')!r}")
        return self


class EvalsConfig(StrictModel):
    """Eval scores of a rollout (:mod:`litellm_canary.detection.evals.sampling`,
    :mod:`litellm_canary.detection.golden`)."""

    scorer: str | BuiltinScorer | None = Field(
        None, description="dotted path 'package.module:attr', or {'builtin': name, ...args}"
    )
    sample_rate: float = Field(0.1, ge=0, le=1, description="fraction of real responses scored")
    queue_size: int = Field(1000, ge=1, description="samples waiting to be scored; more are dropped")
    score_timeout_s: float = Field(30.0, gt=0)
    golden_set: Path | None = None
    golden_interval_s: float = Field(300.0, gt=0)
    golden_max_tokens: int | None = Field(None, ge=1)
    golden_timeout_s: float = Field(30.0, gt=0)
    feedback: bool = Field(False, description="user feedback feeds the eval_score rule as its own series")

    @property
    def sources(self) -> tuple[EvalSource, ...]:
        """The score series the eval_score rule tests (their mean e-value, at ``alpha``)."""
        configured: tuple[tuple[EvalSource, bool], ...] = (
            ("traffic", self.scorer is not None),
            ("golden", self.golden_set is not None),
            ("feedback", self.feedback),
        )
        return tuple(name for name, on in configured if on)

    @field_validator("golden_set")
    @classmethod
    def _golden_set_beside_the_config(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is not None and "\x00" in str(path):
            raise ValueError(f"{str(path)!r} contains a NUL byte")
        # A relative path in a config file means "next to this file", not "next to wherever the
        # process was started"; parse_config(..., base_dir=) names the file's folder.
        base = (info.context or {}).get("base_dir")
        if path is None or base is None or path.is_absolute():
            return path
        return Path(base) / path

    @model_validator(mode="after")
    def _scores_something(self) -> EvalsConfig:
        if self.scorer is None and self.golden_set is None and not self.feedback:
            raise ValueError("evals needs a 'scorer' (sampled traffic), a 'golden_set' or 'feedback: true'")
        return self


class FlagReadConfig(StrictModel):
    """The time budget of one flag read, and the breaker that stops reading a slow provider
    (:class:`litellm_canary.core.flags.FlagReader`)."""

    budget_ms: float = Field(50.0, gt=0, le=10_000, description="a flag read slower than this is over budget")
    trip_after: int = Field(
        3, ge=1, description="over-budget reads among the last `of_last` that open the breaker"
    )
    of_last: int = Field(10, ge=1, le=1000)
    backoff_s: float = Field(
        10.0, gt=0, le=3600, description="first back-off: stable without reading, then a probe"
    )
    max_backoff_s: float = Field(
        300.0, gt=0, le=86_400, description="the back-off doubles per failed probe up to this"
    )

    @model_validator(mode="after")
    def _consistent(self) -> FlagReadConfig:
        if self.trip_after > self.of_last:
            raise ValueError(
                f"flag_read.trip_after ({self.trip_after}) exceeds flag_read.of_last ({self.of_last})"
            )
        if self.max_backoff_s < self.backoff_s:
            raise ValueError(
                f"flag_read.max_backoff_s ({self.max_backoff_s}) is below "
                f"flag_read.backoff_s ({self.backoff_s})"
            )
        return self


class Rollout(StrictModel):
    """One model group whose deployments are split into a stable and a canary side."""

    model_group: str = Field(min_length=1)
    stable: tuple[str, ...] = Field(min_length=1)
    canary: tuple[str, ...] = Field(min_length=1)
    flag_key: str = Field(min_length=1)
    conversation_drain_s: float = Field(0.0, ge=0)
    triggers: Triggers = Triggers()
    evals: EvalsConfig | None = None
    verify_within_s: float = Field(
        180.0, gt=0, description="post-rollback verification reports its verdict within this long"
    )
    window_h: float = Field(48.0, gt=0, description="length of the canary window, hours (fractions allowed)")
    keep_warm: KeepWarmConfig | None = None
    flag_read: FlagReadConfig = FlagReadConfig()

    @field_validator("stable", "canary")
    @classmethod
    def _ids_are_unique(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        for deployment_id in ids:
            if not deployment_id:
                raise ValueError("deployment ids must be non-empty strings")
        if len(set(ids)) != len(ids):
            raise ValueError(f"a deployment id is listed twice: {list(ids)}")
        return ids

    @model_validator(mode="after")
    def _sides_are_disjoint(self) -> Rollout:
        both = sorted(set(self.stable) & set(self.canary))
        if both:
            raise ValueError(f"deployment id(s) {both} are on both the stable and the canary side")
        return self

    def side_of(self, deployment_id: str) -> Literal["stable", "canary"] | None:
        if deployment_id in self.stable:
            return "stable"
        if deployment_id in self.canary:
            return "canary"
        return None

"""The typed canary configuration: what a rollout is, its triggers and its flag store.

Everything that comes from outside (a YAML mapping, a dict, a JSON file) is validated here, and every
error names the field and the offending value. Checks that need the Router (unknown model group,
deployment ids) live in :func:`validate_against_deployments`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A canary configuration that cannot be used; the message names the field and the value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Rule(_Strict):
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


class Triggers(_Strict):
    error_rate: ErrorRateTrigger = ErrorRateTrigger()
    ttft_p99: TtftP99Trigger = TtftP99Trigger()
    fast_fail: FastFailTrigger = FastFailTrigger()
    eval_score: EvalScoreTrigger = EvalScoreTrigger()
    cooldown: CooldownTrigger = CooldownTrigger()

    _disable = field_validator(
        "error_rate", "ttft_p99", "fast_fail", "eval_score", "cooldown", mode="before"
    )(_rule_or_disabled)


class Rollout(_Strict):
    """One model group whose deployments are split into a stable and a canary side."""

    model_group: str = Field(min_length=1)
    stable: tuple[str, ...] = Field(min_length=1)
    canary: tuple[str, ...] = Field(min_length=1)
    flag_key: str = Field(min_length=1)
    conversation_drain_s: float = Field(0.0, ge=0)
    triggers: Triggers = Triggers()

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


class FlagStoreConfig(_Strict):
    """Where a rollback or a percentage change writes the flag so that other processes follow."""

    kind: Literal["memory", "flagd_file"]
    path: Path | None = None
    poll_ms: int = Field(100, ge=10, description="flagd file-mode poll interval of the installed provider")

    @model_validator(mode="after")
    def _path_matches_kind(self) -> FlagStoreConfig:
        if self.kind == "flagd_file":
            if self.path is None:
                raise ValueError("flag_store.kind 'flagd_file' needs a 'path'")
            if self.path.suffix != ".json":
                raise ValueError(
                    f"flag_store.path must end in .json (flagd parses only .json), got {self.path}"
                )
        elif self.path is not None:
            raise ValueError("flag_store.kind 'memory' takes no 'path'")
        return self


class CanaryConfig(_Strict):
    rollouts: tuple[Rollout, ...] = Field(min_length=1)
    openfeature_domain: str | None = None
    flag_store: FlagStoreConfig | None = None
    max_attempt_s: float = Field(
        900.0, gt=0, description="an attempt with no outcome after this long is counted as ended"
    )
    evaluation_step_s: float | None = Field(
        None, gt=0, description="how often trigger rules are evaluated (default: 1/20 of the shortest window)"
    )
    conversation_pin_ttl_s: float = Field(3600.0, gt=0)
    max_conversation_pins: int = Field(100_000, ge=1)

    @model_validator(mode="after")
    def _groups_and_flags_are_unique(self) -> CanaryConfig:
        groups = [r.model_group for r in self.rollouts]
        for group in groups:
            if groups.count(group) > 1:
                raise ValueError(f"model_group {group!r} has more than one rollout")
        flags = [r.flag_key for r in self.rollouts]
        for flag in flags:
            if flags.count(flag) > 1:
                raise ValueError(f"flag_key {flag!r} is used by more than one rollout")
        return self

    def rollout(self, model_group: str) -> Rollout:
        for rollout in self.rollouts:
            if rollout.model_group == model_group:
                return rollout
        known = [r.model_group for r in self.rollouts]
        raise KeyError(f"no rollout for model group {model_group!r} (configured: {known})")


def _describe(error: ValidationError) -> str:
    lines = []
    items = error.errors()
    deeper = {item["loc"][:n] for item in items for n in range(len(item["loc"]))}
    for item in items:
        if item["type"] == "too_short" and item["loc"] in deeper:
            continue  # pydantic repeats a failing item as "too short" on its container
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
        value = item.get("input")
        shown = "" if isinstance(value, Mapping) else f" (got {value!r})"
        lines.append(f"{where or 'config'}: {item['msg']}{shown}")
    return "invalid canary config: " + "; ".join(lines)


def parse_config(raw: CanaryConfig | Mapping[str, Any]) -> CanaryConfig:
    """Validate a config mapping (as loaded from YAML or JSON) into a :class:`CanaryConfig`."""
    if isinstance(raw, CanaryConfig):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"canary config must be a mapping, got {type(raw).__name__}")
    try:
        return CanaryConfig.model_validate(dict(raw))
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


def load_config_file(path: str | Path) -> CanaryConfig:
    """Read a canary config from a YAML or JSON file. A LiteLLM proxy ``config.yaml`` whose
    ``litellm_canary`` key holds the canary config is accepted too."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file {file}: {error.strerror}") from None
    try:
        if file.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as error:  # yaml and json raise different types; both mean "not parseable"
        kind = "JSON" if file.suffix == ".json" else "YAML"
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"config file {file} is not valid {kind}: {first_line}") from None
    if isinstance(data, Mapping) and "litellm_canary" in data:
        data = data["litellm_canary"]
    return parse_config(data)


def validate_against_deployments(config: CanaryConfig, groups: Mapping[str, Sequence[str]]) -> None:
    """Check every rollout against the Router's model groups (``{model_name: [deployment ids]}``)."""
    for index, rollout in enumerate(config.rollouts):
        where = f"rollouts[{index}]"
        ids = groups.get(rollout.model_group)
        if ids is None:
            raise ConfigError(
                f"{where}.model_group: unknown model group {rollout.model_group!r} "
                f"(the Router has: {sorted(groups)})"
            )
        for side in ("stable", "canary"):
            for deployment_id in getattr(rollout, side):
                if deployment_id not in ids:
                    raise ConfigError(
                        f"{where}.{side}: deployment id {deployment_id!r} is not in model group "
                        f"{rollout.model_group!r} (its ids: {sorted(ids)})"
                    )

"""The whole canary configuration (:class:`CanaryConfig`) and its process-wide sections: flag store,
broadcast, incidents, feedback and proxy settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from litellm_canary.core.config.paths import beside_the_config, usable_path
from litellm_canary.core.config.rollout import Rollout
from litellm_canary.core.config.strict_model import StrictModel


class FeedbackConfig(StrictModel):
    """User feedback on served responses (:mod:`litellm_canary.detection.feedback`)."""

    max_responses: int = Field(100_000, ge=1, description="recent response ids remembered for feedback")
    ttl_s: float = Field(24 * 3600.0, gt=0, description="how long a response can still receive feedback")


class FlagStoreConfig(StrictModel):
    """Where a rollback or a percentage change writes the flag so that other processes follow."""

    kind: Literal["memory", "flagd_file"]
    path: Path | None = None
    poll_ms: int = Field(100, ge=10, description="flagd file-mode poll interval of the installed provider")

    @field_validator("path")
    @classmethod
    def _path_beside_the_config(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return beside_the_config(path, info)

    @model_validator(mode="after")
    def _path_matches_kind(self) -> FlagStoreConfig:
        if self.kind == "flagd_file":
            if self.path is None:
                raise ValueError("flag_store.kind 'flagd_file' needs a 'path'")
            if self.path.suffix != ".json":
                raise ValueError(
                    f"flag_store.path must end in .json (flagd parses only .json), got {self.path}"
                )
            try:
                usable_path(self.path, directory=False)
            except ValueError as error:
                raise ValueError(f"flag_store.path: {error}") from None
        elif self.path is not None:
            raise ValueError("flag_store.kind 'memory' takes no 'path'")
        return self


class BroadcastConfig(StrictModel):
    """A Redis pub/sub broadcast of the rollback latch between replicas
    (:mod:`litellm_canary.integrations.broadcast`)."""

    kind: Literal["redis"]
    url: str = "redis://127.0.0.1:6379/0"
    channel: str = Field("litellm-canary", min_length=1, pattern=r"^[^\s*?\[\]]+$")
    replica_id: str | None = Field(None, min_length=1, description="default: host:pid:random")
    connect_timeout_s: float = Field(1.0, gt=0, le=60)
    reconnect_max_s: float = Field(5.0, gt=0, le=300, description="longest wait between reconnects")

    @field_validator("url")
    @classmethod
    def _is_redis_url(cls, url: str) -> str:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return url


class IncidentsConfig(StrictModel):
    """Where every rollback's incident record goes (:mod:`litellm_canary.response.incidents`)."""

    dir: Path
    drill_overdue_days: float = Field(90.0, gt=0, description="status() flags drill_overdue after this")

    @field_validator("dir", mode="before")
    @classmethod
    def _not_blank(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must be a directory path, got a blank string")
        return value

    @field_validator("dir")
    @classmethod
    def _not_a_file(cls, path: Path, info: ValidationInfo) -> Path:
        return usable_path(beside_the_config(path, info) or path, directory=True)


class ProxySettings(StrictModel):
    """Settings read only inside the LiteLLM proxy (:mod:`litellm_canary.proxy`)."""

    mount_path: str = Field("/litellm-canary", pattern=r"^/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$")
    side_header: str = Field("x-litellm-canary-side", pattern=r"^[A-Za-z0-9-]+$")
    side_override_keys: tuple[str, ...] = Field(
        (),
        description="API keys allowed to force a side: key aliases, sha256 hex digests of keys, or "
        "'litellm_proxy_master_key' for the proxy's master key",
    )
    metrics_auth: bool = Field(False, description="require the admin bearer token for the metrics path")


class CanaryConfig(StrictModel):
    rollouts: tuple[Rollout, ...] = Field(min_length=1)
    incidents: IncidentsConfig | None = None
    openfeature_domain: str | None = None
    flag_store: FlagStoreConfig | None = None
    broadcast: BroadcastConfig | None = None
    max_attempt_s: float = Field(
        900.0, gt=0, description="an attempt with no outcome after this long is counted as ended"
    )
    evaluation_step_s: float | None = Field(
        None, gt=0, description="how often trigger rules are evaluated (default: 1/20 of the shortest window)"
    )
    conversation_pin_ttl_s: float = Field(3600.0, gt=0)
    max_conversation_pins: int = Field(100_000, ge=1)
    feedback: FeedbackConfig = FeedbackConfig()
    proxy: ProxySettings = ProxySettings()

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

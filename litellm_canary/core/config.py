"""The typed canary configuration: what a rollout is, its triggers and its flag store.

Everything that comes from outside (a YAML mapping, a dict, a JSON file) is validated here, and every
error names the field and the offending value. Checks that need the Router (unknown model group,
deployment ids) live in :func:`validate_against_deployments`.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)


class ConfigError(ValueError):
    """A canary configuration that cannot be used; the message names the field and the value."""


def usable_path(path: Path, *, directory: bool) -> Path:
    """``path`` if the library can create or use it as a directory (or a file); else ``ValueError``
    saying why. Checked before ``attach`` touches anything, so a bad path fails as a config error:
    a NUL byte, an existing ancestor that is not a directory, a file where a directory is wanted (or
    the reverse), an unwritable parent."""
    if "\x00" in str(path):
        raise ValueError(f"{str(path)!r} contains a NUL byte")
    existing: Path | None = None
    for candidate in (*reversed(path.absolute().parents), path.absolute()):
        try:
            mode = candidate.stat().st_mode
        except FileNotFoundError:
            break
        except OSError as error:
            raise ValueError(f"cannot use {path}: {candidate}: {error.strerror}") from None
        if candidate != path.absolute() and not stat.S_ISDIR(mode):
            raise ValueError(f"cannot use {path}: {candidate} is not a directory")
        existing = candidate
    if existing == path.absolute():
        is_dir = stat.S_ISDIR(path.absolute().stat().st_mode)
        if directory and not is_dir:
            raise ValueError(f"{path} exists and is not a directory")
        if not directory and is_dir:
            raise ValueError(f"{path} is a directory, not a file")
        parent = path.absolute() if directory else path.absolute().parent
    else:
        parent = existing if existing is not None else Path(path.absolute().anchor)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot use {path}: {parent} is not writable")
    return path


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


class KeepWarmConfig(_Strict):
    """Probe each stable deployment while stable gets too little traffic (:mod:`litellm_canary.keepwarm`)."""

    floor: float = Field(0.05, ge=0, le=1, description="probe while stable's share of traffic is below this")
    share_window_s: float = Field(300.0, gt=0, description="the recent window the share is measured over")
    interval_s: float = Field(30.0, gt=0, description="time between probe rounds")
    prompt: str = Field("ping", min_length=1, max_length=10_000)
    timeout_s: float = Field(10.0, gt=0, le=600)


class FeedbackConfig(_Strict):
    """User feedback on served responses (:mod:`litellm_canary.feedback`)."""

    max_responses: int = Field(100_000, ge=1, description="recent response ids remembered for feedback")
    ttl_s: float = Field(24 * 3600.0, gt=0, description="how long a response can still receive feedback")


EvalSource = Literal["traffic", "golden", "feedback"]


class BuiltinScorer(_Strict):
    """A built-in scorer by name (see :mod:`litellm_canary.evals`) with its arguments."""

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


class EvalsConfig(_Strict):
    """Eval scores of a rollout (:mod:`litellm_canary.eval_sampling`, :mod:`litellm_canary.golden`)."""

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


class FlagReadConfig(_Strict):
    """The time budget of one flag read, and the breaker that stops reading a slow provider
    (:class:`litellm_canary.flags.FlagReader`)."""

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


class Rollout(_Strict):
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
            try:
                usable_path(self.path, directory=False)
            except ValueError as error:
                raise ValueError(f"flag_store.path: {error}") from None
        elif self.path is not None:
            raise ValueError("flag_store.kind 'memory' takes no 'path'")
        return self


class BroadcastConfig(_Strict):
    """A Redis pub/sub broadcast of the rollback latch between replicas (:mod:`litellm_canary.broadcast`)."""

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


class IncidentsConfig(_Strict):
    """Where every rollback's incident record goes (:mod:`litellm_canary.incidents`)."""

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
    def _not_a_file(cls, path: Path) -> Path:
        return usable_path(path, directory=True)


class ProxySettings(_Strict):
    """Settings read only inside the LiteLLM proxy (:mod:`litellm_canary.proxy`)."""

    mount_path: str = Field("/litellm-canary", pattern=r"^/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$")
    side_header: str = Field("x-litellm-canary-side", pattern=r"^[A-Za-z0-9-]+$")
    side_override_keys: tuple[str, ...] = Field(
        (),
        description="API keys allowed to force a side: key aliases, sha256 hex digests of keys, or "
        "'litellm_proxy_master_key' for the proxy's master key",
    )
    metrics_auth: bool = Field(False, description="require the admin bearer token for the metrics path")


class CanaryConfig(_Strict):
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


def parse_config(
    raw: CanaryConfig | Mapping[str, Any], *, base_dir: str | Path | None = None
) -> CanaryConfig:
    """Validate a config mapping (as loaded from YAML or JSON) into a :class:`CanaryConfig`.

    ``base_dir`` is the folder of the file the mapping came from: relative ``evals.golden_set`` paths
    resolve against it (without it, against the working directory).
    """
    if isinstance(raw, CanaryConfig):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"canary config must be a mapping, got {type(raw).__name__}")
    try:
        return CanaryConfig.model_validate(dict(raw), context={"base_dir": base_dir})
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


def load_config_file(path: str | Path, *, check_model_list: bool = False) -> CanaryConfig:
    """Read a canary config from a YAML or JSON file. A LiteLLM proxy ``config.yaml`` whose
    ``litellm_canary`` key holds the canary config is accepted too; with ``check_model_list`` its
    rollouts are checked against that file's ``model_list`` (see :func:`checkable_model_list`)."""
    file = Path(path)
    data = _read_document(file)
    if isinstance(data, Mapping) and "litellm_canary" in data:
        config = parse_config(data["litellm_canary"], base_dir=file.parent)
        model_list = checkable_model_list(data) if check_model_list else None
        if model_list is not None:
            validate_against_model_list(config, model_list)
        return config
    return parse_config(data, base_dir=file.parent)


def _read_document(file: Path) -> Any:
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
    return data


def validate_against_deployments(
    config: CanaryConfig,
    groups: Mapping[str, Sequence[str]],
    *,
    ids_unknown: frozenset[str] = frozenset(),
) -> None:
    """Check every rollout against the Router's model groups (``{model_name: [deployment ids]}``).

    Deployment ids are not checked for the groups in ``ids_unknown`` (a config file's deployment
    without ``model_info.id`` gets its id from LiteLLM when the Router is built)."""
    for index, rollout in enumerate(config.rollouts):
        where = f"rollouts[{index}]"
        ids = groups.get(rollout.model_group)
        if ids is None:
            raise ConfigError(
                f"{where}.model_group: unknown model group {rollout.model_group!r} "
                f"(the model list has: {sorted(groups)})"
            )
        if rollout.model_group in ids_unknown:
            continue
        for side in ("stable", "canary"):
            for deployment_id in getattr(rollout, side):
                if deployment_id not in ids:
                    raise ConfigError(
                        f"{where}.{side}: deployment id {deployment_id!r} is not in model group "
                        f"{rollout.model_group!r} (its ids: {sorted(ids)})"
                    )


def validate_against_model_list(config: CanaryConfig, model_list: object) -> None:
    """Check every rollout against a LiteLLM config file's ``model_list``, with the same errors as
    :func:`validate_against_deployments` at ``attach`` (the proxy at start-up, ``status``/``rules``)."""
    if not isinstance(model_list, Sequence) or isinstance(model_list, str | bytes):
        raise ConfigError(f"model_list: must be a list of deployments, got {type(model_list).__name__}")
    groups: dict[str, list[str]] = {}
    ids_unknown: set[str] = set()
    for entry in model_list:
        name = entry.get("model_name") if isinstance(entry, Mapping) else None
        if not isinstance(name, str):
            continue  # LiteLLM reports its own model_list errors
        ids = groups.setdefault(name, [])
        info = entry.get("model_info")
        deployment_id = info.get("id") if isinstance(info, Mapping) else None
        if isinstance(deployment_id, str) and deployment_id:
            ids.append(deployment_id)
        else:
            ids_unknown.add(name)
    validate_against_deployments(config, groups, ids_unknown=frozenset(ids_unknown))


def checkable_model_list(document: Mapping[str, Any]) -> object | None:
    """A LiteLLM config file's ``model_list`` when it is the whole model list (so the canary config
    can be checked against it before anything starts); None when models may also come from the
    proxy's database (``general_settings.store_model_in_db``) or the file has no ``model_list``."""
    settings = document.get("general_settings")
    if isinstance(settings, Mapping) and settings.get("store_model_in_db") in (True, "true", "True"):
        return None
    model_list = document.get("model_list")
    return model_list if model_list else None

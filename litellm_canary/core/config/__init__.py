"""The typed canary configuration: what a rollout is, its triggers and its flag store.

Everything that comes from outside (a YAML mapping, a dict, a JSON file) is validated here, and every
error names the field and the offending value. Checks that need the Router (unknown model group,
deployment ids) live in :func:`validate_against_deployments`.

Modules: ``errors`` (:class:`ConfigError`), ``strict_model`` (the models' base), ``triggers`` (the
trigger rules), ``rollout`` (one rollout and its per-rollout sections), ``canary_config`` (the whole
config and its process-wide sections), ``paths`` (path checks), ``loading`` (mappings and files),
``model_list`` (checks against the deployments). Import the names from here.
"""

from litellm_canary.core.config.canary_config import (
    BroadcastConfig,
    CanaryConfig,
    FeedbackConfig,
    FlagStoreConfig,
    IncidentsConfig,
    ProxySettings,
)
from litellm_canary.core.config.errors import ConfigError
from litellm_canary.core.config.loading import load_config_file, parse_config
from litellm_canary.core.config.model_list import (
    checkable_model_list,
    validate_against_deployments,
    validate_against_model_list,
)
from litellm_canary.core.config.paths import usable_path
from litellm_canary.core.config.rollout import (
    BuiltinScorer,
    EvalsConfig,
    EvalSource,
    FlagReadConfig,
    KeepWarmConfig,
    Rollout,
)
from litellm_canary.core.config.triggers import (
    CooldownTrigger,
    ErrorRateTrigger,
    EvalScoreTrigger,
    FastFailTrigger,
    Triggers,
    TtftP99Trigger,
)

__all__ = [
    "BroadcastConfig",
    "BuiltinScorer",
    "CanaryConfig",
    "ConfigError",
    "CooldownTrigger",
    "ErrorRateTrigger",
    "EvalScoreTrigger",
    "EvalSource",
    "EvalsConfig",
    "FastFailTrigger",
    "FeedbackConfig",
    "FlagReadConfig",
    "FlagStoreConfig",
    "IncidentsConfig",
    "KeepWarmConfig",
    "ProxySettings",
    "Rollout",
    "Triggers",
    "TtftP99Trigger",
    "checkable_model_list",
    "load_config_file",
    "parse_config",
    "usable_path",
    "validate_against_deployments",
    "validate_against_model_list",
]

"""Checks of a configuration against the deployments it names: the Router's model groups at
``attach``, or a LiteLLM config file's ``model_list`` before anything starts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from litellm_canary.core.config.canary_config import CanaryConfig
from litellm_canary.core.config.errors import ConfigError


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

"""What the proxy does to one request before routing: find the managed group a request names (by
group, deployment id or ``litellm_params.model``), neutralise client overrides of the canary decision
(deployment ids, our metadata keys) and honour the allow-listed ``x-litellm-canary-side`` header."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from litellm.litellm_core_utils.core_helpers import get_metadata_variable_name_from_kwargs

from litellm_canary.canary import Canary
from litellm_canary.core.decision import Side
from litellm_canary.core.request_stamps import FORCED_SIDE_KEY, STAMP_KEY

logger = logging.getLogger("litellm_canary.proxy")

_OUR_KEYS = (STAMP_KEY, FORCED_SIDE_KEY)


class SideOverrideRefused(Exception):
    """A request asked for a side it may not have (``status``: 400 or 403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def key_digest(api_key: str) -> str:
    """The sha256 hex digest of an API key, as listed in ``proxy.side_override_keys``."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def caller_ids(user_api_key_dict: Any) -> set[str]:
    """Everything that names the caller's key: its alias and the sha256 digest of the key."""
    ids: set[str] = set()
    alias = getattr(user_api_key_dict, "key_alias", None)
    if isinstance(alias, str) and alias:
        ids.add(alias)
    for attribute in ("api_key", "token"):
        value = getattr(user_api_key_dict, attribute, None)
        if isinstance(value, str) and value:
            # The proxy hands hook authors the key's sha256 digest; a raw key ("sk-...") is hashed here.
            ids.add(key_digest(value) if value.startswith("sk-") else value)
    return ids


def _headers(data: Mapping[str, Any]) -> Mapping[str, Any]:
    request = data.get("proxy_server_request")
    headers = request.get("headers") if isinstance(request, Mapping) else None
    return headers if isinstance(headers, Mapping) else {}


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == name:
            return str(value)
    return None


def managed_group_of(model: str, canary: Canary, router: Any) -> str | None:
    """The managed group a client's ``model`` reaches: the group itself, one of its deployment ids,
    or the ``litellm_params.model`` of one of its deployments (the proxy routes those directly)."""
    if model in canary.runtimes:
        return model
    for group, runtime in canary.runtimes.items():
        if model in runtime.config.stable or model in runtime.config.canary:
            return group
    registry = router.registry()
    for group in canary.runtimes:  # only the managed groups' deployments: an unmanaged request pays
        for deployment in registry.deployments(group) or ():  # nothing per deployment of the proxy
            params = deployment.get("litellm_params") or {}
            if params.get("model") == model:
                return group
    return None


def neutralise(
    data: dict[str, Any], canary: Canary, router: Any, callers: Callable[[], set[str]]
) -> tuple[str | None, Side | None]:
    """Make a proxy request body unable to bypass the canary decision; apply an allowed side override.

    ``callers()`` names the caller's key (:func:`caller_ids`); asked only when a side header came.
    Returns ``(managed group or None, forced side or None)``. Raises :class:`SideOverrideRefused`
    (before changing anything) for a bad or unauthorised side header."""
    settings = canary.config.proxy
    model = data.get("model")
    group = managed_group_of(model, canary, router) if isinstance(model, str) else None
    wanted = _header(_headers(data), settings.side_header.lower())
    forced: Side | None = None
    if wanted is not None and group is not None:
        value = wanted.strip().lower()
        if value not in (Side.STABLE.value, Side.CANARY.value):
            raise SideOverrideRefused(
                400, f"{settings.side_header}: must be 'stable' or 'canary', got {wanted!r}"
            )
        if not callers() & set(settings.side_override_keys):
            raise SideOverrideRefused(
                403,
                f"{settings.side_header}: this API key is not allowed to force a side "
                "(see proxy.side_override_keys)",
            )
        forced = Side(value)
    # Nothing was refused: apply.
    for bucket_name in ("metadata", "litellm_metadata"):
        bucket = data.get(bucket_name)
        if isinstance(bucket, dict):
            for key in _OUR_KEYS:
                bucket.pop(key, None)
    if group is None:
        return None, None
    if model != group:
        logger.info("request for %r rewritten to managed model group %r", model, group)
        data["model"] = group
    if forced is not None:
        bucket_name = get_metadata_variable_name_from_kwargs(data)
        bucket = data.get(bucket_name)
        if not isinstance(bucket, dict):
            bucket = data[bucket_name] = {}
        bucket[FORCED_SIDE_KEY] = forced
    return group, forced

"""The LiteLLM proxy entry point: one line in the proxy's ``config.yaml`` enables the canary.

    litellm_settings:
      callbacks: ["litellm_canary.proxy.canary"]
    litellm_canary:            # the canary config (or a file named by $LITELLM_CANARY_CONFIG)
      rollouts: [...]

This module owns what only exists inside the proxy: finding the config, attaching to the proxy's
Router in each worker, neutralising client overrides of the canary decision, the allow-listed
side-override header, and mounting the admin/webhook and metrics apps on the proxy's own app.
Routing itself stays in :mod:`litellm_canary.core.deployment_filter`.

* **Attach, per worker.** The proxy imports this module while it loads its config, inside each
  worker's lifespan (so after any fork), but before it builds ``litellm.proxy.proxy_server.llm_router``.
  :meth:`ProxyCanary.ensure_attached` therefore attaches on the first request (the proxy's
  ``async_pre_call_hook`` runs before routing) or the first admin call, and re-attaches if the proxy
  ever replaces its Router (identity check, a few nanoseconds per request).
* **HTTP.** Everything is mounted on the proxy's FastAPI app under ``proxy.mount_path``
  (default ``/litellm-canary``), ahead of the proxy's own routes: ``/metrics`` there is the canary's
  private Prometheus registry (no clash with LiteLLM's ``/metrics``), every other path is
  :func:`litellm_canary.webhook.create_app` behind ``Authorization: Bearer $LITELLM_CANARY_TOKEN``.
  Mounting (rather than a side port) keeps one port per worker, works with ``--num_workers`` and
  needs no extra port management.
* **Overrides.** For a managed group, ``model=<deployment id>`` and ``model=<litellm_params.model>``
  are rewritten to the group (so the canary decides), client-sent ``tags`` cannot move a request
  (tags never move a request to the canary) and client copies
  of our metadata keys are dropped. ``x-litellm-canary-side: stable|canary`` forces a side only for
  keys in ``proxy.side_override_keys``: virtual keys by alias or by the sha256 hex digest of the key,
  the master key as ``litellm_proxy_master_key`` (the name the proxy gives it, never the key itself);
  anybody else gets 403, a bad value 400.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from litellm_canary.canary import Canary
from litellm_canary.core.config import (
    CanaryConfig,
    ConfigError,
    checkable_model_list,
    load_config_file,
    validate_against_model_list,
)
from litellm_canary.core.config.parse_errors import describe_parse_error
from litellm_canary.core.flags.log_limit import LogThrottle
from litellm_canary.core.outcome_callbacks import CanaryCallbacks
from litellm_canary.integrations.proxy_requests import (
    SideOverrideRefused,
    caller_ids,
    key_digest,
    managed_group_of,
    neutralise,
)

logger = logging.getLogger("litellm_canary.proxy")

__all__ = [
    "CONFIG_ENV",
    "ProxyCanary",
    "SideOverrideRefused",
    "canary",
    "key_digest",
    "managed_group_of",
    "neutralise",
]

CONFIG_ENV = "LITELLM_CANARY_CONFIG"
"""A canary config file (YAML/JSON) to use instead of the ``litellm_canary`` key of the proxy config."""

ATTACH_RETRY_S = 10.0
"""After a failed attach (a config the Router cannot satisfy), how long requests pass through
untouched before attaching is tried again (models added from the database may fix it)."""

STARTUP_FAILED = 3
"""The exit status of a proxy that refuses to start (the one uvicorn gives a failed start-up)."""


def _proxy_server() -> Any:
    return sys.modules.get("litellm.proxy.proxy_server")


class ProxyCanary(CustomLogger):
    """The callback the proxy loads: attaches the canary to the proxy's Router and guards requests."""

    def __init__(self) -> None:
        super().__init__()
        self.current: Canary | None = None
        self._router: Any = None
        self._config: CanaryConfig | None = None
        self._config_source: str | None = None
        self._endpoints: Any = None  # the Starlette app serving the current canary
        self._lock = threading.Lock()
        self.attach_error: str | None = None
        self._failed_router: Any = None
        self._failed_at = 0.0
        # Metrics that exist even when no canary could be attached (its own registry).
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry(auto_describe=True)
        self._config_error = Gauge(
            "litellm_canary_config_error",
            "1 while the canary config cannot be applied to the proxy's Router (requests routed as "
            "without the canary; see /litellm-canary/canary/status and the log)",
            registry=self.registry,
        )
        self._bypassed = Counter(
            "litellm_canary_config_error_requests",
            "Requests routed as without the canary because its config could not be applied",
            registry=self.registry,
        )
        self._hook_log = LogThrottle(time.monotonic)
        self._hook_errors = Counter(
            "litellm_canary_proxy_hook_errors",
            "Requests whose canary pre-call guard failed; passed on unchanged (the canary's deployment "
            "filter still decides their side)",
            registry=self.registry,
        )

    # -- configuration and attachment ------------------------------------------------------------

    def load_config(self) -> CanaryConfig:
        """The canary config: ``$LITELLM_CANARY_CONFIG``, else the proxy config's ``litellm_canary`` key."""
        if self._config is not None:
            return self._config
        path = os.environ.get(CONFIG_ENV)
        if not path:
            server = _proxy_server()
            path = getattr(server, "user_config_file_path", None) or os.environ.get("CONFIG_FILE_PATH")
            if not path:
                raise ConfigError(
                    f"litellm_canary.proxy: no config: set ${CONFIG_ENV} or start the proxy with --config"
                )
            document = _read_yaml(Path(path))
            if "litellm_canary" not in document:
                raise ConfigError(
                    f"{path}: no 'litellm_canary' key "
                    f"(put the canary config there or name a file in ${CONFIG_ENV})"
                )
        config = load_config_file(path)
        proxy_file = getattr(_proxy_server(), "user_config_file_path", None) or os.environ.get(
            "CONFIG_FILE_PATH"
        )
        if proxy_file:
            # The model list is in the proxy's own file: a rollout naming a group (or deployment id)
            # that is not there can never attach, so say so now, before the proxy serves anything.
            model_list = checkable_model_list(_read_yaml(Path(proxy_file)))
            if model_list is not None:
                try:
                    validate_against_model_list(config, model_list)
                except ConfigError as error:
                    raise ConfigError(f"{proxy_file}: {error}") from None
        self._config = config
        self._config_source = str(path)
        return self._config

    def ensure_attached(self) -> Canary | None:
        """The canary attached to the proxy's current Router (attaching now if needed); None before the
        proxy has a Router."""
        server = _proxy_server()
        router = getattr(server, "llm_router", None) if server is not None else None
        if router is None:
            return None
        current = self.current
        if current is not None and router is self._router:
            return current
        with self._lock:
            if self.current is not None and router is self._router:
                return self.current
            if (
                self.attach_error is not None
                and router is self._failed_router
                and time.monotonic() - self._failed_at < ATTACH_RETRY_S
            ):
                raise ConfigError(self.attach_error)
            config = self.load_config()
            if self.current is not None:
                logger.warning("the proxy replaced its Router; re-attaching the canary")
                self.current.detach()
                self.current = None
            try:
                attached = Canary(router, config)
            except ConfigError as error:
                first = self.attach_error != str(error)
                self.attach_error = str(error)
                self._failed_router, self._failed_at = router, time.monotonic()
                self._config_error.set(1)
                if first:
                    logger.error(
                        "litellm-canary is NOT attached: %s; requests are routed by LiteLLM as without "
                        "the canary (retrying every %g s)",
                        error,
                        ATTACH_RETRY_S,
                    )
                raise
            self._endpoints = _endpoints_app(attached, self.registry)
            self._router = router
            self.current = attached
            if self.attach_error is not None:
                logger.warning("litellm-canary attached after a config error: %s", self.attach_error)
            self.attach_error = None
            self._config_error.set(0)
            logger.info("litellm-canary attached to the proxy Router (config: %s)", self._config_source)
            return attached

    # -- proxy hooks -----------------------------------------------------------------------------

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> dict[str, Any]:
        try:
            attached = self.ensure_attached()
        except ConfigError:
            # Models from the database, or a Router that changed: a canary config error never fails
            # a request. It is shown by the status route, the log and litellm_canary_config_error.
            self._bypassed.inc()
            return data
        if attached is None:
            return data
        try:
            neutralise(data, attached, self._router, lambda: caller_ids(user_api_key_dict))
        except SideOverrideRefused as refused:
            from fastapi import HTTPException

            raise HTTPException(status_code=refused.status, detail=refused.message) from None
        except Exception:  # a fault in the canary's guard never fails a request
            self._hook_errors.inc()
            attached.integration_errors["proxy_pre_call"] += 1
            if self._hook_log.due("pre_call"):
                logger.exception("litellm-canary pre-call guard failed; the request goes on unchanged")
        return data

    # -- outcomes ----------------------------------------------------------------------------------
    # The proxy fans the callbacks of its config out into LiteLLM's event lists at start-up, before
    # the canary exists; the canary's own CustomLogger, added at attach, is not always in the lists
    # a request's logging object was built from. This entry (which is in them) forwards the events;
    # the canary closes each attempt once, so an event that reaches both is not counted twice.

    def _outcomes(self) -> CanaryCallbacks | None:
        current = self.current
        return current._callbacks if current is not None else None

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        target = self._outcomes()
        if target is not None:
            await target.async_log_success_event(kwargs, response_obj, start_time, end_time)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        target = self._outcomes()
        if target is not None:
            await target.async_log_failure_event(kwargs, response_obj, start_time, end_time)

    async def async_post_call_failure_deployment_hook(
        self, request_data: Any, exception: Exception, call_type: Any, fallback_depth: int | None = None
    ) -> None:
        target = self._outcomes()
        if target is not None:
            await target.async_post_call_failure_deployment_hook(
                request_data, exception, call_type, fallback_depth
            )

    # -- HTTP --------------------------------------------------------------------------------------

    async def asgi(self, scope: Any, receive: Any, send: Any) -> None:
        """The app mounted at ``proxy.mount_path`` on the proxy."""
        try:
            attached = self.ensure_attached()
        except ConfigError as error:
            attached, message = None, str(error)
        else:
            message = "the proxy has no Router yet"
        if attached is None or self._endpoints is None:
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
            from starlette.responses import JSONResponse, Response

            if str(scope.get("path", "")).rstrip("/").endswith("/metrics"):
                response: Any = Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
            else:
                body = {"error": message, "state": "config_error" if self.attach_error else "starting"}
                response = JSONResponse(body, status_code=503)
            await response(scope, receive, send)
            return
        await self._endpoints(scope, receive, send)


def _read_yaml(path: Path) -> Mapping[str, Any]:
    import yaml

    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read proxy config {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"proxy config {path} is not valid YAML: {describe_parse_error(error)}") from None
    return document if isinstance(document, Mapping) else {}


def _endpoints_app(attached: Canary, proxy_registry: Any = None) -> Any:
    """Metrics at ``/metrics`` and the authenticated admin/webhook app at every other path."""
    from prometheus_client import CONTENT_TYPE_LATEST
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Mount, Route

    from litellm_canary.integrations.admin_api import create_app
    from litellm_canary.integrations.metrics import CanaryMetrics

    admin = create_app(attached)  # bearer token from $LITELLM_CANARY_TOKEN; raises without one
    metrics = CanaryMetrics(attached)

    async def scrape(request: Request) -> Response:
        from prometheus_client import generate_latest

        body = metrics.exposition()
        if proxy_registry is not None:
            body += generate_latest(proxy_registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    if attached.config.proxy.metrics_auth:
        admin.add_route("/metrics", scrape, methods=["GET"])
        return admin
    return Starlette(routes=[Route("/metrics", scrape, methods=["GET"]), Mount("/", app=admin)])


def _mount_on_proxy(entry: ProxyCanary) -> None:
    """Put the canary's HTTP endpoints in front of the proxy's routes (once per process)."""
    server = _proxy_server()
    app = getattr(server, "app", None)
    if app is None or getattr(app.state, "litellm_canary_mounted", False):
        return
    from litellm_canary.integrations.admin_api import TOKEN_ENV

    config = entry.load_config()  # a broken config stops the proxy at start-up, naming the problem
    if not os.environ.get(TOKEN_ENV):
        raise ConfigError(
            f"set ${TOKEN_ENV} to a random secret, the bearer token of the admin endpoints "
            f"(e.g. export {TOKEN_ENV}=$(openssl rand -hex 16))"
        )
    from starlette.routing import Mount

    app.router.routes.insert(0, Mount(config.proxy.mount_path, app=entry.asgi))
    app.state.litellm_canary_mounted = True


def _refuse_to_start(error: ConfigError) -> None:
    """Stop the proxy process with one line naming the problem. Raised, the error would reach the
    operator as ~400 lines of chained tracebacks from LiteLLM's config loader and uvicorn's lifespan."""
    print(f"litellm-canary: the proxy cannot start: {error}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(STARTUP_FAILED)


canary = ProxyCanary()
"""The instance ``litellm_settings.callbacks`` names: ``litellm_canary.proxy.canary``."""

if _proxy_server() is not None and (
    os.environ.get(CONFIG_ENV) or getattr(_proxy_server(), "user_config_file_path", None)
):  # imported by the proxy while it loads its config
    try:
        _mount_on_proxy(canary)
    except ConfigError as error:
        _refuse_to_start(error)

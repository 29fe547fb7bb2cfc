"""A small standalone gateway: a real ``litellm.Router`` with the canary attached, served over HTTP.

``litellm-canary serve --config FILE`` runs it. The file is LiteLLM-proxy shaped — ``model_list``,
optional ``router_settings`` — plus the canary config under ``litellm_canary`` and optional
``gateway`` settings. One process serves:

* ``POST /v1/chat/completions`` — OpenAI-compatible (JSON or SSE), routed by the Router + canary,
  the served deployment's id in the ``x-litellm-model-id`` header (as the LiteLLM proxy sends it);
* the authenticated webhook and admin routes of :mod:`litellm_canary.webhook`;
* ``GET /metrics`` — the canary's Prometheus metrics (when ``prometheus-client`` is installed).

It is what an SDK-based gateway looks like with litellm-canary inside, and the process the
end-to-end tests and the alert-path benchmark start. Production gateways embed the same three
pieces in their own app (or use the LiteLLM proxy integration).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from litellm_canary.core.config import CanaryConfig, ConfigError, parse_config
from litellm_canary.core.config.parse_errors import describe_parse_error

_MAX_BODY = 4 << 20


class GatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(4000, ge=0, le=65535)
    token_env: str = "LITELLM_CANARY_TOKEN"


@dataclass(frozen=True)
class GatewayConfig:
    model_list: list[dict[str, Any]]
    router_settings: dict[str, Any]
    canary: CanaryConfig
    gateway: GatewaySettings
    # Where the admin API lives under the server's root: "" for this gateway, the canary's
    # ``proxy.mount_path`` for a LiteLLM proxy config (one with ``litellm_settings``).
    admin_path: str = ""

    @property
    def admin_url(self) -> str:
        """The default base URL of the admin API (``/canary/...`` routes hang below it)."""
        return f"http://{self.gateway.host}:{self.gateway.port}{self.admin_path}"


def load_gateway_config(path: str | Path) -> GatewayConfig:
    """Read and validate a gateway file; errors name the file and the field."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read config file {file}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {file} is not valid YAML: {describe_parse_error(error)}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {file} must hold a mapping")
    model_list = data.get("model_list")
    if not isinstance(model_list, list) or not model_list:
        raise ConfigError(f"{file}: model_list must be a non-empty list of deployments")
    router_settings = data.get("router_settings") or {}
    if not isinstance(router_settings, Mapping):
        raise ConfigError(f"{file}: router_settings must be a mapping")
    if "litellm_canary" not in data:
        raise ConfigError(f"{file}: no litellm_canary section")
    try:
        gateway = GatewaySettings.model_validate(data.get("gateway") or {})
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{file}: gateway.{field}: {first['msg']}") from None
    canary = parse_config(data["litellm_canary"], base_dir=Path(file).parent)
    return GatewayConfig(
        list(model_list),
        dict(router_settings),
        canary,
        gateway,
        canary.proxy.mount_path if "litellm_settings" in data else "",
    )


def build_gateway(config: GatewayConfig, *, token: str | None = None) -> tuple[Any, Any, Starlette]:
    """Router, Canary and the ASGI app for ``config``."""
    from litellm.router import Router

    from litellm_canary.canary import attach
    from litellm_canary.integrations.admin_api import create_app

    router = Router(model_list=config.model_list, **config.router_settings)
    canary = attach(router, config.canary)
    admin = create_app(canary, token=token or os.environ.get(config.gateway.token_env))
    routes: list[Route | Mount] = [Route("/v1/chat/completions", _chat_endpoint(router), methods=["POST"])]
    try:
        from litellm_canary.integrations.metrics import CanaryMetrics

        routes.append(Mount("/metrics", CanaryMetrics(canary).asgi_app()))
    except ImportError:  # the metrics extra is not installed
        pass
    routes.append(Mount("/", admin))
    return router, canary, Starlette(routes=routes)


def _chat_endpoint(router: Any) -> Any:
    async def chat_completions(request: Request) -> Response:
        body = await request.body()
        if len(body) > _MAX_BODY:
            return JSONResponse({"error": {"message": "request body too large"}}, status_code=413)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": {"message": "request body is not valid JSON"}}, status_code=400)
        if not isinstance(payload, dict) or not isinstance(payload.get("model"), str):
            return JSONResponse({"error": {"message": "'model' (string) is required"}}, status_code=400)
        if not isinstance(payload.get("messages"), list):
            return JSONResponse({"error": {"message": "'messages' (list) is required"}}, status_code=400)
        try:
            response = await router.acompletion(**payload)
        except Exception as error:  # the upstream's failure, passed on with its status
            status = getattr(error, "status_code", 500)
            status = status if isinstance(status, int) and 400 <= status < 600 else 500
            return JSONResponse(
                {"error": {"message": str(error), "type": type(error).__name__}}, status_code=status
            )
        # the deployment that served, as the LiteLLM proxy says it (``bench switch --url`` reads it)
        headers = _model_id_header(response)
        if payload.get("stream"):
            return StreamingResponse(_sse(response), media_type="text/event-stream", headers=headers)
        return JSONResponse(response.model_dump(mode="json"), headers=headers)

    return chat_completions


def _model_id_header(response: Any) -> dict[str, str]:
    """``x-litellm-model-id``: the served deployment's id (LiteLLM's ``_hidden_params``), if known."""
    hidden = getattr(response, "_hidden_params", None)
    model_id = hidden.get("model_id") if isinstance(hidden, dict) else None
    return {"x-litellm-model-id": model_id} if isinstance(model_id, str) and model_id else {}


async def _sse(stream: Any) -> AsyncIterator[bytes]:
    try:
        async for chunk in stream:
            yield b"data: " + json.dumps(chunk.model_dump(mode="json")).encode() + b"\n\n"
    except Exception as error:  # a mid-stream failure ends the stream with an error event
        yield b"data: " + json.dumps({"error": {"message": str(error)}}).encode() + b"\n\n"
        return
    yield b"data: [DONE]\n\n"

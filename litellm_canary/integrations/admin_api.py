"""The HTTP face of a :class:`~litellm_canary.canary.Canary`: an Alertmanager webhook and an admin API.

This module owns the HTTP boundary and nothing else: bearer-token authentication, the request body
limit, validation of what comes in (every error names the field), the idempotency of webhook
deliveries, and the JSON error contract. Every change of state goes through ``Canary.rollback``,
``Canary.rearm``, ``Canary.set_canary_percent`` or ``Canary.promote``. Starlette (the ``server``
extra) is imported here and nowhere else.

Routes (every one needs ``Authorization: Bearer <token>``)::

    POST /alertmanager     Alertmanager webhook, payload version "4"  -> what happened, per alert
    GET  /canary/status    canary.status()
    GET  /canary/route     ?group=G[&user=U][&session_id=S]         -> the side a request gets now
    POST /canary/rollback  {"model_group", "reason"}                  -> the rollback record
    POST /canary/rearm     {"model_group"}                            -> {"model_group", "rearmed"}
    POST /canary/feedback  {"response_id", "score": 0..1}             -> side and deployment credited
    POST /canary/percent   {"model_group", "percent": 0..100}         -> set_canary_percent (409 rolled back)
    POST /canary/promote   {"model_group", "force": false}            -> promote (409 refused)
    GET  /canary/series, /canary/incidents...  the web console's data (:mod:`.console`)

The web console's page itself (``GET /console`` and its two static files) is the one thing served
without a token: it holds no data and asks for the token (:mod:`litellm_canary.integrations.console`).

Errors are JSON ``{"error": "..."}``: 400 malformed JSON or a wrong schema, 401 no or wrong token,
404 unknown model group, response id or route, 405 wrong method, 409 refused while the group is
rolled back (re-arm first) or its window is open, 413 body too large, 415 a ``Content-Type`` that is
not JSON (``application/json`` or ``application/*+json``; a body without one is read as JSON). No
error changes anything.

A firing alert with the label ``action="rollback"`` rolls back the group named by its
``model_group`` label. Alertmanager delivers at least once and repeats notifications, so one firing
(``fingerprint`` + ``startsAt``) is acted on once: a redelivery, even after a re-arm, answers
``duplicate``. Resolved alerts never re-arm; that stays an operator's decision.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from cachetools import TTLCache
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from litellm_canary.core.controller import RolledBackError, UnknownModelGroup
from litellm_canary.core.redact import clean_text
from litellm_canary.core.rollback_record import RollbackKind
from litellm_canary.detection.feedback import UnknownResponse
from litellm_canary.integrations.admin_route import route_endpoint
from litellm_canary.integrations.console import PUBLIC_PATHS, ConsoleSources, console_routes

if TYPE_CHECKING:
    from litellm_canary.canary import Canary

logger = logging.getLogger("litellm_canary.webhook")

__all__ = ["AlertmanagerAlert", "AlertmanagerPayload", "create_app"]

TOKEN_ENV = "LITELLM_CANARY_TOKEN"
AlertResult = Literal[
    "rolled_back", "already_rolled_back", "duplicate", "ignored_resolved", "ignored_no_action"
]

# -- request bodies ------------------------------------------------------------------------------


class AlertmanagerAlert(BaseModel):
    """One alert of an Alertmanager webhook; fields Alertmanager may add later are kept."""

    model_config = ConfigDict(extra="allow", strict=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str = Field(alias="startsAt")
    ends_at: str = Field(alias="endsAt")
    generator_url: str = Field(alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=256)  # kept as a dedupe key: bounded

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _is_timestamp(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an RFC 3339 timestamp: {value[:60]!r}") from None
        return value


class AlertmanagerPayload(BaseModel):
    """The Alertmanager webhook body (payload version "4"); only what we act on is checked."""

    model_config = ConfigDict(extra="allow", strict=True)

    version: Literal["4"]
    alerts: list[AlertmanagerAlert]


class _RearmBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model_group: str = Field(min_length=1)


class _FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    response_id: str = Field(min_length=1, max_length=512)
    score: float = Field(ge=0, le=1, allow_inf_nan=False)


class _PercentBody(_RearmBody):
    percent: float = Field(ge=0, le=100, allow_inf_nan=False)


class _PromoteBody(_RearmBody):
    force: bool = False


class _RollbackBody(_RearmBody):
    reason: str = Field(min_length=1, max_length=1000)

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


# -- the app -------------------------------------------------------------------------------------


def create_app(
    canary: Canary,
    *,
    token: str | None = None,
    max_body_bytes: int = 1 << 20,
    dedupe_ttl_s: float = 24 * 3600.0,
    dedupe_max_entries: int = 10_000,
) -> Starlette:
    """The ASGI app serving ``canary``. ``token`` defaults to ``$LITELLM_CANARY_TOKEN``; there is no
    unauthenticated mode. Webhook firings are remembered for ``dedupe_ttl_s`` (keep it above
    Alertmanager's ``repeat_interval``), at most ``dedupe_max_entries`` of them."""
    if token is None:
        token = os.environ.get(TOKEN_ENV)
    if not token:
        raise ValueError(f"create_app needs a bearer token: pass token=... or set ${TOKEN_ENV}")
    if not re.fullmatch(r"[\x21-\x7e]+", token):
        raise ValueError("the bearer token must be visible ASCII characters without spaces")
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")

    seen: TTLCache[tuple[str, str, str], bool] = TTLCache(maxsize=dedupe_max_entries, ttl=dedupe_ttl_s)
    lock = threading.Lock()

    async def alertmanager(request: Request) -> Response:
        payload = _validate(AlertmanagerPayload, await _read_json(request, max_body_bytes))
        # Check every alert before acting on any: a payload is applied whole or not at all.
        targets: list[str | None] = []
        for index, alert in enumerate(payload.alerts):
            group = None
            if alert.status == "firing" and alert.labels.get("action") == "rollback":
                group = alert.labels.get("model_group")
                where = f"alerts[{index}].labels.model_group"
                if group is None:
                    raise HTTPException(400, f"{where}: required when the label action is 'rollback'")
                if group not in canary.runtimes:
                    logger.warning("alert %r names unmanaged model group %r", alert.fingerprint, group)
                    raise HTTPException(404, f"{where}: {_unknown(canary, group)}")
            targets.append(group)

        results = []
        with lock:  # the duplicate check and the rollback are one step
            for alert, group in zip(payload.alerts, targets, strict=True):
                entry: dict[str, Any] = {
                    "fingerprint": alert.fingerprint,
                    "starts_at": alert.starts_at,
                    "model_group": alert.labels.get("model_group"),
                }
                outcome: AlertResult
                if alert.status == "resolved":
                    outcome = "ignored_resolved"
                elif group is None:
                    outcome = "ignored_no_action"
                elif (key := (alert.fingerprint, alert.starts_at, group)) in seen:
                    logger.info("alert %r (%s) was already handled", alert.fingerprint, alert.starts_at)
                    outcome = "duplicate"
                else:
                    # a synthetic alert from `litellm-canary drill --live` is recorded as a drill
                    kind: RollbackKind = "drill" if alert.labels.get("drill") == "true" else "alert"
                    record = canary.rollback(group, _reason(alert), kind=kind, cause=_cause(alert))
                    seen[key] = True
                    outcome = "already_rolled_back" if record["repeated"] else "rolled_back"
                    entry["rollback"] = record
                results.append({**entry, "result": outcome})
        return _JSON({"alerts": results})

    async def status(request: Request) -> Response:
        return _JSON(canary.status())

    async def rollback(request: Request) -> Response:
        body = _validate(_RollbackBody, await _read_json(request, max_body_bytes))
        try:
            record = canary.rollback(body.model_group, body.reason, kind="manual", cause={"via": "http"})
        except UnknownModelGroup as error:
            raise HTTPException(404, f"model_group: {error}") from None
        return _JSON(record)

    async def rearm(request: Request) -> Response:
        body = _validate(_RearmBody, await _read_json(request, max_body_bytes))
        try:
            rearmed = canary.rearm(body.model_group)
        except UnknownModelGroup as error:
            raise HTTPException(404, f"model_group: {error}") from None
        return _JSON({"model_group": body.model_group, "rearmed": rearmed})

    async def percent(request: Request) -> Response:
        body = _validate(_PercentBody, await _read_json(request, max_body_bytes))
        try:
            canary.set_canary_percent(body.model_group, body.percent)
        except UnknownModelGroup as error:
            raise HTTPException(404, f"model_group: {error}") from None
        except RolledBackError as error:
            raise HTTPException(409, str(error)) from None
        return _JSON({"model_group": body.model_group, "canary_percent": body.percent})

    async def promote(request: Request) -> Response:
        from litellm_canary.release.canary_window import PromoteRefused

        body = _validate(_PromoteBody, await _read_json(request, max_body_bytes))
        try:
            return _JSON(canary.promote(body.model_group, force=body.force))
        except UnknownModelGroup as error:
            raise HTTPException(404, f"model_group: {error}") from None
        except PromoteRefused as error:
            raise HTTPException(409, str(error)) from None

    async def feedback(request: Request) -> Response:
        body = _validate(_FeedbackBody, await _read_json(request, max_body_bytes))
        try:
            return _JSON(canary.record_feedback(body.response_id, body.score))
        except UnknownResponse as error:
            raise HTTPException(404, f"response_id: {error}") from None

    async def read_body(request: Request, model: type[BaseModel]) -> BaseModel:
        return _validate(model, await _read_json(request, max_body_bytes))

    console = ConsoleSources(
        groups=lambda: canary.runtimes,
        series=canary.followup.recent_series,
        incidents_dir=canary.config.incidents.dir if canary.config.incidents is not None else None,
        read_body=read_body,
    )
    return Starlette(
        routes=[
            *console_routes(console),
            Route("/alertmanager", alertmanager, methods=["POST"]),
            Route("/canary/status", status, methods=["GET"]),
            Route("/canary/route", route_endpoint(canary.route), methods=["GET"]),
            Route("/canary/rollback", rollback, methods=["POST"]),
            Route("/canary/rearm", rearm, methods=["POST"]),
            Route("/canary/feedback", feedback, methods=["POST"]),
            Route("/canary/percent", percent, methods=["POST"]),
            Route("/canary/promote", promote, methods=["POST"]),
        ],
        middleware=[Middleware(_BearerAuth, token=token, public=PUBLIC_PATHS)],
        exception_handlers={HTTPException: _on_http_error, Exception: _on_crash},
    )


# -- helpers -------------------------------------------------------------------------------------


class _BearerAuth:
    """Every HTTP request needs ``Authorization: Bearer <token>``, checked before routing; only a
    ``GET`` of one of the ``public`` paths (the console's static page) is served without one."""

    def __init__(self, app: ASGIApp, token: str, public: frozenset[str] = frozenset()) -> None:
        self._app = app
        self._token = token.encode()
        self._public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._is_public(scope) and not self._authorized(scope):
            response = _error(401, "missing or invalid bearer token", {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)

    def _is_public(self, scope: Scope) -> bool:
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return scope["method"] in ("GET", "HEAD") and path in self._public

    def _authorized(self, scope: Scope) -> bool:
        header = next((value for name, value in scope["headers"] if name.lower() == b"authorization"), b"")
        scheme, _, credentials = header.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._token)


_JSON_TYPE = re.compile(r"application/(?:[\w.+-]+\+)?json", re.IGNORECASE)


async def _read_json(request: Request, limit: int) -> Any:
    """The body parsed as JSON; 415 for a content type that is not JSON (none at all is taken as
    JSON), 413 as soon as it is known to exceed ``limit`` bytes."""
    content_type = request.headers.get("content-type")
    if content_type is not None and not _JSON_TYPE.fullmatch(content_type.split(";", 1)[0].strip()):
        raise HTTPException(
            415, f"Content-Type must be application/json, got {clean_text(content_type, 80)!r}"
        )
    too_large = HTTPException(413, f"request body is larger than {limit} bytes")
    length = request.headers.get("content-length")
    if length is not None:
        if not (length.isascii() and length.isdigit()):
            raise HTTPException(400, f"invalid Content-Length header: {length[:40]!r}")
        if int(length) > limit:
            raise too_large
    body = bytearray()
    async for chunk in request.stream():  # also bounds a chunked body, or one that lies about its length
        body += chunk
        if len(body) > limit:
            raise too_large
    try:
        return json.loads(body)
    except RecursionError:
        raise HTTPException(400, "request body is not valid JSON: nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an over-long integer
        raise HTTPException(400, f"request body is not valid JSON: {error}") from None


_Model = TypeVar("_Model", bound=BaseModel)


def _validate(model: type[_Model], data: Any) -> _Model:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise HTTPException(400, _describe(error)) from None


def _describe(error: ValidationError, limit: int = 5) -> str:
    """``alerts[0].labels.model_group: Input should be a valid string (got 3)``, for a few errors."""
    items = error.errors(include_url=False)
    lines = []
    for item in items[:limit]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
        value = item.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {repr(value)[:80]})"
        lines.append(f"{where or 'body'}: {item['msg']}{shown}")
    more = f"; and {len(items) - limit} more" if len(items) > limit else ""
    return "; ".join(lines) + more


def _unknown(canary: Canary, group: str) -> str:
    return f"no rollout manages model group {group!r} (managed: {sorted(canary.runtimes)})"


def _reason(alert: AlertmanagerAlert) -> str:
    alertname = alert.labels.get("alertname", "unnamed alert")
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or "no summary"
    return f"{alertname}: {summary} ({alert.generator_url})"


def _cause(alert: AlertmanagerAlert) -> dict[str, Any]:
    return {
        "alertname": alert.labels.get("alertname"),
        "summary": alert.annotations.get("summary"),
        "generator_url": alert.generator_url,
        "fingerprint": alert.fingerprint,
        "starts_at": alert.starts_at,
        "labels": dict(alert.labels),
    }


class _JSON(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate from a request, echoed back, cannot fail to encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _JSON({"error": message}, status_code=status, headers=headers)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, exc.detail, exc.headers)


async def _on_crash(request: Request, exc: Exception) -> Response:
    return _error(500, "internal error (see the server log)")

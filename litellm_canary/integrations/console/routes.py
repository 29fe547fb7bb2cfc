"""The console's routes: the static page (public) and the live per-second series (authenticated).

The routes get narrow callables (:class:`ConsoleSources`), never the canary; the admin app builds
them. Errors are raised as ``HTTPException`` so the admin app's JSON error contract applies.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from litellm_canary.integrations.console.incidents_api import incident_routes

__all__ = ["PUBLIC_PATHS", "ConsoleSources", "console_routes"]

#: Paths (below the admin app's root) served without a bearer token: the static page only.
PUBLIC_PATHS = frozenset({"/console", "/console/", "/console/console.js", "/console/console.css"})

MAX_SERIES_S = 900  # what the series buffer keeps

_STATIC_TYPES = {
    "console.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
# The page loads only its own files and talks only to its own origin; the picture is a blob: URL.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' blob:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class ConsoleSources:
    """What the console's routes read and call."""

    #: the managed model groups
    groups: Callable[[], Collection[str]]
    #: ``series(model_group, seconds)``: per-second requests, error rate, p99 TTFT of both sides
    series: Callable[[str, int], dict[str, Any]]
    #: the incidents directory, ``None`` when the canary config has no ``incidents:``
    incidents_dir: Path | None
    #: ``read_body(request, Model)``: the request's JSON body validated (400/413/415 otherwise)
    read_body: Callable[[Request, type[BaseModel]], Awaitable[BaseModel]]


@cache
def _static(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def console_routes(sources: ConsoleSources) -> list[Route]:
    """The console's routes, to add to the admin app (whose bearer check exempts :data:`PUBLIC_PATHS`)."""

    async def page(request: Request) -> Response:
        # The admin app may be mounted (LiteLLM proxy: <mount_path>); the page needs its base URL.
        base = html.escape(request.scope.get("root_path", "").rstrip("/"), quote=True)
        return Response(
            _static("console.html").replace("__BASE__", base),
            media_type=_STATIC_TYPES["console.html"],
            headers=_HEADERS,
        )

    def static(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return Response(_static(name), media_type=_STATIC_TYPES[name], headers=_HEADERS)

        return serve

    async def series(request: Request) -> Response:
        group = request.query_params.get("model_group")
        if not group:
            raise HTTPException(400, "model_group: required query parameter")
        groups = sources.groups()
        if group not in groups:
            raise HTTPException(
                404, f"model_group: no rollout manages model group {group!r} (managed: {sorted(groups)})"
            )
        raw = request.query_params.get("seconds", "300")
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_SERIES_S:
            raise HTTPException(
                400, f"seconds: must be an integer within 1..{MAX_SERIES_S}, got {raw[:20]!r}"
            )
        seconds = int(raw)
        return JSONResponse({"model_group": group, "seconds": seconds, **sources.series(group, seconds)})

    return [
        Route("/console", page, methods=["GET"]),
        Route("/console/", page, methods=["GET"]),  # the page's URLs are absolute: same page
        Route("/console/console.js", static("console.js"), methods=["GET"]),
        Route("/console/console.css", static("console.css"), methods=["GET"]),
        Route("/canary/series", series, methods=["GET"]),
        *incident_routes(sources.incidents_dir, sources.read_body),
    ]

"""``GET /canary/route?group=G[&user=U][&session_id=S]``: the routing-only probe over HTTP.

This module owns that one admin endpoint: it checks the query (every error names the parameter)
and answers with what :func:`litellm_canary.core.route_probe.probe_route` decided, without calling
an upstream, plus the ``pid`` of the process that answered (one per ``--num_workers`` worker, so a
client on a new connection per probe can tell which worker decided). It gets a narrow callable
(``route(group, user=..., session_id=...)``, raising
:class:`~litellm_canary.core.controller.UnknownModelGroup`), never the ``Canary`` handle;
authentication and the JSON error contract are the admin app's (:mod:`.admin_api`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from litellm_canary.core.controller import UnknownModelGroup

__all__ = ["RouteProbe", "route_endpoint"]

_PARAMETERS = ("group", "user", "session_id")
_MAX_LEN = 512


class RouteProbe(Protocol):
    """The canary's routing probe (``Canary.route``)."""

    def __call__(
        self, model_group: str, *, user: str | None = ..., session_id: str | None = ...
    ) -> Mapping[str, Any]: ...


def route_endpoint(route: RouteProbe) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint answering ``GET /canary/route`` with ``route``'s decision."""

    async def endpoint(request: Request) -> Response:
        query = request.query_params
        unknown = sorted(set(query) - set(_PARAMETERS))
        if unknown:
            raise HTTPException(400, f"unknown query parameter(s) {unknown}; expected {list(_PARAMETERS)}")
        values: dict[str, str | None] = {}
        for name in _PARAMETERS:
            given = query.getlist(name)
            if len(given) > 1:
                raise HTTPException(400, f"query parameter {name!r} given {len(given)} times")
            value = given[0] if given else None
            if value is not None and not (0 < len(value) <= _MAX_LEN):
                raise HTTPException(400, f"query parameter {name!r} must be 1..{_MAX_LEN} characters")
            values[name] = value
        group = values["group"]
        if group is None:
            raise HTTPException(400, "query parameter 'group' is required (a managed model group)")
        try:
            decided = route(group, user=values["user"], session_id=values["session_id"])
        except UnknownModelGroup as error:
            raise HTTPException(404, f"group: {error}") from None
        answer = {**decided, "pid": os.getpid()}  # which process (proxy worker) decided
        body = json.dumps(answer, allow_nan=False, separators=(",", ":")).encode()
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    return endpoint

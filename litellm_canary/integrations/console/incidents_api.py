"""The incidents over HTTP (authenticated): list, one incident, its picture, the annotation.

The same store and the same calls as ``litellm-canary incidents list|show|annotate``
(:class:`~litellm_canary.response.incidents.IncidentStore`). File access runs in a worker thread.

Routes::

    GET  /canary/incidents                    -> {"incidents": [summary, ...]} newest first
    GET  /canary/incidents/{id}               -> {"incident": record, "markdown": report, "picture": bool}
    GET  /canary/incidents/{id}/picture       -> the timeline picture (PNG); 404 when there is none
    POST /canary/incidents/{id}/annotate      {"cause", "change"} -> {"incident": record}

404 when incidents are not configured or the id is unknown; 400 for a blank or over-long note.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from litellm_canary.response.incidents import (
    MAX_NOTE,
    IncidentNotFound,
    IncidentStore,
    render_markdown,
)

__all__ = ["AnnotateBody", "incident_routes"]


class AnnotateBody(BaseModel):
    """The two human sections of an incident (``incidents annotate --cause ... --change ...``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cause: str = Field(min_length=1, max_length=MAX_NOTE)
    change: str = Field(min_length=1, max_length=MAX_NOTE)

    @field_validator("cause", "change")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


def incident_routes(
    directory: Path | None,
    read_body: Callable[[Request, type[BaseModel]], Awaitable[BaseModel]],
) -> list[Route]:
    """The incident routes over ``directory`` (``None``: every route answers 404, not configured)."""

    def store() -> IncidentStore:
        if directory is None:
            raise HTTPException(
                404, "incidents are not configured: add 'incidents: {dir: ...}' to the canary config"
            )
        return IncidentStore(directory)

    async def call(function: Callable[..., Any], *args: Any) -> Any:
        try:
            return await run_in_threadpool(function, *args)
        except IncidentNotFound as error:
            raise HTTPException(404, str(error)) from None

    async def listing(request: Request) -> Response:
        summaries = await call(store().list)
        return JSONResponse({"incidents": [s.model_dump(mode="json") for s in summaries]})

    async def show(request: Request) -> Response:
        incident = await call(store().get, request.path_params["incident_id"])
        return JSONResponse(
            {
                "incident": incident.model_dump(mode="json"),
                "markdown": render_markdown(incident),
                "picture": incident.picture is not None,
            }
        )

    async def picture(request: Request) -> Response:
        incidents = store()
        incident = await call(incidents.get, request.path_params["incident_id"])
        path = incidents.directory / incident.picture if incident.picture else None
        if path is None or not path.is_file():
            note = incident.picture_note or "none was drawn"
            raise HTTPException(404, f"incident {incident.id} has no timeline picture: {note}")
        return Response(await run_in_threadpool(path.read_bytes), media_type="image/png")

    async def annotate(request: Request) -> Response:
        incidents = store()
        body = await read_body(request, AnnotateBody)
        assert isinstance(body, AnnotateBody)
        incident = await call(incidents.annotate, request.path_params["incident_id"], body.cause, body.change)
        return JSONResponse({"incident": incident.model_dump(mode="json")})

    return [
        Route("/canary/incidents", listing, methods=["GET"]),
        Route("/canary/incidents/{incident_id}", show, methods=["GET"]),
        Route("/canary/incidents/{incident_id}/picture", picture, methods=["GET"]),
        Route("/canary/incidents/{incident_id}/annotate", annotate, methods=["POST"]),
    ]

"""``GET /canary/route``'s endpoint on its own: the probe's decision plus the answering process's pid."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from litellm_canary.core.controller import UnknownModelGroup
from litellm_canary.integrations.admin_route import route_endpoint


def _probe(model_group: str, *, user: str | None = None, session_id: str | None = None) -> Mapping[str, Any]:
    if model_group != "chat":
        raise UnknownModelGroup(model_group)
    return {"group": model_group, "side": "stable", "user": user, "session_id": session_id}


async def _get(params: dict[str, str]) -> httpx.Response:
    app = Starlette(routes=[Route("/canary/route", route_endpoint(_probe), methods=["GET"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.get("/canary/route", params=params)


async def test_the_answer_is_the_decision_and_the_pid_of_the_process_that_decided() -> None:
    answer = await _get({"group": "chat", "user": "u1"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "group": "chat",
        "side": "stable",
        "user": "u1",
        "session_id": None,
        "pid": os.getpid(),
    }
    assert answer.headers["cache-control"] == "no-store"


async def test_an_unmanaged_group_is_404_naming_the_parameter() -> None:
    answer = await _get({"group": "other"})
    assert answer.status_code == 404 and "group" in answer.text

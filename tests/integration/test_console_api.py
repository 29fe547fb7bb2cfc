"""The web console's HTTP side on a real canary attached to a real litellm.Router: the public page,
and the authenticated series and incidents endpoints (their errors name the problem)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from litellm import Router
from starlette.applications import Starlette
from starlette.routing import Mount

import litellm_canary
from litellm_canary import Canary
from litellm_canary.integrations.admin_api import create_app
from litellm_canary.response.incidents import IncidentStore, TimelineSeries
from tests.support.helpers import FakeClock, OutcomeWaiter, chat_rollout, deployment

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def router() -> Router:
    return Router(
        model_list=[deployment("chat", "chat-stable", "stable"), deployment("chat", "chat-canary", "canary")]
    )


@pytest.fixture
def canary(router: Router, tmp_path: Path, clock: FakeClock) -> Iterator[Canary]:
    canary = litellm_canary.attach(
        router,
        {
            "rollouts": [chat_rollout()],
            "flag_store": {"kind": "memory"},
            "incidents": {"dir": str(tmp_path / "incidents")},
        },
        clock=clock,
        background=False,
    )
    canary.set_side("chat", "canary")
    yield canary
    canary.detach()


@pytest.fixture
def app(canary: Canary) -> Starlette:
    return create_app(canary, token=TOKEN, max_body_bytes=65536)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app) as client:
        yield client


def _client(app: Any, headers: Mapping[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers or {}
    )


async def _rollback(client: httpx.AsyncClient, reason: str = "console test") -> str:
    response = await client.post(
        "/canary/rollback", headers=AUTH, json={"model_group": "chat", "reason": reason}
    )
    assert response.status_code == 200, response.text
    listing = (await client.get("/canary/incidents", headers=AUTH)).json()["incidents"]
    assert len(listing) == 1
    incident_id: str = listing[0]["id"]
    return incident_id


# -- the page --------------------------------------------------------------------------------------


async def test_the_page_is_served_without_a_token_and_holds_no_data(client: httpx.AsyncClient) -> None:
    page = await client.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert 'id="login-form"' in page.text and 'type="password"' in page.text
    assert 'src="/console/console.js"' in page.text
    assert "chat" not in page.text and TOKEN not in page.text  # no rollout, no secret
    assert (await client.get("/console/")).text == page.text
    script = await client.get("/console/console.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "Authorization" in script.text and "sessionStorage" in script.text
    style = await client.get("/console/console.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")


async def test_only_reading_the_page_is_public(client: httpx.AsyncClient) -> None:
    assert (await client.post("/console", json={})).status_code == 401
    assert (await client.get("/console/other.js")).status_code == 401
    for path in ("/canary/status", "/canary/series?model_group=chat", "/canary/incidents"):
        response = await client.get(path)
        assert response.status_code == 401, path
        assert response.json() == {"error": "missing or invalid bearer token"}
    wrong = await client.get("/canary/incidents", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401


async def test_under_a_mount_path_the_page_points_at_its_own_files(app: Starlette) -> None:
    outer = Starlette(routes=[Mount("/litellm-canary", app=app)])
    async with _client(outer) as client:
        page = await client.get("/litellm-canary/console")
        assert page.status_code == 200
        assert 'src="/litellm-canary/console/console.js"' in page.text
        assert 'data-base="/litellm-canary"' in page.text
        assert (await client.get("/litellm-canary/console/console.css")).status_code == 200
        assert (await client.get("/litellm-canary/canary/incidents")).status_code == 401
        assert (await client.get("/litellm-canary/canary/incidents", headers=AUTH)).status_code == 200


async def test_status_says_what_the_flag_serves(canary: Canary, client: httpx.AsyncClient) -> None:
    def serves() -> str:
        value: str = canary.status()["groups"]["chat"]["flag_store"]["serves"]
        return value

    assert serves() == "canary"  # the fixture's set_side
    assert (
        await client.post("/canary/percent", headers=AUTH, json={"model_group": "chat", "percent": 20})
    ).status_code == 200
    assert serves() == "canary to 20 % of users (sticky)"
    await _rollback(client)
    assert serves() == "stable"  # the rollback wrote the flag
    status = (await client.get("/canary/status", headers=AUTH)).json()
    assert status["groups"]["chat"]["flag_store"]["serves"] == "stable"


# -- the series ------------------------------------------------------------------------------------


async def test_the_series_counts_each_sides_requests_per_second(
    canary: Canary, router: Router, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    waiter = OutcomeWaiter(canary)
    clock.now = 1000.2
    await asyncio.gather(*(router.acompletion(model="chat", messages=MESSAGES) for _ in range(3)))
    await waiter.wait(3)
    clock.now = 1001.5

    response = await client.get("/canary/series?model_group=chat&seconds=5", headers=AUTH)

    assert response.status_code == 200
    body = response.json()
    assert body["model_group"] == "chat" and body["seconds"] == 5
    assert body["t"] == [-5, -4, -3, -2, -1]
    assert body["canary"]["requests"] == [0, 0, 0, 0, 3]
    assert body["canary"]["error_rate"][-1] == 0.0
    assert body["stable"]["requests"] == [0, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, "model_group: required"),
        ("?model_group=nope", 404, "no rollout manages model group 'nope'"),
        ("?model_group=chat&seconds=0", 400, "seconds: must be an integer within 1..900, got '0'"),
        ("?model_group=chat&seconds=901", 400, "got '901'"),
        ("?model_group=chat&seconds=ten", 400, "got 'ten'"),
    ],
)
async def test_bad_series_requests_name_the_problem(
    client: httpx.AsyncClient, query: str, status: int, message: str
) -> None:
    response = await client.get(f"/canary/series{query}", headers=AUTH)
    assert response.status_code == status
    assert message in response.json()["error"]


# -- incidents -------------------------------------------------------------------------------------


async def test_an_incident_is_listed_and_shown_with_its_markdown(client: httpx.AsyncClient) -> None:
    assert (await client.get("/canary/incidents", headers=AUTH)).json() == {"incidents": []}
    incident_id = await _rollback(client, reason="canary answers garbage")

    listing = (await client.get("/canary/incidents", headers=AUTH)).json()["incidents"]
    assert listing[0]["model_group"] == "chat" and listing[0]["kind"] == "manual"
    assert listing[0]["annotated"] is False
    shown = await client.get(f"/canary/incidents/{incident_id}", headers=AUTH)
    assert shown.status_code == 200
    body = shown.json()
    assert body["incident"]["id"] == incident_id
    assert body["incident"]["trigger"]["reason"] == "canary answers garbage"
    assert "canary answers garbage" in body["markdown"]
    assert body["picture"] is False


async def test_the_picture_is_the_png_or_a_404_that_says_why(
    canary: Canary, client: httpx.AsyncClient
) -> None:
    incident_id = await _rollback(client)
    missing = await client.get(f"/canary/incidents/{incident_id}/picture", headers=AUTH)
    assert missing.status_code == 404
    assert f"incident {incident_id} has no timeline picture" in missing.json()["error"]

    assert canary.config.incidents is not None
    store = IncidentStore(canary.config.incidents.dir)
    series = TimelineSeries(
        t_s=[-2.0, -1.0, 0.0], canary_error_rate=[0.0, 0.5, 1.0], stable_error_rate=[0.0, 0.0, 0.0]
    )
    pytest.importorskip("matplotlib")
    store.write(store.get(incident_id), series=series)
    picture = await client.get(f"/canary/incidents/{incident_id}/picture", headers=AUTH)
    assert picture.status_code == 200
    assert picture.headers["content-type"] == "image/png"
    assert picture.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert (await client.get(f"/canary/incidents/{incident_id}", headers=AUTH)).json()["picture"] is True


async def test_annotate_stores_both_notes_like_the_cli(canary: Canary, client: httpx.AsyncClient) -> None:
    incident_id = await _rollback(client)
    response = await client.post(
        f"/canary/incidents/{incident_id}/annotate",
        headers=AUTH,
        json={"cause": "  bad prompt template in v2  ", "change": "eval the template before the canary"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["incident"]["actual_cause"] == "bad prompt template in v2"

    assert canary.config.incidents is not None
    stored = IncidentStore(canary.config.incidents.dir).get(incident_id)
    assert stored.actual_cause == "bad prompt template in v2"
    assert stored.what_would_change == "eval the template before the canary"
    assert stored.annotated_at is not None
    markdown = (canary.config.incidents.dir / f"{incident_id}.md").read_text()
    assert "bad prompt template in v2" in markdown
    listing = (await client.get("/canary/incidents", headers=AUTH)).json()["incidents"]
    assert listing[0]["annotated"] is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"cause": "   ", "change": "x"}, "cause: Value error, must not be blank"),
        ({"cause": "x"}, "change: Field required"),
        ({"cause": "x", "change": "y", "extra": 1}, "extra: Extra inputs are not permitted"),
        ({"cause": 3, "change": "y"}, "cause: Input should be a valid string"),
        ({"cause": "x" * 10_001, "change": "y"}, "cause: String should have at most 10000 characters"),
    ],
)
async def test_bad_annotations_are_refused_with_the_field_named(
    canary: Canary, client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    incident_id = await _rollback(client)
    response = await client.post(f"/canary/incidents/{incident_id}/annotate", headers=AUTH, json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert canary.config.incidents is not None
    unchanged = IncidentStore(canary.config.incidents.dir).get(incident_id)
    assert not unchanged.actual_cause and unchanged.annotated_at is None


async def test_a_non_json_annotation_is_a_400(client: httpx.AsyncClient) -> None:
    incident_id = await _rollback(client)
    response = await client.post(
        f"/canary/incidents/{incident_id}/annotate",
        headers={**AUTH, "Content-Type": "application/json"},
        content=b"{nope",
    )
    assert response.status_code == 400
    assert "request body is not valid JSON" in response.json()["error"]


@pytest.mark.parametrize("suffix", ["", "/picture", "/annotate"])
async def test_unknown_incidents_are_404s_that_name_the_id(client: httpx.AsyncClient, suffix: str) -> None:
    method = "POST" if suffix == "/annotate" else "GET"
    for incident_id, message in (
        ("20260101T120000000Z-a1b2c3", "no incident '20260101T120000000Z-a1b2c3' in "),
        ("not-an-id", "no incident 'not-an-id': not an incident id"),
    ):
        response = await client.request(
            method,
            f"/canary/incidents/{incident_id}{suffix}",
            headers=AUTH,
            json={"cause": "c", "change": "w"} if method == "POST" else None,
        )
        assert response.status_code == 404, (incident_id, suffix)
        assert message in response.json()["error"]


async def test_without_an_incidents_directory_the_endpoints_say_so() -> None:
    router = Router(
        model_list=[deployment("chat", "chat-stable", "stable"), deployment("chat", "chat-canary", "canary")]
    )
    canary = litellm_canary.attach(router, {"rollouts": [chat_rollout()]}, background=False)
    try:
        async with _client(create_app(canary, token=TOKEN), AUTH) as client:
            for method, path in (
                ("GET", "/canary/incidents"),
                ("GET", "/canary/incidents/20260101T120000000Z-a1b2c3"),
                ("POST", "/canary/incidents/20260101T120000000Z-a1b2c3/annotate"),
            ):
                response = await client.request(method, path, json={"cause": "c", "change": "w"})
                assert response.status_code == 404, path
                assert "incidents are not configured" in response.json()["error"]
    finally:
        canary.detach()

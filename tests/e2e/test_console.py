"""The web console in a real browser: Debian's chromium driven by Playwright for Python, against a
real ``litellm-canary serve`` gateway with fake upstreams and traffic on both sides.

Set ``LITELLM_CANARY_CONSOLE_SCREENSHOT=docs/console.png`` to save the README's screenshot.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from litellm_canary.response.incidents import IncidentStore
from litellm_canary.testing.fake_upstream import FakeUpstream
from litellm_canary.testing.gateway_process import GatewayProcess, GatewayTraffic, chat_gateway_config
from tests.support.helpers import missing_tool

TOKEN = "console-token-0123456789"
WAIT_MS = 30_000  # generous: a loaded CI machine; every wait ends as soon as the page shows it


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        missing_tool("chromium is not installed (bash .ci/install-chromium.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_tool("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    stable = FakeUpstream("stable", answer="stable answer").start()
    canary = FakeUpstream("canary", answer="canary answer").start()
    incidents = tmp_path_factory.mktemp("incidents")
    config = chat_gateway_config(
        stable,
        canary,
        {"flag_key": "chat"},
        flag_store={"kind": "flagd_file", "path": str(tmp_path_factory.mktemp("flags") / "flags.json")},
        incidents={"dir": str(incidents)},
    )
    try:
        with GatewayProcess(tmp_path_factory.mktemp("gateway"), config, TOKEN) as process:
            yield process
    finally:
        stable.stop()
        canary.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def _sign_in(page: Any, gateway: GatewayProcess, token: str) -> None:
    page.goto(f"{gateway.url}/console")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_a_wrong_token_shows_only_the_login(page: Any, gateway: GatewayProcess) -> None:
    from playwright.sync_api import expect

    _sign_in(page, gateway, "not-the-token")

    expect(page.locator("#login-error")).to_have_text("That token was not accepted.", timeout=WAIT_MS)
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#console")).to_be_hidden()
    expect(page.locator(".rollout")).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0
    assert "chat" not in page.locator("body").inner_text()


def test_roll_back_from_the_console_and_annotate_the_incident(page: Any, gateway: GatewayProcess) -> None:
    from playwright.sync_api import expect

    percent = httpx.post(
        f"{gateway.url}/canary/percent", headers=gateway.headers, json={"model_group": "chat", "percent": 50}
    )
    assert percent.status_code == 200, percent.text
    with GatewayTraffic(gateway.url):
        _sign_in(page, gateway, TOKEN)
        rollout = page.locator("#rollout-chat")
        canary_rate = rollout.locator('[data-metric="rate"][data-side="canary"]')
        stable_rate = rollout.locator('[data-metric="rate"][data-side="stable"]')
        no_traffic = re.compile("^(0|\u2013)$")  # zero, or a dash: no data yet

        # armed, with traffic on both sides
        expect(rollout.get_by_test_id("state")).to_have_text("armed", timeout=WAIT_MS)
        expect(canary_rate).not_to_have_text(no_traffic, timeout=WAIT_MS)
        expect(stable_rate).not_to_have_text(no_traffic, timeout=WAIT_MS)
        expect(rollout.locator("polyline.canary").first).to_be_attached(timeout=WAIT_MS)
        assert page.evaluate("sessionStorage.length") == 1
        screenshot = os.environ.get("LITELLM_CANARY_CONSOLE_SCREENSHOT")
        if screenshot:  # the README's picture: wait until the charts show half a minute
            expect(rollout.locator("polyline.canary").first).to_have_attribute(
                "points", re.compile(r"^(\S+ ){29,}"), timeout=WAIT_MS * 2
            )
            page.screenshot(path=str(Path(screenshot)), full_page=True)

        # Roll back: a confirmation step that needs a reason
        rollout.get_by_role("button", name="Roll back").click()
        confirm = rollout.get_by_test_id("rollback-confirm")
        expect(confirm).to_be_visible()
        confirm.get_by_role("button", name="Confirm rollback").click()
        expect(confirm.get_by_role("alert")).to_have_text("A reason is required.")
        assert _status(gateway)["state"] == "armed"
        confirm.get_by_test_id("rollback-reason").fill("canary answers look wrong (console e2e)")
        confirm.get_by_role("button", name="Confirm rollback").click()

        expect(rollout.get_by_test_id("state")).to_have_text("rolled back", timeout=WAIT_MS)
        expect(rollout.get_by_test_id("state-line")).to_contain_text("canary answers look wrong")
        assert _status(gateway)["state"] == "rolled_back"
        # the canary's request rate falls to zero while stable keeps serving
        expect(canary_rate).to_have_text("0", timeout=WAIT_MS)
        expect(stable_rate).not_to_have_text(no_traffic)
        expect(rollout.get_by_role("button", name="Re-arm")).to_be_visible()

        # the incident: open it at once and read its report; its timeline picture appears when the
        # follow-up has verified the rollback (stable traffic) and drawn it
        row = page.locator("#incident-list tbody tr").first
        expect(row).to_be_visible(timeout=WAIT_MS)
        incident_id = row.get_attribute("data-incident-id")
        assert incident_id
        row.get_by_role("button").click()
        report = page.locator("#incident-markdown")
        expect(report).to_contain_text("canary answers look wrong", timeout=WAIT_MS)
        picture = page.locator("#incident-picture")
        expect(picture).to_be_visible(timeout=WAIT_MS * 4)
        assert picture.evaluate("img => img.complete && img.naturalWidth") > 0

    # annotate it
    page.get_by_label("Actual cause").fill("v2 prompt template drops the system prompt")
    page.get_by_label("What would change").fill("golden set covers the system prompt")
    page.get_by_role("button", name="Save annotation").click()
    expect(page.locator("#annotate-result")).to_have_text("Annotation saved.", timeout=WAIT_MS)
    expect(page.locator("#incident-markdown")).to_contain_text("v2 prompt template drops the system prompt")
    expect(row).to_contain_text("annotated", timeout=WAIT_MS)

    shown = httpx.get(f"{gateway.url}/canary/incidents/{incident_id}", headers=gateway.headers).json()
    assert shown["incident"]["actual_cause"] == "v2 prompt template drops the system prompt"
    stored = IncidentStore(_incidents_dir(gateway)).get(incident_id)
    assert stored.what_would_change == "golden set covers the system prompt"

    # Re-arm with a canary percentage, through /canary/rearm and /canary/percent
    rollout.get_by_test_id("rearm-percent").fill("150")
    rollout.get_by_role("button", name="Re-arm").click()
    expect(rollout.get_by_test_id("action-result")).to_contain_text("within 0..100")
    assert _status(gateway)["state"] == "rolled_back"
    rollout.get_by_test_id("rearm-percent").fill("25")
    rollout.get_by_role("button", name="Re-arm").click()
    expect(rollout.get_by_test_id("action-result")).to_contain_text("serves 25 % of users the canary")
    expect(rollout.get_by_test_id("state")).to_have_text("armed", timeout=WAIT_MS)
    assert _status(gateway)["state"] == "armed"
    expect(rollout.locator('[data-fact="flag"]')).to_contain_text(
        "'chat' serves canary to 25 % of users (sticky)", timeout=WAIT_MS
    )

    # signing out leaves nothing of the gateway on the page
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator(".rollout")).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0


def _incidents_dir(gateway: GatewayProcess) -> Path:
    config = yaml.safe_load(gateway.config_path.read_text())
    return Path(config["litellm_canary"]["incidents"]["dir"])


def _status(gateway: GatewayProcess) -> Any:
    return httpx.get(f"{gateway.url}/canary/status", headers=gateway.headers).json()["groups"]["chat"]

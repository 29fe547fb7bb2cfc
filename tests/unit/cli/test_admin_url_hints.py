"""Issue 13 §3 items 2 and 4: the admin API of a LiteLLM proxy lives under ``proxy.mount_path``.

Item 2: the live drill's default URL ignored the mount path (``GET http://127.0.0.1:4000/canary/status:
HTTP 404``). Item 4: ``rollback --url http://127.0.0.1:4000`` (the proxy's root) answered
``{'detail': 'Not Found'} (404)`` with no hint about ``/litellm-canary``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from litellm_canary import cli
from litellm_canary.integrations.gateway import load_gateway_config
from tests.support import REPO

EXAMPLE = REPO / "examples" / "proxy" / "config.yaml"


class _ProxyRoot(BaseHTTPRequestHandler):
    """What a LiteLLM proxy (FastAPI) answers for a route it does not have."""

    def _not_found(self) -> None:
        body = json.dumps({"detail": "Not Found"}).encode()
        self.send_response(404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _not_found

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy_root() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyRoot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_proxy_config_admin_url_includes_the_mount_path() -> None:
    assert load_gateway_config(EXAMPLE).admin_url == "http://127.0.0.1:4000/litellm-canary"


def test_gateway_config_admin_url_is_the_root(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "model_list: [{model_name: chat, litellm_params: {model: openai/x}, model_info: {id: s}},"
        " {model_name: chat, litellm_params: {model: openai/x}, model_info: {id: c}}]\n"
        "litellm_canary: {rollouts: [{model_group: chat, stable: [s], canary: [c], flag_key: chat}]}\n"
        "gateway: {port: 4100}\n"
    )
    assert load_gateway_config(config).admin_url == "http://127.0.0.1:4100"


@pytest.mark.parametrize(
    "command",
    [
        ["rollback", "--group", "chat", "--reason", "drill"],
        ["rearm", "--group", "chat"],
        ["status"],
    ],
)
def test_url_at_the_proxy_root_says_did_you_mean_the_mount_path(
    command: list[str],
    proxy_root: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LITELLM_CANARY_TOKEN", "t0ken")
    assert cli.main([*command, "--url", proxy_root]) == 2
    err = capsys.readouterr().err
    assert "(404)" in err
    assert f"did you mean {proxy_root}/litellm-canary" in err


def test_no_hint_when_the_url_already_has_the_mount_path(
    proxy_root: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LITELLM_CANARY_TOKEN", "t0ken")
    assert cli.main(["status", "--url", f"{proxy_root}/litellm-canary"]) == 2
    assert "did you mean" not in capsys.readouterr().err

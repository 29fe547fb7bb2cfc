"""``litellm-canary serve``: a real gateway process with the canary, its admin API and metrics."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from litellm_canary.testing.fake_upstream import FakeUpstream
from litellm_canary.testing.gateway_process import GatewayProcess, chat_gateway_config

TOKEN = "test-token-0123456789"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    stable = FakeUpstream("stable", answer="stable answer").start()
    canary = FakeUpstream("canary", answer="canary answer").start()
    config = chat_gateway_config(
        stable,
        canary,
        {"flag_key": "chat"},
        flag_store={"kind": "flagd_file", "path": str(tmp_path_factory.mktemp("flags") / "flags.json")},
    )
    with GatewayProcess(tmp_path_factory.mktemp("gateway"), config, TOKEN) as process:
        yield process
    stable.stop()
    canary.stop()


def test_chat_admin_and_metrics_through_a_real_gateway(gateway: GatewayProcess) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused")
    reply = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "stable answer"
    stream = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == "stable answer"

    assert httpx.get(f"{gateway.url}/canary/status").status_code == 401
    status = httpx.get(f"{gateway.url}/canary/status", headers=gateway.headers).json()
    assert status["groups"]["chat"]["state"] == "armed"
    rollback = httpx.post(
        f"{gateway.url}/canary/rollback",
        headers=gateway.headers,
        json={"model_group": "chat", "reason": "test"},
    )
    assert rollback.status_code == 200 and rollback.json()["reason"] == "test"
    assert httpx.post(
        f"{gateway.url}/canary/rearm", headers=gateway.headers, json={"model_group": "chat"}
    ).json() == {
        "model_group": "chat",
        "rearmed": True,
    }
    metrics = httpx.get(f"{gateway.url}/metrics/").text
    assert 'litellm_canary_attempts_total{deployment="chat-stable"' in metrics


def test_bad_chat_requests_get_clear_errors(gateway: GatewayProcess) -> None:
    bad = httpx.post(f"{gateway.url}/v1/chat/completions", content=b"{nope")
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
    missing = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "chat"})
    assert missing.status_code == 400 and "'messages'" in missing.json()["error"]["message"]


def test_serve_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "model_list: [{model_name: chat, litellm_params: {model: openai/x, api_key: k, mock_response: hi},"
        " model_info: {id: a}}, {model_name: chat, litellm_params: {model: openai/x, api_key: k,"
        " mock_response: hi}, model_info: {id: b}}]\n"
        "litellm_canary: {rollouts: [{model_group: chat, stable: [a], canary: [b], flag_key: f}]}\n"
    )
    env = {"PATH": "/usr/bin:/bin", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    result = subprocess.run(
        [sys.executable, "-m", "litellm_canary.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2 and "LITELLM_CANARY_TOKEN" in result.stderr

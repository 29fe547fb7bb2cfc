"""``litellm-canary bench switch --url``: against two real ``litellm-canary serve`` gateways and one
real ``litellm --config`` proxy with the canary callback, all sharing one flagd flag file, on fake
upstreams. The bench runs as a process (as a user runs it); each test leaves the fleet armed at the
30 % canary it starts from.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from litellm_canary.testing.fake_upstream import FakeUpstream
from litellm_canary.testing.gateway_process import GatewayProcess, chat_gateway_config, wait_until
from tests.support.helpers import chat_rollout
from tests.support.proxy_process import ProxyProcess

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

START_PERCENT = 30.0


class Fleet:
    def __init__(self, directory: Path) -> None:
        self.token = secrets.token_urlsafe(24)
        # streams of ~10 chunks 20 ms apart: a flip always lands on some of them
        answer = "a streamed answer of ten words from the fake upstream"
        self.stable = FakeUpstream("stable", answer=f"stable: {answer}").start()
        self.canary = FakeUpstream("canary", answer=f"canary: {answer}").start()
        for upstream in (self.stable, self.canary):
            upstream.set_faults(chunk_delay_s=0.02)
        flags = {"kind": "flagd_file", "path": str(directory / "flags.json"), "poll_ms": 50}
        self.gateways = [
            GatewayProcess(
                directory, chat_gateway_config(self.stable, self.canary, flag_store=flags), self.token
            )
            for _ in range(2)
        ]
        proxy_config = {
            "model_list": [
                self.stable.deployment("chat", "chat-stable"),
                self.canary.deployment("chat", "chat-canary"),
            ],
            "litellm_settings": {"callbacks": ["litellm_canary.proxy.canary"]},
            "router_settings": {"num_retries": 0},
            "litellm_canary": {"flag_store": flags, "rollouts": [chat_rollout()]},
        }
        self.proxy = ProxyProcess(directory, proxy_config, self.token, "bench")

    @property
    def admin_urls(self) -> list[str]:
        return [g.url for g in self.gateways] + [f"{self.proxy.url}/litellm-canary"]

    @property
    def urls(self) -> list[str]:
        return [g.url for g in self.gateways] + [self.proxy.url]

    def admin(self, admin_url: str, route: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is None:
            response = httpx.get(f"{admin_url}{route}", headers=headers, timeout=10)
        else:
            response = httpx.post(f"{admin_url}{route}", headers=headers, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def group(self, admin_url: str) -> dict[str, Any]:
        group: dict[str, Any] = self.admin(admin_url, "/canary/status")["groups"]["chat"]
        return group

    def reset(self) -> None:
        """Every member armed, the flag at the starting 30 % canary."""
        for url in self.admin_urls:
            self.admin(url, "/canary/rearm", {"model_group": "chat"})
        self.admin(self.admin_urls[0], "/canary/percent", {"model_group": "chat", "percent": START_PERCENT})

    def assert_as_found(self) -> None:
        for url in self.admin_urls:
            group = self.group(url)
            assert (group["state"], group["canary_percent"]) == ("armed", START_PERCENT), url

    def bench(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "litellm_canary.cli", "bench", "switch", *args]

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LITELLM_CANARY_TOKEN": self.token,
            "LITELLM_API_KEY": self.proxy.master_key,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }

    def stop(self) -> None:
        self.proxy.stop()
        for gateway in self.gateways:
            gateway.stop()
        self.stable.stop()
        self.canary.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    setup = Fleet(tmp_path_factory.mktemp("bench-url"))
    try:
        setup.proxy.start()
        for gateway in setup.gateways:
            gateway.start()
        setup.proxy.wait_ready()
        yield setup
    finally:
        setup.stop()


@pytest.fixture
def armed(fleet: Fleet) -> Fleet:
    fleet.reset()
    return fleet


def url_args(fleet: Fleet) -> list[str]:
    return [arg for url in fleet.urls for arg in ("--url", url)]


@pytest.mark.parametrize(("via", "rollback_to"), [("admin", "first"), ("webhook", "all")])
def test_bench_switch_measures_two_gateways_and_a_proxy_and_restores_the_state(
    armed: Fleet, via: str, rollback_to: str
) -> None:
    done = subprocess.run(
        armed.bench(
            *url_args(armed),
            *("--group", "chat", "--clients", "6", "--flips", "3"),
            *("--via", via, "--rollback-to", rollback_to, "--json"),
        ),
        capture_output=True,
        text=True,
        env=armed.env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["flips"] == 3 and result["via"] == via
    assert result["admin_urls"] == armed.admin_urls  # the proxy's mount path was found
    assert result["restore_timeouts"] == 0 and result["restored_ms_max"] is not None
    assert result["canary_after_latch"] == 0, result["canary_after_switch_detail"]
    assert result["canary_after_switch"] == 0, result["canary_after_switch_detail"]
    assert result["inflight_at_flip"] > 0  # flips landed on running canary streams ...
    assert result["inflight_failed"] == 0 and result["inflight_cut"] == 0  # ... and they all finished
    assert result["inflight_completed"] == result["inflight_at_flip"]
    assert result["canary_back_timeouts"] == 0
    for url, gateway in zip(armed.urls, result["requests_per_gateway"].values(), strict=True):
        # both kinds of request through every member, both sides served, every one classified
        assert gateway["streaming"] > 0 and gateway["total"] > gateway["streaming"], url
        assert gateway["stable"] > 0 and gateway["canary"] > 0, url
        assert gateway["unknown_deployment"] == 0 and gateway["failed"] == 0, url
    assert result["state_found"][0] == {"url": armed.urls[0], "rolled_back": False, "canary_percent": 30.0}
    assert all(state.startswith("armed, 30 % canary") for state in result["restored"].values())
    armed.assert_as_found()
    called = armed.admin_urls if rollback_to == "all" else armed.admin_urls[:1]
    for url in called:  # the rollbacks came the way asked, to the members asked
        last = armed.group(url)["last_rollback"]
        assert last["kind"] == ("alert" if via == "webhook" else "manual"), url
    assert [g["got_the_rollback"] for g in result["gateways"]] == [u in called for u in armed.admin_urls]


def test_ctrl_c_restores_the_state_found(armed: Fleet) -> None:
    before = armed.group(armed.admin_urls[0])["last_rollback"]
    bench = subprocess.Popen(
        armed.bench(*url_args(armed), "--group", "chat", "--clients", "4", "--flips", "100000", "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=armed.env,
    )
    try:

        def flipping() -> bool:  # a new bench rollback happened: the run is in its flips
            last = armed.group(armed.admin_urls[0])["last_rollback"]
            new = last is not None and last["decided_at"] != (before or {}).get("decided_at")
            return new and "bench switch" in last["reason"]

        wait_until(flipping, 120, what="the bench's first rollback")
        bench.send_signal(signal.SIGINT)
        stdout, stderr = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 130, stderr[-3000:]
    assert "interrupted after" in stderr
    result = json.loads(stdout)
    assert result["interrupted"] is True and result["flips"] < 100000
    armed.assert_as_found()


def test_a_group_rolled_back_somewhere_is_refused_unless_rearm_first(armed: Fleet) -> None:
    armed.admin(armed.admin_urls[2], "/canary/rollback", {"model_group": "chat", "reason": "test"})
    refused = subprocess.run(
        armed.bench(*url_args(armed), "--group", "chat", "--flips", "1"),
        capture_output=True,
        text=True,
        env=armed.env,
        timeout=120,
    )
    assert refused.returncode == 2
    assert "rolled back on" in refused.stderr and armed.urls[2] in refused.stderr
    assert armed.group(armed.admin_urls[2])["state"] == "rolled_back"  # untouched

    done = subprocess.run(
        armed.bench(*url_args(armed), "--group", "chat", "--flips", "1", "--rearm-first", "--json"),
        capture_output=True,
        text=True,
        env=armed.env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["canary_after_latch"] == 0
    # the state found is back: the proxy rolled back (so the shared flag serves stable)
    assert armed.group(armed.admin_urls[2])["state"] == "rolled_back"
    assert armed.group(armed.admin_urls[0])["canary_percent"] == 0.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group", "embed"], "'embed' is not managed"),
        (["--group", "chat", "--model", "other"], "model 'other'"),
        (["--group", "chat", "--admin-path", "/nowhere"], "no litellm-canary admin API found"),
    ],
)
def test_what_cannot_be_measured_is_refused_with_exit_status_2(
    armed: Fleet, args: list[str], message: str
) -> None:
    done = subprocess.run(
        armed.bench(*url_args(armed), *args), capture_output=True, text=True, env=armed.env, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    armed.assert_as_found()


@pytest.mark.parametrize("stream", [False, True])
def test_gateways_and_the_proxy_name_the_served_deployment_in_a_header(armed: Fleet, stream: bool) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    headers = {"Authorization": f"Bearer {armed.proxy.master_key}"}
    for url in armed.urls:
        with httpx.stream(
            "POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30
        ) as answer:
            assert answer.status_code == 200, url
            assert answer.headers.get("x-litellm-model-id") in ("chat-stable", "chat-canary"), url
            answer.read()

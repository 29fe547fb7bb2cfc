"""docs/runbook.md: every ``$`` command in it runs, in order, against a real gateway process and
against the example LiteLLM proxy config in a real proxy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from litellm_canary.response.incidents import IncidentStore
from litellm_canary.testing.fake_upstream import FakeUpstream
from litellm_canary.testing.gateway_process import (
    GatewayProcess,
    GatewayTraffic,
    chat_gateway_config,
    free_port,
)
from tests.support import REPO
from tests.support.proxy_process import ProxyProcess

RUNBOOK = REPO / "docs" / "runbook.md"
EXAMPLE_PROXY = REPO / "examples" / "proxy" / "config.yaml"
FAST_TRIGGERS = {"error_rate": {"min_requests": 3}, "ttft_p99": {"min_requests": 3}}
TOKEN = "runbook-token"


def runbook_commands() -> list[str]:
    """The ``$ `` lines of the runbook's console blocks, in order."""
    blocks = re.findall(r"```console\n(.*?)```", RUNBOOK.read_text(), flags=re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def test_the_runbook_lists_the_operations_it_promises() -> None:
    commands = [" ".join(command.split()[:2]) for command in runbook_commands()]
    for operation in ("rollback", "status", "incidents", "rearm", "drill"):
        assert f"litellm-canary {operation}" in commands


def test_every_runbook_command_works_against_a_running_gateway(tmp_path: Path) -> None:
    stable = FakeUpstream("stable", answer="fine").start()
    canary = FakeUpstream("canary", answer="fine").start()
    incidents = tmp_path / "incidents"
    port = free_port()
    config = chat_gateway_config(
        stable,
        canary,
        {"verify_within_s": 8.0, "triggers": FAST_TRIGGERS},
        flag_store={"kind": "flagd_file", "path": str(tmp_path / "flags.json")},
        incidents={"dir": str(incidents)},
    )
    config["gateway"] = {"port": port}
    gateway = GatewayProcess(tmp_path, config, TOKEN, port=port).start()
    admin = Admin(gateway.url, gateway.headers)
    try:
        with GatewayTraffic(gateway.url):  # the verifier and the live drill need stable traffic
            run_the_runbook(admin, gateway.config_path, incidents)
    finally:
        gateway.stop()
        stable.stop()
        canary.stop()


def test_every_runbook_command_works_against_the_example_proxy_as_written(tmp_path: Path) -> None:
    """``examples/proxy/config.yaml``, copied byte for byte, in a real ``litellm --config`` proxy on
    the ports it names: fake upstreams on 8101/8102 and the proxy on 4000, where the live drill's
    default admin URL (config host/port plus ``proxy.mount_path``) finds it."""
    stable = FakeUpstream("stable", answer="fine", port=8101).start()
    canary = FakeUpstream("canary", answer="fine", port=8102).start()
    proxy = ProxyProcess(tmp_path, EXAMPLE_PROXY.read_text(), TOKEN, "runbook", port=4000)
    admin = Admin(f"{proxy.url}/litellm-canary", {"Authorization": f"Bearer {TOKEN}"})
    try:
        proxy.start().wait_ready()
        traffic = GatewayTraffic(proxy.url, {"Authorization": f"Bearer {proxy.master_key}"})
        with traffic:
            run_the_runbook(admin, proxy.config_path, tmp_path / ".state" / "incidents")
        assert traffic.sent > 0
    finally:
        proxy.stop()
        stable.stop()
        canary.stop()


class Admin:
    """Where a runbook's ``$GATEWAY`` points, and the admin headers."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers

    def status(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/canary/status", headers=self.headers, timeout=10)
        group: dict[str, Any] = answer.json()["groups"]["chat"]
        return group


def run_the_runbook(admin: Admin, config: Path, incidents: Path) -> None:
    """Every ``$`` command of the runbook, in order, each checked for what the runbook says it does."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GATEWAY": admin.url,
        "CONFIG": str(config),
        "LITELLM_CANARY_TOKEN": TOKEN,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    for command in runbook_commands():
        if " incidents show " in command or " incidents annotate " in command:
            env["INCIDENT"] = IncidentStore(incidents).list()[0].id
        done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        _check_effect(command, done.stdout, admin, incidents)


def _check_effect(command: str, output: str, admin: Admin, incidents: Path) -> None:
    """What the runbook says each command does, checked on the gateway and the files."""
    words = command.split()
    operation = " ".join(words[1:3]) if words[1] == "incidents" else words[1]
    if operation == "rollback":
        assert admin.status()["state"] == "rolled_back"
    elif operation == "status" and "--url" in words:
        assert output.startswith(
            "chat: rolled_back: new requests go to stable (latched); flag store written stable"
        )
        assert "last rollback: manual" in output and "verification:" in output
    elif operation == "status":
        assert "-> serving stable" in output
    elif operation == "incidents list":
        assert output.split()[0] == IncidentStore(incidents).list()[0].id
    elif operation == "incidents show":
        assert "canary 5xx spike" in output
    elif operation == "incidents annotate":
        incident = IncidentStore(incidents).list()[0]
        assert incident.annotated
    elif operation == "rearm":
        assert admin.status()["state"] == "armed"
    elif operation == "drill":
        report = json.loads(output)
        assert report["passed"] is True, report
        assert report["canary_requests_after_flip"] == 0 and report["inflight_failed"] == 0
        if "--live" in words:
            assert report["mode"] == "live" and admin.status()["state"] == "armed"

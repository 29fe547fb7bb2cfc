"""The rollback drill through its CLI entry: every fault offline, and --live against a real gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from litellm_canary import cli
from litellm_canary.response.drill_report import STANDARDS, finish_report
from litellm_canary.response.incidents import IncidentStore
from litellm_canary.testing.fake_upstream import FakeUpstream
from litellm_canary.testing.gateway_process import GatewayProcess, GatewayTraffic, chat_gateway_config

KEYS = {
    "fault",
    "trigger",
    "detect_s",
    "decision_to_restored_ms",
    "canary_requests_after_flip",
    "inflight_at_flip",
    "inflight_completed",
    "inflight_failed",
    "verification",
    "incident_path",
}
TRIGGERS = {
    "errors": {"fast_fail", "error_rate", "cooldown"},
    "slow-ttft": {"ttft_p99"},
    "bad-answers": {"eval_score"},
}
FAST_TRIGGERS = {"error_rate": {"min_requests": 3}, "ttft_p99": {"min_requests": 3}}
TOKEN = "drill-test-token"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(list(argv))
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0, f"one JSON object on stdout, got: {out[:500]}"
    return code, json.loads(out)


@pytest.mark.parametrize("fault", ["errors", "slow-ttft", "bad-answers"])
def test_offline_drill_meets_the_standards(
    fault: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _run(capsys, "drill", "--json", "--fault", fault, "--dir", str(tmp_path))
    assert set(report) >= KEYS
    assert code == 0 and report["passed"] is True and report["missed"] == []
    assert report["fault"] == fault and report["trigger"] in TRIGGERS[fault]
    assert report["detect_s"] > 0
    assert 0 <= report["decision_to_restored_ms"] < 60_000
    assert report["canary_requests_after_flip"] == 0
    assert report["inflight_at_flip"] >= 1  # held canary streams crossed the flip...
    assert report["inflight_completed"] == report["inflight_at_flip"]  # ...and all finished
    assert report["inflight_failed"] == 0
    verification = report["verification"]
    assert verification["verdict"] == "recovered"
    assert {name: c["state"] for name, c in verification["checks"].items()} == {
        "error_rate": "passed",
        "ttft_p99": "passed",
        "golden": "passed",
    }
    incident_path = Path(report["incident_path"])
    assert incident_path.parent == tmp_path and incident_path.is_file()
    incident = IncidentStore(tmp_path).get(incident_path.stem)
    assert incident.kind == "drill" and incident.drill is not None
    assert incident.drill["passed"] is True and incident.drill["fault"] == fault
    assert incident.verification is not None and incident.verification["verdict"] == "recovered"
    assert incident.event("canary_drained") is not None


def test_a_missed_standard_fails_the_drill() -> None:
    good: dict[str, Any] = {
        "decision_to_restored_ms": 0.01,
        "canary_requests_after_flip": 0,
        "inflight_failed": 0,
        "verification": {"verdict": "recovered"},
    }
    assert finish_report(dict(good))["passed"] is True
    for key, bad in (
        ("decision_to_restored_ms", 60_000.0),
        ("canary_requests_after_flip", 1),
        ("inflight_failed", 1),
        ("verification", {"verdict": "insufficient_data"}),
    ):
        report = finish_report({**good, key: bad})
        assert report["passed"] is False and report["missed"] == [STANDARDS[key]]


def test_drill_arguments_are_checked(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["drill", "--live"]) == 2
    assert "--live needs --config" in capsys.readouterr().err
    assert cli.main(["drill", "--rearm"]) == 2
    assert "go with --live" in capsys.readouterr().err
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "model_list: [{model_name: chat, litellm_params: {model: openai/x}, model_info: {id: s}},"
        " {model_name: chat, litellm_params: {model: openai/x}, model_info: {id: c}}]\n"
        "litellm_canary: {rollouts: [{model_group: chat, stable: [s], canary: [c], flag_key: f}]}\n"
    )
    assert cli.main(["drill", "--live", "--config", str(config)]) == 2
    assert "--live needs 'incidents" in capsys.readouterr().err


@pytest.fixture
def gateway(tmp_path: Path) -> Any:
    stable = FakeUpstream("stable", answer="fine").start()
    canary = FakeUpstream("canary", answer="fine").start()
    incidents = tmp_path / "incidents"
    config = chat_gateway_config(
        stable,
        canary,
        {"verify_within_s": 8.0, "triggers": FAST_TRIGGERS},
        flag_store={"kind": "memory"},
        incidents={"dir": str(incidents)},
    )
    process = GatewayProcess(tmp_path, config, TOKEN).start()
    try:
        yield process, incidents
    finally:
        process.stop()
        stable.stop()
        canary.stop()


def test_live_drill_against_a_running_gateway(
    gateway: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    process, incidents = gateway
    monkeypatch.setenv("LITELLM_CANARY_TOKEN", TOKEN)
    argv = ["drill", "--json", "--live", "--config", str(process.config_path), "--url", process.url]

    # No traffic at all: verification cannot tell, so the drill misses a standard (exit 1).
    code, idle = _run(capsys, *argv, "--rearm")
    assert code == 1 and idle["passed"] is False
    assert idle["verification"]["verdict"] == "insufficient_data"
    assert idle["rearmed"] is True and idle["trigger"] == "alert"

    with GatewayTraffic(process.url):
        code, report = _run(capsys, *argv)
    assert code == 0, report
    assert set(report) >= KEYS and report["mode"] == "live"
    assert report["decision_to_restored_ms"] < 60_000
    assert report["canary_requests_after_flip"] == 0 and report["inflight_failed"] == 0
    assert report["verification"]["verdict"] == "recovered"
    assert report["rearmed"] is False
    incident = IncidentStore(incidents).get(Path(report["incident_path"]).stem)
    assert incident.kind == "drill" and incident.drill is not None and incident.drill["passed"] is True

    status = httpx.get(f"{process.url}/canary/status", headers=process.headers).json()["groups"]["chat"]
    assert status["state"] == "rolled_back"  # not re-armed without --rearm
    assert status["drill"]["incident_id"] == incident.id and status["drill"]["result"] == "passed"
    assert status["drill"]["drill_overdue"] is False

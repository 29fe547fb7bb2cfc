"""The litellm-canary command line, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagdFileStore


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "litellm_canary.cli", *args], capture_output=True, text=True, timeout=60
    )


def _config(tmp_path: Path, flag_file: Path) -> Path:
    path = tmp_path / "canary.yaml"
    path.write_text(
        "rollouts:\n"
        "  - model_group: chat\n"
        "    stable: [chat-stable]\n"
        "    canary: [chat-canary]\n"
        "    flag_key: chat-canary\n"
        "  - model_group: embed\n"
        "    stable: [embed-stable]\n"
        "    canary: [embed-canary]\n"
        "    flag_key: embed-canary\n"
        f"flag_store: {{kind: flagd_file, path: {flag_file}}}\n"
    )
    return path


def test_status_reports_what_the_flag_file_serves(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    store = FlagdFileStore(flags)
    store.set_canary_percent("chat-canary", 12.5)
    store.set_side("embed-canary", Side.CANARY)
    result = _run("status", "--config", str(_config(tmp_path, flags)), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rollouts"][0]["flag"] == {"serving": "percentage", "canary_percent": 12.5}
    assert report["rollouts"][1]["flag"] == {"serving": "canary"}
    text = _run("status", "--config", str(_config(tmp_path, flags))).stdout
    assert "chat: flag 'chat-canary'" in text and "-> serving 12.5 % canary" in text


def test_status_of_a_missing_flag(tmp_path: Path) -> None:
    result = _run("status", "--config", str(_config(tmp_path, tmp_path / "absent.json")), "--json")
    assert json.loads(result.stdout)["rollouts"][0]["flag"]["serving"] == "stable"


def test_bad_inputs_get_one_clear_line(tmp_path: Path) -> None:
    missing = _run("status", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read config file" in missing.stderr

    invalid = tmp_path / "bad.yaml"
    invalid.write_text("rollouts:\n  - model_group: chat\n    stable: []\n")
    result = _run("status", "--config", str(invalid))
    assert result.returncode == 2 and "rollouts[0].stable" in result.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text("rollouts: [unclosed\n")
    assert "is not valid YAML" in _run("status", "--config", str(broken)).stderr

    flags = tmp_path / "flags.json"
    flags.write_text("{not json")
    result = _run("status", "--config", str(_config(tmp_path, flags)))
    assert result.returncode == 2 and "cannot read flag file" in result.stderr

    usage = _run("status")
    assert usage.returncode == 2 and "--config" in usage.stderr


def test_rules_prints_a_rule_file_and_an_alertmanager_route(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "flags.json")
    rules = _run("rules", "--config", str(config), "--time-scale", "10")
    assert rules.returncode == 0, rules.stderr
    document = yaml.safe_load(rules.stdout)
    alerts = [r["alert"] for group in document["groups"] for r in group["rules"] if "alert" in r]
    assert "LitellmCanaryErrorRate" in alerts and "LitellmCanaryFastFail" in alerts
    token = tmp_path / "token"
    token.write_text("secret")
    route = _run(
        "rules",
        "--config",
        str(config),
        "--alertmanager",
        "--webhook-url",
        "http://127.0.0.1:4000/alertmanager",
        "--token-file",
        str(token),
    )
    assert route.returncode == 0, route.stderr
    receivers = yaml.safe_load(route.stdout)["receivers"]
    assert any("webhook_configs" in r for r in receivers)


def test_rules_refuses_bad_arguments(tmp_path: Path) -> None:
    config = str(_config(tmp_path, tmp_path / "flags.json"))
    assert "needs --webhook-url" in _run("rules", "--config", config, "--alertmanager").stderr
    bad_url = _run(
        "rules", "--config", config, "--alertmanager", "--webhook-url", "ftp://x", "--token-file", "t"
    )
    assert bad_url.returncode == 2 and "http(s) URL" in bad_url.stderr
    assert "--time-scale must be > 0" in _run("rules", "--config", config, "--time-scale", "0").stderr


def test_rules_refuse_a_window_shorter_than_two_scrapes(tmp_path: Path) -> None:
    config = str(_config(tmp_path, tmp_path / "flags.json"))
    result = _run("rules", "--config", config, "--time-scale", "30", "--scrape-interval", "1")
    assert result.returncode == 2 and "shorter than two scrape intervals" in result.stderr
    assert _run("rules", "--config", config, "--time-scale", "2", "--scrape-interval", "1").returncode == 0

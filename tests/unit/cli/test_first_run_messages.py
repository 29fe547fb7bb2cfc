"""Issue 13 §3 items 6 and 10: what a first run prints reads as advice for a CLI user."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from litellm_canary import cli
from tests.support import REPO

GATEWAY = (
    "model_list: [{model_name: chat, litellm_params: {model: openai/x}, model_info: {id: s}},"
    " {model_name: chat, litellm_params: {model: openai/x}, model_info: {id: c}}]\n"
    "litellm_canary: {rollouts: [{model_group: chat, stable: [s], canary: [c], flag_key: chat}]}\n"
)


def test_serve_without_a_token_says_so_in_one_cli_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("uvicorn")
    config = tmp_path / "gateway.yaml"
    config.write_text(GATEWAY)
    monkeypatch.delenv("LITELLM_CANARY_TOKEN", raising=False)
    assert cli.main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "set $LITELLM_CANARY_TOKEN" in err and "openssl rand" in err
    assert "token=" not in err  # no Python keyword argument hint for a CLI user


def test_serve_names_the_configured_token_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("uvicorn")
    config = tmp_path / "gateway.yaml"
    config.write_text(GATEWAY + "gateway: {token_env: MY_ADMIN_TOKEN}\n")
    monkeypatch.delenv("MY_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("LITELLM_CANARY_TOKEN", raising=False)
    assert cli.main(["serve", "--config", str(config)]) == 2
    assert "set $MY_ADMIN_TOKEN" in capsys.readouterr().err


def test_quickstart_says_the_percentage_is_of_users() -> None:
    source = (REPO / "examples" / "quickstart.py").read_text()
    printed = " ".join(
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )
    assert "10 % of users (sticky" in printed and "request share varies" in printed

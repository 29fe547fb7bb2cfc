"""The one dispatch: every subcommand is on the parser; CliError and ConfigError are one stderr line."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from litellm_canary import cli
from litellm_canary.cli.dispatch import build_parser
from litellm_canary.cli.errors import CliError


def test_every_subcommand_is_on_the_parser() -> None:
    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(commands.choices) == [
        "status",
        "serve",
        "rules",
        "dashboard",
        "promote",
        "rollback",
        "rearm",
        "incidents",
        "drill",
        "bench",
    ]


def test_cli_error_is_one_line_with_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def refuse(args: argparse.Namespace) -> int:
        raise CliError("no can do", 7)

    parser = build_parser()
    original = parser.parse_args

    def parse(argv: list[str] | None = None) -> argparse.Namespace:
        args = original(argv)
        args.run = refuse
        return args

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr("litellm_canary.cli.dispatch.build_parser", lambda: parser)
    assert cli.main(["status", "--config", str(tmp_path / "x.yaml")]) == 7
    assert capsys.readouterr().err == "litellm-canary: no can do\n"


def test_config_error_is_exit_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("litellm-canary: ") and err.count("\n") == 1


def test_python_dash_m_runs_the_dispatch() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "litellm_canary.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.startswith("usage: litellm-canary")

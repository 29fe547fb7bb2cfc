"""``litellm-canary bench``: bad arguments are one stderr line and exit status 2, before any run."""

from __future__ import annotations

import pytest

from litellm_canary.cli import main


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["bench", "switch"], "--offline"),
        (["bench", "switch", "--offline", "--clients", "0"], "clients must be positive"),
        (["bench", "switch", "--offline", "--flips", "-3"], "flips must be positive"),
        (["bench", "switch", "--offline", "--think-ms", "-1"], "think_ms must not be negative"),
        (["bench", "overhead", "--iterations", "0"], "iterations must be positive"),
        (["bench", "proxy", "--clients", "0"], "clients must be positive"),
        (["bench", "proxy", "--rounds", "0"], "rounds must be positive"),
        (["bench", "proxy", "--flips", "-1"], "flips must not be negative"),
        (
            ["bench", "proxy", "--schedule", "sideways"],
            "schedule must be one of paired, alternating, got 'sideways'",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("litellm-canary: bench ")
    assert named in captured.err
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["bench"],
        ["bench", "latency"],
        ["bench", "switch", "--offline", "--clients", "many"],
        ["bench", "overhead", "--url", "http://x"],
    ],
)
def test_argparse_refuses_an_unknown_kind_or_a_malformed_value(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: litellm-canary") and "error: " in err

"""``bench switch --url``: argument errors are one stderr line and exit status 2 before anything is
called; an unreachable gateway is exit status 1 and changes nothing."""

from __future__ import annotations

import pytest

from litellm_canary.cli import main
from litellm_canary.testing.gateway_process import free_port

URL = "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--url", URL], "--url needs --group"),
        (["--url", URL, "--group", " "], "--url needs --group"),
        (["--url", "ftp://host", "--group", "chat"], "--url must be an http(s) URL"),
        (["--url", "http://host:4000/?x=1", "--group", "chat"], "--url must be an http(s) URL"),
        (["--url", URL, "--url", URL + "/", "--group", "chat"], "the same gateway is given twice"),
        (["--url", URL, "--group", "chat", "--clients", "0"], "--clients must be at least 1, got 0"),
        (["--url", URL, "--group", "chat", "--flips", "-2"], "--flips must be at least 1, got -2"),
        (["--url", URL, "--group", "chat", "--timeout", "0"], "--timeout must be > 0"),
        (["--url", URL, "--group", "chat", "--quick"], "--think-ms and --quick work with --offline only"),
        (["--offline", "--group", "chat"], "--group work with --url only"),
        (["--offline", "--via", "webhook", "--rearm-first"], "--via, --rearm-first work with --url only"),
        (
            ["--url", URL, "--group", "chat", "--token-env", "BENCH_TEST_NO_SUCH_TOKEN"],
            "$BENCH_TEST_NO_SUCH_TOKEN",
        ),
    ],
)
def test_a_bad_argument_is_one_line_naming_it(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITELLM_CANARY_TOKEN", "token-for-the-test")
    assert main(["bench", "switch", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("litellm-canary: bench switch")
    assert named in captured.err
    assert captured.err.count("\n") == 1


def test_url_and_offline_together_are_refused_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", "switch", "--offline", "--url", URL])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_via_must_be_admin_or_webhook(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", "switch", "--url", URL, "--group", "chat", "--via", "email"])
    assert exited.value.code == 2
    assert "invalid choice: 'email'" in capsys.readouterr().err


def test_an_unreachable_gateway_is_exit_status_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITELLM_CANARY_TOKEN", "token-for-the-test")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["bench", "switch", "--url", url, "--group", "chat", "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"litellm-canary: bench switch: cannot reach {url}")

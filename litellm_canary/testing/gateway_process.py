"""Start ``litellm-canary serve`` as a real process for tests, and stop it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import yaml

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[Any] | None, grace_s: float = 10) -> None:
    """Terminate ``process`` if it still runs; kill it after ``grace_s``."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def watch_output(process: subprocess.Popen[str], marker: str) -> tuple[threading.Event, list[str]]:
    """Read ``process``'s stdout on a thread; the event is set when a line contains ``marker`` (the
    process says it is ready) or the output ends (it exited: the caller reports the collected lines)."""
    ready = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if marker in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    return ready, lines


def wait_until(
    predicate: Callable[[], T | None], timeout: float, *, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll ``predicate`` every ``interval`` s until it returns a truthy value, and return that value.

    Raises ``TimeoutError`` naming ``what`` (and the last HTTP error, if any) when ``timeout`` s pass
    first. HTTP and OS errors of the predicate (a server still starting) count as "not yet"; any other
    exception (say, a daemon that died) propagates at once.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
        except (httpx.HTTPError, OSError) as error:  # e.g. connection refused while a server starts
            value, last_error = None, error
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)


def chat_gateway_config(
    stable: Any, canary: Any, rollout: dict[str, Any] | None = None, **canary_config: Any
) -> dict[str, Any]:
    """A gateway file for model group ``chat``: one ``stable`` and one ``canary`` FakeUpstream, the
    rollout (``chat_rollout`` plus ``rollout``) and the rest of the canary config."""
    from tests.support.helpers import chat_rollout

    return {
        "model_list": [stable.deployment("chat", "chat-stable"), canary.deployment("chat", "chat-canary")],
        "router_settings": {"num_retries": 0},
        "litellm_canary": {"rollouts": [chat_rollout(**(rollout or {}))], **canary_config},
    }


class GatewayProcess:
    """``litellm-canary serve --config`` on 127.0.0.1; ready once uvicorn says it is running."""

    def __init__(self, directory: Path, config: dict[str, Any], token: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.config_path = directory / f"gateway-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log: list[str] = []
        self._process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60) -> GatewayProcess:
        env = {**os.environ, "LITELLM_CANARY_TOKEN": self.token, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "litellm_canary.cli",
                "serve",
                "--config",
                str(self.config_path),
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        ready, self.log = watch_output(self._process, "Uvicorn running on")
        if not ready.wait(timeout) or self._process.poll() is not None:
            self.stop()
            raise RuntimeError("gateway did not start:\n" + "".join(self.log[-40:]))
        return self

    def stop(self) -> None:
        stop_process(self._process)

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class GatewayTraffic:
    """Requests to the gateway from a thread until stopped (the verifier needs stable traffic)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self._url = url
        self._headers = headers or {}
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self._url, headers=self._headers, timeout=10) as client:
            while not self._stop.is_set():
                client.post(
                    "/v1/chat/completions",
                    json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
                )
                self.sent += 1

    def __enter__(self) -> GatewayTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

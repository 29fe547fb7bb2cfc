"""Start ``litellm-canary serve`` as a real process for tests, and stop it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayProcess:
    """``litellm-canary serve --config`` on 127.0.0.1; ready once uvicorn says it is running."""

    def __init__(self, directory: Path, config: dict[str, Any], token: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.config_path = directory / f"gateway-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log: list[str] = []
        self._ready = threading.Event()
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
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("gateway did not start:\n" + "".join(self.log[-40:]))
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self.log.append(line)
            if "Uvicorn running on" in line:
                self._ready.set()
        self._ready.set()  # the process ended; start() reports the log

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

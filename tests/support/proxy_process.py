"""Start real ``litellm --config`` proxy processes (offline, loopback) for tests, and stop them."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import yaml

from litellm_canary.testing.gateway_process import free_port, stop_process, wait_until

LITELLM = str(Path(sys.executable).with_name("litellm"))


class ProxyProcess:
    """One ``litellm --config FILE --host 127.0.0.1 --port PORT`` process; ``start()`` does not wait,
    ``wait_ready()`` polls ``/health/liveliness`` until it answers 200 (or the process dies)."""

    def __init__(
        self,
        directory: Path,
        config: dict[str, Any] | str,
        token: str,
        name: str,
        master_key: str | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.master_key = master_key or "sk-" + secrets.token_hex(16)
        self.name = name
        self.config_path = directory / f"proxy-{name}.yaml"
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        self.config_path.write_text(text)  # a string is a config file's text, written as it is
        self.log_path = directory / f"proxy-{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self) -> ProxyProcess:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "LITELLM_CANARY_CONFIG", "REDIS_HOST", "REDIS_URL")
        }
        env.update(
            LITELLM_MASTER_KEY=self.master_key,
            LITELLM_CANARY_TOKEN=self.token,
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_OFFLINE_MODE="true",
        )
        self._log = self.log_path.open("wb")
        command = [
            LITELLM,
            "--config",
            str(self.config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        return self

    def wait_ready(self, timeout: float = 240.0) -> ProxyProcess:
        def live() -> bool:  # the proxy says nothing we could await: ask its health route
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"proxy {self.name} exited:\n{self.log_tail()}")
            return httpx.get(f"{self.url}/health/liveliness", timeout=2.0).status_code == 200

        try:
            wait_until(live, timeout, interval=0.2, what=f"proxy {self.name} to be live")
        except TimeoutError as error:
            raise RuntimeError(f"{error}:\n{self.log_tail()}") from None
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def admin(self, method: str, path: str, token: str | None = "default", **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        return httpx.request(
            method, f"{self.url}/litellm-canary{path}", headers=headers, timeout=10.0, **kwargs
        )

    def stop(self) -> None:
        stop_process(self._process, grace_s=20)
        if self._log is not None:
            self._log.close()
            self._log = None


class ServedUpstream:
    """``python -m litellm_canary.fake_upstream`` as a process (the README's command)."""

    def __init__(self, name: str, answer: str) -> None:
        self.port = free_port()
        self.name = name
        self._ready = threading.Event()
        self.output: list[str] = []
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "litellm_canary.fake_upstream",
                "--name",
                name,
                "--answer",
                answer,
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.output.append(line)
            if "serving" in line:
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 60.0) -> ServedUpstream:
        if not self._ready.wait(timeout) or self._process.poll() is not None:
            raise RuntimeError(f"fake upstream {self.name} did not start: {''.join(self.output)}")
        return self

    def stop(self) -> int | None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self._process.returncode

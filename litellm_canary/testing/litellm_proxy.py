"""Run a real ``litellm --config`` proxy (and the bundled fake upstream) as processes, on 127.0.0.1.

This module owns :class:`LiteLLMProxy` (one proxy process: config file written to a directory,
offline environment, optional ``--num_workers``, readiness on ``/health/liveliness``, the admin API
mounted by the canary callback) and :class:`UpstreamProcess` (``python -m litellm_canary.fake_upstream``,
ready when it says so). Used by ``litellm-canary bench proxy`` and the end-to-end tests.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx
import yaml

from litellm_canary.testing.gateway_process import free_port, stop_process, wait_until, watch_output

__all__ = ["LiteLLMProxy", "UpstreamProcess", "litellm_command"]

# what a proxy must not inherit from the caller's environment (a database, a Redis, another config)
_DROPPED_ENV = ("DATABASE_URL", "LITELLM_CANARY_CONFIG", "REDIS_HOST", "REDIS_URL")


def litellm_command() -> str:
    """The ``litellm`` executable next to this Python (the same environment), else the one on PATH."""
    beside = Path(sys.executable).with_name("litellm")
    return str(beside) if beside.exists() else "litellm"


class LiteLLMProxy:
    """``litellm --config FILE --host 127.0.0.1 --port PORT [--num_workers N]``.

    ``start()`` does not wait; ``wait_ready()`` polls ``/health/liveliness`` until it answers 200 and
    raises ``RuntimeError`` with the end of the proxy's log when the process exits or never gets ready.
    """

    def __init__(
        self,
        directory: Path,
        config: dict[str, Any] | str,
        name: str,
        *,
        token: str | None = None,
        num_workers: int = 1,
        master_key: str | None = None,
        port: int | None = None,
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be positive, got {num_workers}")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = name
        self.num_workers = num_workers
        self.master_key = master_key or "sk-" + secrets.token_hex(16)
        self.token = secrets.token_urlsafe(24) if token is None else token  # "": no admin token
        self.config_path = directory / f"proxy-{name}.yaml"
        # a string is a config file's text, written as it is
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        self.config_path.write_text(text)
        self.log_path = directory / f"proxy-{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Self:
        env = {key: value for key, value in os.environ.items() if key not in _DROPPED_ENV}
        env.update(
            LITELLM_MASTER_KEY=self.master_key,
            LITELLM_CANARY_TOKEN=self.token,
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_OFFLINE_MODE="true",
        )
        command = [litellm_command(), "--config", str(self.config_path), "--host", "127.0.0.1"]
        command += ["--port", str(self.port)]
        if self.num_workers > 1:
            command += ["--num_workers", str(self.num_workers)]
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        return self

    def wait_ready(self, timeout: float = 240.0) -> Self:
        def live() -> bool:  # the proxy prints nothing we could await reliably: ask its health route
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"proxy {self.name} exited:\n{self.log_tail()}")
            return httpx.get(f"{self.url}/health/liveliness", timeout=2.0).status_code == 200

        try:
            wait_until(live, timeout, interval=0.2, what=f"proxy {self.name} to be live")
        except TimeoutError as error:
            raise RuntimeError(f"{error}:\n{self.log_tail()}") from None
        return self

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call to the canary's admin API mounted on the proxy (default mount path), with the token."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(
            method, f"{self.url}/litellm-canary{path}", headers=headers, timeout=10.0, **kwargs
        )

    def stop(self) -> None:
        stop_process(self._process, grace_s=20)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


class UpstreamProcess:
    """``python -m litellm_canary.fake_upstream --name NAME --port PORT`` (an OpenAI-compatible fake
    answering at once), in its own process so it does not share the measuring process's CPU time."""

    def __init__(self, name: str, answer: str = "ok") -> None:
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        command = [sys.executable, "-m", "litellm_canary.fake_upstream", "--name", name]
        command += ["--answer", answer, "--port", str(self.port)]
        self._process: subprocess.Popen[str] = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._ready, self._lines = watch_output(self._process, "serving")

    def wait_ready(self, timeout: float = 60.0) -> Self:
        if not self._ready.wait(timeout) or self._process.poll() is not None:
            self.stop()
            raise RuntimeError(f"fake upstream {self.name} did not start: {''.join(self._lines)[-2000:]}")
        return self

    def deployment(
        self, model_name: str, deployment_id: str, model: str = "openai/gpt-4o-mini"
    ) -> dict[str, Any]:
        """A ``model_list`` entry served by this upstream."""
        return {
            "model_name": model_name,
            "litellm_params": {"model": model, "api_base": self.base_url, "api_key": "sk-fake"},
            "model_info": {"id": deployment_id},
        }

    def stop(self) -> None:
        stop_process(self._process)

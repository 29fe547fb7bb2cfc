"""A real ``redis-server`` on a random loopback port, without persistence, for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import subprocess
from types import TracebackType

from litellm_canary.testing.gateway_process import free_port, stop_process, watch_output


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


class RedisServer:
    """``redis-server --port N --save '' --appendonly no`` on 127.0.0.1; ``stop()`` then ``start()``
    again on the same port simulates an outage (the data is gone, as after a real restart)."""

    def __init__(self, port: int | None = None) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed (run .ci/install-redis.sh)")
        self.binary = binary
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 10.0) -> RedisServer:
        process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._process = process
        ready, log = watch_output(process, "Ready to accept connections")
        if not ready.wait(timeout) or process.poll() is not None:
            self.stop()
            raise RuntimeError(f"redis-server did not start on port {self.port}:\n" + "".join(log[-20:]))
        return self

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()


def require_redis_server() -> None:
    """Skip the calling test without ``redis-server`` (fail it in CI, which installs it)."""
    from tests.support.helpers import missing_tool

    if redis_server_binary() is None:
        missing_tool("redis-server is not installed (apt-get install redis-server, or .ci/install-redis.sh)")

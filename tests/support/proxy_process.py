"""Real ``litellm --config`` proxy processes (offline, loopback) for tests: the shipped
:class:`~litellm_canary.testing.litellm_proxy.LiteLLMProxy` with the tests' admin helper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from litellm_canary.testing.litellm_proxy import LiteLLMProxy


class ProxyProcess(LiteLLMProxy):
    """:class:`LiteLLMProxy` with the tests' argument order, and an :meth:`admin` whose bearer token
    a test can replace or leave out."""

    def __init__(
        self,
        directory: Path,
        config: dict[str, Any] | str,
        token: str,
        name: str,
        master_key: str | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(directory, config, name, token=token, master_key=master_key, port=port)

    def admin(self, method: str, path: str, token: str | None = "default", **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        return httpx.request(
            method, f"{self.url}/litellm-canary{path}", headers=headers, timeout=10.0, **kwargs
        )

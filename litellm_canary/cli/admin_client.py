"""Calling a running gateway's admin API from the command line: the bearer token and one request.

Used by ``status --url``, ``rollback --url`` and ``rearm --url``. Bad input (no token, 400/401/404)
is a :class:`CliError` with exit status 2; a gateway that cannot be reached or fails is status 1.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from litellm_canary.cli.errors import FAILED_ON_THE_WAY, CliError
from litellm_canary.integrations.mount_hint import mount_path_hint

__all__ = ["TOKEN_ENV", "admin_request", "read_token"]

TOKEN_ENV = "LITELLM_CANARY_TOKEN"


def read_token(token_file: str | None) -> str:
    """The bearer token from ``--token-file``, else from ``$LITELLM_CANARY_TOKEN``."""
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as error:
            raise CliError(f"cannot read --token-file {token_file}: {error.strerror}") from None
        if not token:
            raise CliError(f"--token-file {token_file} is empty")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise CliError(f"--url needs a bearer token: pass --token-file FILE or set ${TOKEN_ENV}")
    return token


def admin_request(url: str, token: str, timeout: float, body: dict[str, Any] | None = None) -> Any:
    """Call a gateway admin route (POST with ``body``, else GET); its JSON answer, or CliError."""
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = _error_body(error)
        detail = str(body.get("error", body)) if isinstance(body, dict) else str(body)
        if error.code == 401:
            raise CliError(f"{url}: the gateway refused the token (401): {detail}") from None
        if error.code in (400, 404):
            hint = mount_path_hint(url, body) if error.code == 404 else ""
            raise CliError(f"{url}: {detail} ({error.code}){hint}") from None
        raise CliError(f"{url}: the gateway answered {error.code}: {detail}", FAILED_ON_THE_WAY) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise CliError(f"cannot reach {url}: {reason}", FAILED_ON_THE_WAY) from None
    except ValueError as error:
        raise CliError(f"{url}: the answer is not JSON: {error}", FAILED_ON_THE_WAY) from None


def _error_body(error: urllib.error.HTTPError) -> Any:
    try:
        return json.loads(error.read())
    except (ValueError, OSError):
        return str(error.reason)

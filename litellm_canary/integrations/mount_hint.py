"""The hint for a 404 at a LiteLLM proxy's root: the admin API lives under ``proxy.mount_path``.

``rollback --url http://127.0.0.1:4000`` reaches the proxy itself, whose FastAPI answers
``{"detail": "Not Found"}``; the user most likely meant ``http://127.0.0.1:4000/litellm-canary``.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MOUNT_PATH", "mount_path_hint"]

DEFAULT_MOUNT_PATH = "/litellm-canary"


def mount_path_hint(url: str, detail: object) -> str:
    """`` (did you mean <base>/litellm-canary?)`` when ``url`` 404'd as an unknown route, else ""."""
    if not (isinstance(detail, dict) and detail.get("detail") == "Not Found"):
        return ""
    base, separator, _ = url.rpartition("/canary/")
    if not separator or base.endswith(DEFAULT_MOUNT_PATH):
        return ""
    return (
        f"; is {base} a LiteLLM proxy? Its admin API is under proxy.mount_path: "
        f"did you mean {base}{DEFAULT_MOUNT_PATH}"
    )

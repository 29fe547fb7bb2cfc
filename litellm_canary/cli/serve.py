"""``litellm-canary serve``: a standalone gateway (Router + canary + webhook/admin + ``/metrics``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from litellm_canary.cli.errors import CliError

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Add ``serve`` to the CLI's subparsers."""
    serve = commands.add_parser("serve", help="run a gateway: Router + canary + webhook/admin + /metrics")
    serve.add_argument("--config", required=True, help="gateway file: model_list, litellm_canary, gateway")
    serve.add_argument("--host", help="listen address (default: gateway.host or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: gateway.port or 4000)")
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted (needs the ``server`` extra)."""
    try:
        import uvicorn

        from litellm_canary.integrations.gateway import build_gateway, load_gateway_config
    except ImportError as error:
        raise CliError(
            f"serve needs the server extra (pip install 'litellm-canary[server]'): {error}"
        ) from None
    config = load_gateway_config(args.config)
    try:
        _, _, app = build_gateway(config)
    except ValueError as error:  # e.g. a broken flag file, or no admin token in the environment
        token_env = config.gateway.token_env
        if "needs a bearer token" in str(error) and not os.environ.get(token_env, "").strip():
            raise CliError(
                f"no admin bearer token: set ${token_env} to a random secret before serve "
                f"(e.g. export {token_env}=$(openssl rand -hex 16)); gateway.token_env names the variable"
            ) from None
        raise CliError(str(error)) from None
    port = config.gateway.port if args.port is None else args.port
    uvicorn.run(app, host=args.host or config.gateway.host, port=port)
    return 0

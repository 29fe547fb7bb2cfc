"""``litellm-canary dashboard``: a Grafana dashboard (JSON model) of a config's rollouts."""

from __future__ import annotations

import argparse
from typing import Any

from litellm_canary.core.config import load_config_file

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Add ``dashboard`` to the CLI's subparsers."""
    dashboard = commands.add_parser(
        "dashboard", help="print a Grafana dashboard (JSON model) of the config's rollouts"
    )
    dashboard.add_argument("--config", required=True, help="canary config (YAML or JSON)")
    dashboard.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the dashboard JSON."""
    from litellm_canary.integrations.grafana_dashboard import dashboard_json

    print(dashboard_json(load_config_file(args.config)), end="")
    return 0

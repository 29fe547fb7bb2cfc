"""``litellm-canary rules``: the Prometheus rule file implementing a config's triggers, or with
``--alertmanager --webhook-url URL --token-file F`` the matching Alertmanager config."""

from __future__ import annotations

import argparse
from typing import Any

from litellm_canary.cli.errors import CliError
from litellm_canary.core.config import load_config_file

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Add ``rules`` to the CLI's subparsers."""
    rules = commands.add_parser("rules", help="print Prometheus alert rules (or an Alertmanager config)")
    rules.add_argument("--config", required=True, help="canary config (YAML or JSON)")
    rules.add_argument("--time-scale", type=float, default=1.0, help="divide every window by this (drills)")
    rules.add_argument("--interval", type=float, help="rule group evaluation interval, seconds")
    rules.add_argument(
        "--scrape-interval",
        type=float,
        help="Prometheus scrape interval, seconds: refuse windows too short for it",
    )
    rules.add_argument("--alertmanager", action="store_true", help="print the Alertmanager route instead")
    rules.add_argument("--webhook-url", help="the gateway's POST /alertmanager URL (with --alertmanager)")
    rules.add_argument("--token-file", help="file holding the webhook's bearer token (with --alertmanager)")
    rules.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the rule file (or the Alertmanager config)."""
    print(_render(args), end="")
    return 0


def _render(args: argparse.Namespace) -> str:
    from litellm_canary.integrations.alert_rules import alertmanager_config, prometheus_rules

    config = load_config_file(args.config, check_model_list=True)
    if args.alertmanager:
        if not args.webhook_url or not args.token_file:
            raise CliError("--alertmanager needs --webhook-url and --token-file")
        if not args.webhook_url.startswith(("http://", "https://")):
            raise CliError(f"--webhook-url must be an http(s) URL, got {args.webhook_url!r}")
        return alertmanager_config(args.webhook_url, token_file=args.token_file)
    if not args.time_scale > 0:
        raise CliError(f"--time-scale must be > 0, got {args.time_scale}")
    if args.interval is not None and not args.interval > 0:
        raise CliError(f"--interval must be > 0, got {args.interval}")
    try:
        return prometheus_rules(
            config,
            time_scale=args.time_scale,
            interval_s=args.interval,
            scrape_interval_s=args.scrape_interval,
        )
    except ValueError as error:
        raise CliError(str(error)) from None

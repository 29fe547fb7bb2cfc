"""The ``litellm-canary`` command line.

Subcommands:

* ``status --config FILE``: each rollout of the config and what its flag store says now;
  ``status --url URL``: a running gateway's live state, last rollback and its verification.
* ``serve --config FILE``: a standalone gateway (Router + canary + webhook/admin + metrics).
* ``promote --config FILE --group G [--force]``: serve the canary for good and close its window
  (refused, exit status 3, while the group is rolled back or its window is still open).
* ``rules --config FILE``: the Prometheus rule file implementing the config's triggers;
  ``--alertmanager --webhook-url URL --token-file F`` prints the matching Alertmanager config.
* ``incidents list|show|annotate`` and ``drill``: see :mod:`litellm_canary.incident_cli`.
* ``rollback``/``rearm --group G (--url URL | --config FILE)``: see :mod:`litellm_canary.operator_cli`
  (exit status 1 when the operation failed on the way).

Every error from outside (a missing file, an invalid config, an unreadable flag file) is one line on
stderr naming the problem, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from litellm_canary import incident_cli, operator_cli
from litellm_canary.core.config import CanaryConfig, ConfigError, load_config_file
from litellm_canary.core.flags import FlagdFileStore

PROMOTE_REFUSED = 3  # exit status of a refused promotion (rolled back, window still open)


class CliError(Exception):
    """An error to report on one line and exit with status 2."""


def _flag_state(definition: dict[str, Any] | None) -> dict[str, Any]:
    if definition is None:
        return {"serving": "stable", "note": "flag missing from the store: readers route to stable"}
    fractional = (definition.get("targeting") or {}).get("fractional")
    if fractional:
        weights = {variant: weight for variant, weight in fractional}
        total = sum(weights.values()) or 1
        return {"serving": "percentage", "canary_percent": round(100 * weights.get("canary", 0) / total, 2)}
    return {"serving": definition.get("defaultVariant", "stable")}


def status_report(config: CanaryConfig) -> dict[str, Any]:
    """The configured rollouts and, for a flagd file store, the flag as written there."""
    flags: dict[str, Any] | None = None
    store = config.flag_store
    if store is not None and store.kind == "flagd_file" and store.path is not None:
        try:
            flags = FlagdFileStore(store.path).read()["flags"]
        except (OSError, ValueError) as error:
            raise CliError(f"cannot read flag file {store.path}: {error}") from None
    rollouts = []
    for rollout in config.rollouts:
        entry: dict[str, Any] = {
            "model_group": rollout.model_group,
            "flag_key": rollout.flag_key,
            "stable": list(rollout.stable),
            "canary": list(rollout.canary),
        }
        if flags is not None:
            entry["flag"] = _flag_state(flags.get(rollout.flag_key))
        rollouts.append(entry)
    return {"flag_store": None if store is None else store.kind, "rollouts": rollouts}


def _print_status(report: dict[str, Any]) -> None:
    print(f"flag store: {report['flag_store'] or 'none (the application sets the OpenFeature provider)'}")
    for rollout in report["rollouts"]:
        line = (
            f"{rollout['model_group']}: flag {rollout['flag_key']!r}, "
            f"stable {rollout['stable']}, canary {rollout['canary']}"
        )
        flag = rollout.get("flag")
        if flag is not None:
            serving = flag["serving"]
            if serving == "percentage":
                serving = f"{flag['canary_percent']} % canary"
            line += f" -> serving {serving}"
        print(line)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="litellm-canary", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="show the configured rollouts and their flags")
    where = status.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="canary config: the rollouts and what its flag file serves")
    where.add_argument("--url", help="a running gateway's base URL: its live status, last rollback, verdict")
    status.add_argument("--token-file", help="bearer token for --url (default: $LITELLM_CANARY_TOKEN)")
    status.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the gateway")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    serve = commands.add_parser("serve", help="run a gateway: Router + canary + webhook/admin + /metrics")
    serve.add_argument("--config", required=True, help="gateway file: model_list, litellm_canary, gateway")
    serve.add_argument("--host", help="listen address (default: gateway.host or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: gateway.port or 4000)")
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
    promote = commands.add_parser("promote", help="serve the canary to everybody for good; close the window")
    promote.add_argument("--config", required=True, help="canary config with a flagd_file flag store")
    promote.add_argument("--group", required=True, help="the model group to promote")
    promote.add_argument("--force", action="store_true", help="promote before the canary window has ended")
    promote.add_argument("--json", action="store_true", help="print one JSON object")
    rules.add_argument("--webhook-url", help="the gateway's POST /alertmanager URL (with --alertmanager)")
    rules.add_argument("--token-file", help="file holding the webhook's bearer token (with --alertmanager)")
    operator_cli.add_commands(commands)
    incident_cli.add_commands(commands)
    return parser


def _rules(args: argparse.Namespace) -> str:
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


def _serve(config_path: str, host: str | None, port: int | None) -> None:
    try:
        import uvicorn

        from litellm_canary.integrations.gateway import build_gateway, load_gateway_config
    except ImportError as error:
        raise CliError(
            f"serve needs the server extra (pip install 'litellm-canary[server]'): {error}"
        ) from None
    config = load_gateway_config(config_path)
    try:
        _, _, app = build_gateway(config)
    except ValueError as error:  # e.g. no admin token in the environment
        raise CliError(str(error)) from None
    uvicorn.run(app, host=host or config.gateway.host, port=config.gateway.port if port is None else port)


def _promote(args: argparse.Namespace) -> int:
    from litellm_canary.release.canary_window import PromoteRefused, promote_from_config

    try:
        result = promote_from_config(load_config_file(args.config), args.group, force=args.force)
    except PromoteRefused as error:
        print(f"litellm-canary: promote refused: {error}", file=sys.stderr)
        return PROMOTE_REFUSED
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['model_group']}: promoted, flag {result['flag_key']!r} serves canary to everybody")
    return 0


def _gateway_status(args: argparse.Namespace) -> int:
    try:
        status = operator_cli.gateway_status(args.url, args.token_file, args.timeout)
    except operator_cli.OperatorError as error:
        print(f"litellm-canary: {error}", file=sys.stderr)
        return error.status
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print("\n".join(operator_cli.status_lines(status)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "status" and args.url is not None:
            return _gateway_status(args)
        if args.command == "status":
            report = status_report(load_config_file(args.config, check_model_list=True))
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                _print_status(report)
        elif args.command == "rules":
            print(_rules(args), end="")
        elif args.command == "serve":
            _serve(args.config, args.host, args.port)
        elif args.command == "promote":
            return _promote(args)
        elif args.command in ("rollback", "rearm"):
            return operator_cli.run(args)
        elif args.command in ("incidents", "drill"):
            return incident_cli.run(args)
    except (ConfigError, CliError) as error:
        print(f"litellm-canary: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How ``rollback`` and ``rearm`` reach the replicas: their shared arguments and steps.

* ``--url URL``: a running gateway's admin API (``POST /canary/rollback`` / ``/canary/rearm`` of
  :mod:`litellm_canary.webhook`), with the bearer token from ``--token-file`` or
  ``$LITELLM_CANARY_TOKEN``. That replica latches at once and spreads the change through its flag
  store and broadcast.
* ``--config FILE``: straight at the shared state, no gateway needed: the flagd flag file (every
  replica polling it follows) and, when the config has a ``broadcast``, a change published on Redis
  (every subscribed replica latches).

Exit status: 0 done (or nothing to do); 1 the operation failed on the way (gateway unreachable or
failing, flag file not writable, Redis unreachable: the output says what did happen); 2 bad input
(usage, config, unknown model group, missing flag file, missing or refused token).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from litellm_canary.cli.admin_client import TOKEN_ENV, admin_request, read_token
from litellm_canary.cli.errors import FAILED_ON_THE_WAY, CliError
from litellm_canary.core.config import CanaryConfig, Rollout, load_config_file
from litellm_canary.core.flags import FlagdFileStore

__all__ = [
    "add_command",
    "call_gateway",
    "config_target",
    "flag_file",
    "gateway_base",
    "new_config_report",
    "print_report",
    "publish",
    "write_flag",
]


def add_command(
    commands: Any,
    name: str,
    help_text: str,
    own_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
) -> None:
    """Add ``rollback`` or ``rearm``: ``--group``, its own arguments, ``--url | --config``,
    ``--token-file``, ``--timeout``, ``--json``."""
    command = commands.add_parser(name, help=help_text)
    command.add_argument("--group", required=True, help="the model group (rollouts[].model_group)")
    own_arguments(command)
    target = command.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--url",
        help="a running gateway's base URL, e.g. http://127.0.0.1:4000 "
        "(behind a LiteLLM proxy: http://127.0.0.1:4000/litellm-canary, its proxy.mount_path)",
    )
    target.add_argument("--config", help="canary config: write its flagd flag file (and broadcast)")
    command.add_argument("--token-file", help=f"bearer token for --url (default: ${TOKEN_ENV})")
    command.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the gateway")
    command.add_argument("--json", action="store_true", help="print one JSON object")
    command.set_defaults(run=run)


def print_report(args: argparse.Namespace, report: dict[str, Any]) -> int:
    """Print what was done (a ``FAILED`` line on stderr); exit status 1 when something failed."""
    failed = bool(report.get("failed"))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in report["lines"]:
            print(line, file=sys.stderr if failed and line.startswith("FAILED") else sys.stdout)
    return FAILED_ON_THE_WAY if failed else 0


# -- --url: a gateway's admin API ----------------------------------------------------------------


def gateway_base(args: argparse.Namespace) -> str:
    """The checked ``--url`` without its trailing slash (``--timeout`` checked too)."""
    base: str = args.url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise CliError(f"--url must be an http(s) URL, got {args.url!r}")
    if not args.timeout > 0:
        raise CliError(f"--timeout must be > 0, got {args.timeout}")
    return base


def call_gateway(args: argparse.Namespace, base: str, body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """POST ``body`` to ``{base}/canary/{command}``: the report started, and the gateway's answer."""
    url = f"{base}/canary/{args.command}"
    started = time.perf_counter()
    answer = admin_request(url, read_token(args.token_file), args.timeout, body)
    elapsed_ms = round((time.perf_counter() - started) * 1e3, 1)
    report = {"mode": "url", "url": url, "model_group": args.group, "request_ms": elapsed_ms}
    return report, answer


# -- --config: the flag file and the broadcast ---------------------------------------------------


def config_target(args: argparse.Namespace) -> tuple[CanaryConfig, Rollout]:
    """The config of ``--config`` and its rollout of ``--group``."""
    if args.token_file:
        raise CliError("--token-file works with --url only")
    config = load_config_file(args.config)
    for rollout in config.rollouts:
        if rollout.model_group == args.group:
            return config, rollout
    known = sorted(r.model_group for r in config.rollouts)
    raise CliError(f"--group: no rollout manages model group {args.group!r} (configured: {known})")


def flag_file(config: CanaryConfig, config_path: str) -> FlagdFileStore | None:
    """The config's flagd flag file (None without a flag store); refuses in-process stores."""
    store = config.flag_store
    if store is None:
        flags = None
    elif store.kind != "flagd_file" or store.path is None:
        raise CliError(
            f"{config_path}: flag_store kind {store.kind!r} lives inside each process; "
            "use --url to reach a running gateway"
        )
    elif not store.path.is_file():
        raise CliError(
            f"flag file {store.path} does not exist (the replicas create it at start): "
            f"is {config_path} the config the replicas use?"
        )
    else:
        flags = FlagdFileStore(store.path)
    if flags is None and config.broadcast is None:
        raise CliError(
            f"{config_path} has neither a flag_store nor a broadcast: use --url to reach a running gateway"
        )
    return flags


def new_config_report(args: argparse.Namespace) -> dict[str, Any]:
    """The report of a ``--config`` operation, its ``lines`` still empty."""
    return {"mode": "config", "config": args.config, "model_group": args.group, "lines": []}


def write_flag(
    store: FlagdFileStore, flag_key: str, serving: str, write: Callable[[], None], report: dict[str, Any]
) -> None:
    """Run ``write`` on the flag file, timed, into ``report`` (exit status 1 when it fails)."""
    started = time.perf_counter()
    try:
        write()
    except Exception as error:  # filelock timeout, permissions, a full disk: report, do not crash
        raise CliError(f"cannot write flag file {store.path}: {error}", FAILED_ON_THE_WAY) from None
    took = round((time.perf_counter() - started) * 1e3, 3)
    report["flag"] = {"path": str(store.path), "flag_key": flag_key, "serving": serving, "ms": took}
    report["lines"].append(f"flag {flag_key!r} in {store.path} -> {serving} ({took} ms)")


def publish(config: CanaryConfig, args: argparse.Namespace, reason: str, report: dict[str, Any]) -> None:
    """Publish the ``rollback``/``rearm`` on the config's Redis broadcast, into ``report``."""
    from litellm_canary.integrations.broadcast import BroadcastError, publish_change, redact_url

    assert config.broadcast is not None
    lines: list[str] = report["lines"]
    where = f"{redact_url(config.broadcast.url)} channel {config.broadcast.channel!r}"
    try:
        result = publish_change(
            config.broadcast,
            args.group,
            "rollback" if args.command == "rollback" else "rearm",
            reason=reason,
            kind="manual",
            origin=f"cli:{socket.gethostname()}:{os.getpid()}",
        )
    except BroadcastError as error:
        report["broadcast"] = {"error": str(error)}
        report["failed"] = True
        lines.append(f"FAILED to broadcast the {args.command}: {error}")
        if "flag" in report:
            lines.append("the flag file was written: replicas polling it follow without the broadcast")
    else:
        report["broadcast"] = {"where": where, "version": result.version, "ms": result.elapsed_ms}
        lines.append(
            f"broadcast {args.command} of {args.group!r} on {where} "
            f"(version {result.version}, {result.elapsed_ms} ms)"
        )

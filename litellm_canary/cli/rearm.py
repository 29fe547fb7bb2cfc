"""``litellm-canary rearm --group G (--url URL | --config FILE) [--canary-percent P]``: release the
rollback latch on every replica, through a gateway or by the broadcast, and with ``--canary-percent``
set the flag back to a P % canary (without it, say that the flag still serves stable; see
:mod:`.replica_targets`). Exit status 1 when the operation
failed on the way."""

from __future__ import annotations

import argparse
import time
from typing import Any

import litellm_canary.cli.replica_targets as targets
from litellm_canary.cli.admin_client import admin_request, read_token
from litellm_canary.cli.errors import FAILED_ON_THE_WAY, CliError
from litellm_canary.core.rollback_record import rearm_metadata
from litellm_canary.release.canary_window import FlagMetadataWindowStore, WindowState

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Add ``rearm`` to the CLI's subparsers."""
    targets.add_command(commands, "rearm", "release the rollback latch on every replica", _own_arguments, run)


def _own_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--canary-percent",
        type=float,
        help="also set the flag back to this canary share of users (0..100)",
    )


def run(args: argparse.Namespace) -> int:
    """Re-arm ``--group``; print what was done; return the exit status."""
    report = _via_gateway(args) if args.url is not None else _via_config(args)
    return targets.print_report(args, report)


def _percent(args: argparse.Namespace) -> float | None:
    percent: float | None = args.canary_percent
    if percent is not None and not 0 <= percent <= 100:
        raise CliError(f"--canary-percent must be within 0..100, got {percent}")
    return percent


def _via_gateway(args: argparse.Namespace) -> dict[str, Any]:
    percent = _percent(args)
    base = targets.gateway_base(args)
    report, answer = targets.call_gateway(args, base, {"model_group": args.group})
    report["rearmed"] = bool(answer.get("rearmed"))
    report["lines"] = [
        f"re-armed {args.group!r} on {base} in {report['request_ms']} ms"
        if report["rearmed"]
        else f"{args.group}: was not rolled back on {base}; nothing to do"
    ]
    if percent is None:
        # The rollback wrote the flag to stable and re-arming does not change it: say so, or
        # the operator believes the canary is back while traffic stays on stable.
        report["lines"].append(
            "the flag is unchanged (a rollback left it serving stable): traffic stays on stable until "
            "the flag changes; pass --canary-percent P to serve the canary to P % of users"
        )
        return report
    url = f"{base}/canary/percent"
    answer = admin_request(
        url, read_token(args.token_file), args.timeout, {"model_group": args.group, "percent": percent}
    )
    report["canary_percent"] = answer.get("canary_percent", percent)
    report["lines"].append(f"the flag now serves the canary to {percent:g} % of users")
    return report


def _via_config(args: argparse.Namespace) -> dict[str, Any]:
    config, rollout = targets.config_target(args)
    percent = _percent(args)
    store = targets.flag_file(config, args.config)
    if config.broadcast is None and percent is None:
        raise CliError(
            "nothing to re-arm here: the latch lives in each process and the config has no broadcast; "
            "pass --canary-percent P to write the flag, or use --url"
        )
    if percent is not None and store is None:
        raise CliError("--canary-percent needs a flagd_file flag_store in the config")

    report = targets.new_config_report(args)
    if store is not None and percent is not None:
        share = percent

        def write() -> None:
            store.set_canary_percent(rollout.flag_key, share)
            store.update_metadata(rollout.flag_key, rearm_metadata(time.time()))
            # A re-armed canary is judged afresh: a new canary window, as Canary.rearm opens.
            FlagMetadataWindowStore(store).save(rollout.flag_key, WindowState(time.time(), rollout.window_h))

        targets.write_flag(store, rollout.flag_key, f"{percent:g} % canary", write, report)
    if config.broadcast is not None:
        targets.publish(config, args, "", report)
    if percent is None and store is not None:
        try:  # the re-arm is recorded with the flag (the canary window's rolled-back mark goes)
            if rollout.flag_key in store.read()["flags"]:
                store.update_metadata(rollout.flag_key, rearm_metadata(time.time()))
        except Exception as error:
            raise CliError(f"cannot write flag file {store.path}: {error}", FAILED_ON_THE_WAY) from None
        report["lines"].append(
            f"the flag {rollout.flag_key!r} is unchanged (pass --canary-percent P to serve the canary)"
        )
    return report

"""``litellm-canary rollback --group G --reason TEXT (--url URL | --config FILE)``: send a model group
to stable on every replica, through a gateway or straight at the flag file and the broadcast (see
:mod:`.replica_targets`). Exit status 1 when the operation failed on the way."""

from __future__ import annotations

import argparse
import time
from typing import Any

import litellm_canary.cli.replica_targets as targets
from litellm_canary.cli.errors import CliError
from litellm_canary.core.decision import Side
from litellm_canary.core.rollback_record import ROLLED_BACK_AT

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Add ``rollback`` to the CLI's subparsers."""
    targets.add_command(
        commands, "rollback", "send a model group to stable on every replica", _own_arguments, run
    )


def _own_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--reason", required=True, help="why (kept in the rollback record)")


def run(args: argparse.Namespace) -> int:
    """Roll ``--group`` back; print what was done; return the exit status."""
    report = _via_gateway(args) if args.url is not None else _via_config(args)
    return targets.print_report(args, report)


def _reason(reason: str) -> str:
    if not reason.strip():
        raise CliError("--reason must not be blank")
    if len(reason) > 1000:
        raise CliError(f"--reason is {len(reason)} characters; at most 1000")
    return reason


def _via_gateway(args: argparse.Namespace) -> dict[str, Any]:
    base = targets.gateway_base(args)
    body = {"model_group": args.group, "reason": _reason(args.reason)}
    report, answer = targets.call_gateway(args, base, body)
    report["rollback"] = answer
    if answer.get("repeated"):
        line = f"{args.group}: already rolled back on {base} since {answer.get('decided_at')}"
    else:
        flag = answer.get("flag_store") or "no flag store"
        written = answer.get("flag_written_after_ms")
        line = (
            f"rolled back {args.group!r} on {base} in {report['request_ms']} ms: latched in "
            f"{answer.get('latch_us')} µs; flag {flag}: "
            + (
                f"written after {written} ms"
                if written is not None
                else f"NOT written ({answer.get('flag_error')})"
            )
        )
    report["lines"] = [line]
    return report


def _rollback_mark(reason: str) -> dict[str, float | str]:
    from litellm_canary.core.redact import scrub
    from litellm_canary.core.rollback_record import LAST_ROLLBACK_AT, LAST_ROLLBACK_KIND, LAST_ROLLBACK_REASON

    now = time.time()
    return {
        ROLLED_BACK_AT: now,
        LAST_ROLLBACK_AT: now,
        LAST_ROLLBACK_KIND: "manual",
        LAST_ROLLBACK_REASON: scrub(reason),
    }


def _via_config(args: argparse.Namespace) -> dict[str, Any]:
    config, rollout = targets.config_target(args)
    reason = _reason(args.reason)
    store = targets.flag_file(config, args.config)
    report = targets.new_config_report(args)
    if store is not None:
        # The flag and the rolled-back mark in one write: every replica attaching later (a
        # restart) comes up rolled back and refuses canary traffic until re-armed.
        def write() -> None:
            store.set_side(rollout.flag_key, Side.STABLE, metadata=_rollback_mark(reason))

        targets.write_flag(store, rollout.flag_key, "stable", write, report)
    if config.broadcast is not None:
        targets.publish(config, args, reason, report)
    else:
        report["lines"].append("no broadcast configured: replicas follow when they next poll the flag file")
    return report

"""``litellm-canary status``: a config's rollouts and what its flag file serves (``--config``), or a
running gateway's live state, last rollback and its verification (``--url``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from litellm_canary.cli.admin_client import admin_request, read_token
from litellm_canary.cli.errors import FAILED_ON_THE_WAY, CliError
from litellm_canary.core.config import CanaryConfig, load_config_file
from litellm_canary.core.flags import FlagdFileStore
from litellm_canary.core.flags.definitions import canary_share, describe_definition

__all__ = ["add_parser", "gateway_status", "run", "status_lines", "status_report"]


def add_parser(commands: Any) -> None:
    """Add ``status`` to the CLI's subparsers."""
    status = commands.add_parser("status", help="show the configured rollouts and their flags")
    where = status.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="canary config: the rollouts and what its flag file serves")
    where.add_argument("--url", help="a running gateway's base URL: its live status, last rollback, verdict")
    status.add_argument("--token-file", help="bearer token for --url (default: $LITELLM_CANARY_TOKEN)")
    status.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the gateway")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the status of ``--config`` or ``--url``."""
    if args.url is not None:
        gateway = gateway_status(args.url, args.token_file, args.timeout)
        print(json.dumps(gateway, indent=2) if args.json else "\n".join(status_lines(gateway)))
        return 0
    report = status_report(load_config_file(args.config, check_model_list=True))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_status(report)
    return 0


# -- --config: the rollouts and the flag file ----------------------------------------------------


def _flag_state(definition: dict[str, Any] | None) -> dict[str, Any]:
    if definition is None:
        return {"serving": "stable", "note": "flag missing from the store: readers route to stable"}
    share = canary_share(definition)
    if definition.get("targeting") and share is not None:
        return {"serving": "percentage", "canary_percent": share}
    return {"serving": describe_definition(definition)}


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


# -- --url: a running gateway --------------------------------------------------------------------


def gateway_status(url: str, token_file: str | None, timeout: float) -> dict[str, Any]:
    """``GET /canary/status`` of a running gateway (``status --url``)."""
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise CliError(f"--url must be an http(s) URL, got {url!r}")
    token = read_token(token_file)
    answer = admin_request(f"{base}/canary/status", token, timeout)
    if not isinstance(answer, dict) or not isinstance(answer.get("groups"), dict):
        raise CliError(f"{base}/canary/status: not a canary status answer", FAILED_ON_THE_WAY)
    return answer


def _serving(entry: dict[str, Any]) -> str:
    """What new requests get. Rolled back, the latch sends them to stable without reading the flag,
    so the last flag value read is from before the rollback: say what the flag store was written."""
    if entry.get("state") != "rolled_back":
        return f"{entry.get('state')}, flag {entry.get('last_flag_value')!r}"
    store = entry.get("flag_store") or {}
    if store.get("kind") is None:
        flag = "no flag store"
    elif store.get("write_pending"):
        flag = f"flag store write of stable pending ({store.get('last_error') or 'retrying'})"
    elif store.get("last_error"):
        flag = f"flag store write of stable failed: {store.get('last_error')}"
    else:
        flag = "flag store written stable"
    return f"rolled_back: new requests go to stable (latched); {flag}"


def status_lines(status: dict[str, Any]) -> list[str]:
    """A few readable lines per group of a gateway's status: state, last rollback, verification."""
    lines = []
    for group, entry in sorted(status["groups"].items()):
        in_flight = entry.get("in_flight") or {}
        last = entry.get("last_rollback")
        lines.append(
            f"{group}: {_serving(entry)}, "
            f"in flight stable {in_flight.get('stable', 0)} / canary {in_flight.get('canary', 0)}"
        )
        if last:
            when = last.get("decided_at")
            lines.append(f"  last rollback: {last.get('kind')} at {when}: {last.get('reason')}")
            verification = last.get("verification") or {}
            failed = verification.get("failed_checks")
            lines.append(
                f"  canary drained: {last.get('drained')}; verification: {verification.get('verdict')}"
                + (f" (failed: {', '.join(failed)})" if failed else "")
                + f"; incident: {last.get('incident_id')}"
            )
    return lines

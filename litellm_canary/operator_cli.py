"""``litellm-canary rollback`` and ``litellm-canary rearm``: an operator's rollback from a shell.

Two ways to reach the replicas:

* ``--url URL``: a running gateway's admin API (``POST /canary/rollback`` / ``/canary/rearm`` of
  :mod:`litellm_canary.webhook`), with the bearer token from ``--token-file`` or
  ``$LITELLM_CANARY_TOKEN``. That replica latches at once and spreads the change through its flag
  store and broadcast.
* ``--config FILE``: straight at the shared state, no gateway needed. ``rollback`` writes the flagd
  flag file to stable (every replica polling it follows) and, when the config has a ``broadcast``,
  publishes the rollback on Redis (every subscribed replica latches). ``rearm`` publishes the re-arm
  and, with ``--canary-percent P``, writes the flag back to a P % canary.

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
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from litellm_canary.core.config import CanaryConfig, ConfigError, Rollout, load_config_file
from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagdFileStore
from litellm_canary.core.rollback_record import ROLLED_BACK_AT
from litellm_canary.release.canary_window import FlagMetadataWindowStore, WindowState

TOKEN_ENV = "LITELLM_CANARY_TOKEN"


class OperatorError(Exception):
    """One line for stderr and the exit status to leave with."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def add_commands(commands: Any) -> None:
    """Add ``rollback`` and ``rearm`` to the ``litellm-canary`` subcommands."""
    for name, help_text in (
        ("rollback", "send a model group to stable on every replica"),
        ("rearm", "release the rollback latch on every replica"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--group", required=True, help="the model group (rollouts[].model_group)")
        if name == "rollback":
            command.add_argument("--reason", required=True, help="why (kept in the rollback record)")
        else:
            command.add_argument(
                "--canary-percent",
                type=float,
                help="with --config: also write the flag back to this canary share (0..100)",
            )
        target = command.add_mutually_exclusive_group(required=True)
        target.add_argument("--url", help="a running gateway's base URL, e.g. http://127.0.0.1:4000")
        target.add_argument("--config", help="canary config: write its flagd flag file (and broadcast)")
        command.add_argument("--token-file", help=f"bearer token for --url (default: ${TOKEN_ENV})")
        command.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the gateway")
        command.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    """Carry out ``rollback``/``rearm``; print what was done; return the exit status."""
    try:
        report = _via_gateway(args) if args.url is not None else _via_config(args)
    except (OperatorError, ConfigError) as error:
        print(f"litellm-canary: {error}", file=sys.stderr)
        return error.status if isinstance(error, OperatorError) else 2
    failed = bool(report.get("failed"))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in report["lines"]:
            print(line, file=sys.stderr if failed and line.startswith("FAILED") else sys.stdout)
    return 1 if failed else 0


# -- --url: a gateway's admin API ----------------------------------------------------------------


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as error:
            raise OperatorError(f"cannot read --token-file {args.token_file}: {error.strerror}") from None
        if not token:
            raise OperatorError(f"--token-file {args.token_file} is empty")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise OperatorError(f"--url needs a bearer token: pass --token-file FILE or set ${TOKEN_ENV}")
    return token


def _via_gateway(args: argparse.Namespace) -> dict[str, Any]:
    if getattr(args, "canary_percent", None) is not None:
        raise OperatorError("--canary-percent works with --config only (the gateway API has no such call)")
    base = args.url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise OperatorError(f"--url must be an http(s) URL, got {args.url!r}")
    if not args.timeout > 0:
        raise OperatorError(f"--timeout must be > 0, got {args.timeout}")
    body: dict[str, Any] = {"model_group": args.group}
    if args.command == "rollback":
        body["reason"] = _reason(args.reason)
    url = f"{base}/canary/{args.command}"
    started = time.perf_counter()
    answer = admin_request(url, _token(args), args.timeout, body)
    elapsed_ms = round((time.perf_counter() - started) * 1e3, 1)
    report: dict[str, Any] = {"mode": "url", "url": url, "model_group": args.group, "request_ms": elapsed_ms}
    if args.command == "rollback":
        report["rollback"] = answer
        if answer.get("repeated"):
            line = f"{args.group}: already rolled back on {base} since {answer.get('decided_at')}"
        else:
            flag = answer.get("flag_store") or "no flag store"
            written = answer.get("flag_written_after_ms")
            line = (
                f"rolled back {args.group!r} on {base} in {elapsed_ms} ms: latched in "
                f"{answer.get('latch_us')} µs; flag {flag}: "
                + (
                    f"written after {written} ms"
                    if written is not None
                    else f"NOT written ({answer.get('flag_error')})"
                )
            )
        report["lines"] = [line]
    else:
        report["rearmed"] = bool(answer.get("rearmed"))
        report["lines"] = [
            f"re-armed {args.group!r} on {base} in {elapsed_ms} ms"
            if report["rearmed"]
            else f"{args.group}: was not rolled back on {base}; nothing to do"
        ]
    return report


def admin_request(url: str, token: str, timeout: float, body: dict[str, Any] | None = None) -> Any:
    """Call a gateway admin route (POST with ``body``, else GET); its JSON answer, or OperatorError."""
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
        detail = _error_detail(error)
        if error.code == 401:
            raise OperatorError(f"{url}: the gateway refused the token (401): {detail}") from None
        if error.code in (400, 404):
            raise OperatorError(f"{url}: {detail} ({error.code})") from None
        raise OperatorError(f"{url}: the gateway answered {error.code}: {detail}", 1) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise OperatorError(f"cannot reach {url}: {reason}", 1) from None
    except ValueError as error:
        raise OperatorError(f"{url}: the answer is not JSON: {error}", 1) from None


def gateway_status(url: str, token_file: str | None, timeout: float) -> dict[str, Any]:
    """``GET /canary/status`` of a running gateway (``status --url``)."""
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise OperatorError(f"--url must be an http(s) URL, got {url!r}")
    token = _token(argparse.Namespace(token_file=token_file))
    answer = admin_request(f"{base}/canary/status", token, timeout)
    if not isinstance(answer, dict) or not isinstance(answer.get("groups"), dict):
        raise OperatorError(f"{base}/canary/status: not a canary status answer", 1)
    return answer


def status_lines(status: dict[str, Any]) -> list[str]:
    """A few readable lines per group of a gateway's status: state, last rollback, verification."""
    lines = []
    for group, entry in sorted(status["groups"].items()):
        in_flight = entry.get("in_flight") or {}
        lines.append(
            f"{group}: {entry.get('state')}, flag {entry.get('last_flag_value')!r}, "
            f"in flight stable {in_flight.get('stable', 0)} / canary {in_flight.get('canary', 0)}"
        )
        last = entry.get("last_rollback")
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


def _error_detail(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
        return str(body.get("error", body)) if isinstance(body, dict) else str(body)
    except (ValueError, OSError):
        return str(error.reason)


# -- --config: the flag file and the broadcast ---------------------------------------------------


def _reason(reason: str) -> str:
    if not reason.strip():
        raise OperatorError("--reason must not be blank")
    if len(reason) > 1000:
        raise OperatorError(f"--reason is {len(reason)} characters; at most 1000")
    return reason


def _rollout(config: CanaryConfig, group: str) -> Rollout:
    for rollout in config.rollouts:
        if rollout.model_group == group:
            return rollout
    known = sorted(r.model_group for r in config.rollouts)
    raise OperatorError(f"--group: no rollout manages model group {group!r} (configured: {known})")


def _flag_file(config: CanaryConfig, config_path: str) -> FlagdFileStore | None:
    store = config.flag_store
    if store is None:
        return None
    if store.kind != "flagd_file" or store.path is None:
        raise OperatorError(
            f"{config_path}: flag_store kind {store.kind!r} lives inside each process; "
            "use --url to reach a running gateway"
        )
    if not store.path.is_file():
        raise OperatorError(
            f"flag file {store.path} does not exist (the replicas create it at start): "
            f"is {config_path} the config the replicas use?"
        )
    return FlagdFileStore(store.path)


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
    if args.token_file:
        raise OperatorError("--token-file works with --url only")
    config = load_config_file(args.config)
    rollout = _rollout(config, args.group)
    reason = _reason(args.reason) if args.command == "rollback" else ""
    percent = getattr(args, "canary_percent", None)
    if percent is not None and not 0 <= percent <= 100:
        raise OperatorError(f"--canary-percent must be within 0..100, got {percent}")
    store = _flag_file(config, args.config)
    if store is None and config.broadcast is None:
        raise OperatorError(
            f"{args.config} has neither a flag_store nor a broadcast: use --url to reach a running gateway"
        )
    if args.command == "rearm" and config.broadcast is None and percent is None:
        raise OperatorError(
            "nothing to re-arm here: the latch lives in each process and the config has no broadcast; "
            "pass --canary-percent P to write the flag, or use --url"
        )
    if percent is not None and store is None:
        raise OperatorError("--canary-percent needs a flagd_file flag_store in the config")

    report: dict[str, Any] = {"mode": "config", "config": args.config, "model_group": args.group, "lines": []}
    lines: list[str] = report["lines"]
    if store is not None and (args.command == "rollback" or percent is not None):
        started = time.perf_counter()
        try:
            if args.command == "rollback":
                # The flag and the rolled-back mark in one write: every replica attaching later (a
                # restart) comes up rolled back and refuses canary traffic until re-armed.
                store.set_side(rollout.flag_key, Side.STABLE, metadata=_rollback_mark(reason))
            else:
                assert percent is not None
                store.set_canary_percent(rollout.flag_key, percent)
                # A re-armed canary is judged afresh: a new canary window, as Canary.rearm opens.
                FlagMetadataWindowStore(store).save(
                    rollout.flag_key, WindowState(time.time(), rollout.window_h)
                )
        except Exception as error:  # filelock timeout, permissions, a full disk: report, do not crash
            raise OperatorError(f"cannot write flag file {store.path}: {error}", 1) from None
        took = round((time.perf_counter() - started) * 1e3, 3)
        serving = "stable" if args.command == "rollback" else f"{percent:g} % canary"
        report["flag"] = {
            "path": str(store.path),
            "flag_key": rollout.flag_key,
            "serving": serving,
            "ms": took,
        }
        lines.append(f"flag {rollout.flag_key!r} in {store.path} -> {serving} ({took} ms)")

    if config.broadcast is not None:
        from litellm_canary.integrations.broadcast import BroadcastError, publish_change, redact_url

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
    elif args.command == "rollback":
        lines.append("no broadcast configured: replicas follow when they next poll the flag file")
    if args.command == "rearm" and percent is None and store is not None:
        try:  # the re-arm is recorded with the flag (the canary window's rolled-back mark goes)
            if rollout.flag_key in store.read()["flags"]:
                store.update_metadata(rollout.flag_key, {ROLLED_BACK_AT: None})
        except Exception as error:
            raise OperatorError(f"cannot write flag file {store.path}: {error}", 1) from None
        lines.append(
            f"the flag {rollout.flag_key!r} is unchanged (pass --canary-percent P to serve the canary)"
        )
    return report

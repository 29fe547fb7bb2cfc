"""``litellm-canary bench switch --url URL [--url URL ...] --group G``: the switch benchmark against
running gateways or LiteLLM proxies (:mod:`litellm_canary.bench.remote_switch`).

Its own arguments, their checks (exit status 2 with a line naming the problem), and the run: the
state found is restored on the way out, Ctrl-C included (exit status 130, the figures so far still
printed). Exit status 1 when a gateway failed on the way or the state could not be restored.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from litellm_canary.cli.admin_client import TOKEN_ENV
from litellm_canary.cli.errors import BAD_INPUT, FAILED_ON_THE_WAY, CliError

__all__ = ["add_arguments", "refuse_remote_options", "run"]

API_KEY_ENV = "LITELLM_API_KEY"
INTERRUPTED = 130
_REMOTE_ONLY = (
    "group",
    "model",
    "via",
    "rollback_to",
    "admin_path",
    "rearm_first",
    "timeout",
)


def add_arguments(group: Any) -> None:
    """The ``--url`` mode's arguments (``group`` is an argparse argument group)."""
    group.add_argument("--group", help="the model group to roll back and re-arm (required with --url)")
    group.add_argument("--model", help="the model name the clients request (default: the group)")
    group.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        help=f"environment variable with the admin token (default {TOKEN_ENV})",
    )
    group.add_argument(
        "--api-key-env",
        default=API_KEY_ENV,
        help=f"environment variable with the API key for chat requests, e.g. a LiteLLM proxy key "
        f"(default {API_KEY_ENV}; unset: none, as `litellm-canary serve` needs none)",
    )
    group.add_argument(
        "--via",
        choices=("admin", "webhook"),
        help="roll back with POST /canary/rollback (admin, the default) or an Alertmanager payload",
    )
    group.add_argument(
        "--rollback-to",
        choices=("first", "all"),
        help="roll back on the first URL (the default: the others follow through the shared flag store "
        "or broadcast) or on every URL at once",
    )
    group.add_argument("--admin-path", help="the admin API's path under each URL (default: found)")
    group.add_argument(
        "--rearm-first",
        action="store_true",
        help="measure a group found rolled back anyway (re-armed now, rolled back again at the end)",
    )
    group.add_argument("--timeout", type=float, help="seconds each step may take (default 30)")


def refuse_remote_options(args: argparse.Namespace) -> None:
    """``--offline`` with an option of the ``--url`` mode: say so rather than ignore it."""
    given = [
        f"--{name.replace('_', '-')}" for name in _REMOTE_ONLY if getattr(args, name) not in (None, False)
    ]
    if given:
        raise CliError(f"bench switch: {', '.join(given)} work with --url only", BAD_INPUT)


def _settings(args: argparse.Namespace) -> Any:
    from litellm_canary.bench.remote_admin import BenchInputError, check_url
    from litellm_canary.bench.remote_switch import RemoteSettings

    if args.think_ms is not None or args.quick:
        raise CliError("bench switch: --think-ms and --quick work with --offline only", BAD_INPUT)
    if not args.group or not args.group.strip():
        raise CliError("bench switch: --url needs --group G (the model group to roll back)", BAD_INPUT)
    try:
        urls = tuple(check_url(url) for url in args.url)
    except BenchInputError as error:
        raise CliError(f"bench switch: {error}", BAD_INPUT) from None
    if len(set(urls)) < len(urls):
        raise CliError(f"bench switch: --url: the same gateway is given twice: {sorted(urls)}", BAD_INPUT)
    checks: list[tuple[float | None, str, Callable[[float], bool], str]] = [
        (args.clients, "--clients", lambda v: v >= 1, "at least 1"),
        (args.flips, "--flips", lambda v: v >= 1, "at least 1"),
        (args.timeout, "--timeout", lambda v: v > 0, "> 0"),
    ]
    for value, name, valid, expected in checks:
        if value is not None and not valid(value):
            raise CliError(f"bench switch: {name} must be {expected}, got {value:g}", BAD_INPUT)
    token = os.environ.get(args.token_env, "").strip()
    if not token:
        raise CliError(
            f"bench switch: --url needs the admin token in ${args.token_env} (see --token-env)", BAD_INPUT
        )
    return RemoteSettings(
        urls=urls,
        group=args.group,
        model=args.model or args.group,
        token=token,
        api_key=os.environ.get(args.api_key_env, "").strip() or "none",
        clients=args.clients or 8,
        flips=args.flips or 10,
        via=args.via or "admin",
        rollback_to=args.rollback_to or "first",
        rearm_first=args.rearm_first,
        admin_path=args.admin_path,
        step_timeout_s=args.timeout or 30.0,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``bench switch --url``; the exit status."""
    settings = _settings(args)
    from litellm_canary.bench import remote_report, remote_switch, report
    from litellm_canary.bench.remote_admin import BenchFailed, BenchInputError

    def cli_error(error: Exception) -> CliError:
        code = BAD_INPUT if isinstance(error, BenchInputError) else FAILED_ON_THE_WAY
        return CliError(f"bench switch: {error}", code)

    try:
        session = remote_switch.prepare(settings)
    except (BenchInputError, BenchFailed) as error:
        raise cli_error(error) from None
    failure: Exception | None = None
    interrupted = False
    try:
        report.without_stray_prints(lambda: remote_switch.run_flips(session))
    except KeyboardInterrupt:
        interrupted = True
    except (BenchInputError, BenchFailed) as error:
        failure = error
    finally:
        restored = remote_switch.restore(session)
    if failure is not None and not session.flips:
        raise cli_error(failure)
    result = remote_report.summarize(session)
    result |= {"interrupted": interrupted, "restored": session.restored, "error": str(failure or "") or None}
    report.emit(result, args.json, remote_report.summary_lines)
    if interrupted:
        print(f"litellm-canary: bench switch interrupted after {len(session.flips)} flips", file=sys.stderr)
    if failure is not None:
        print(f"litellm-canary: bench switch: {failure}", file=sys.stderr)
    if not restored:
        print(
            "litellm-canary: bench switch: FAILED to restore the state found (see 'restored')",
            file=sys.stderr,
        )
    if interrupted:
        return INTERRUPTED
    return FAILED_ON_THE_WAY if failure is not None or not restored else 0

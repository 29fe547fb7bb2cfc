"""``litellm-canary drill [--json] [--fault errors|slow-ttft|bad-answers] [--dir DIR]``: the
self-contained drill; ``drill --config FILE --live [--url URL] [--group G] [--rearm]``: drill a
running gateway. Exit status 0 when every drill standard was met, 1 when one was missed, 2 when it
could not run.

The drill itself is :mod:`litellm_canary.response.drill`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import Any

from litellm_canary.cli.errors import CliError

__all__ = ["DRILL_MISSED", "add_parser", "run"]

DRILL_MISSED = 1  # exit status of a drill that missed a standard


def add_parser(commands: Any) -> None:
    """Add ``drill`` to the CLI's subparsers."""
    drill = commands.add_parser("drill", help="run a rollback drill (offline, or --live against a gateway)")
    drill.add_argument("--json", action="store_true", help="print one JSON object")
    drill.add_argument("--fault", choices=["errors", "slow-ttft", "bad-answers"], default="errors")
    drill.add_argument("--dir", help="incidents directory of the offline drill (default: a temp dir)")
    drill.add_argument("--config", help="gateway config (with --live)")
    drill.add_argument("--live", action="store_true", help="drill the running gateway of --config")
    drill.add_argument(
        "--url",
        help="the admin base URL (default: gateway.host/port of --config, plus proxy.mount_path "
        "for a LiteLLM proxy config)",
    )
    drill.add_argument("--group", help="the model group to drill (default: the only rollout)")
    drill.add_argument("--rearm", action="store_true", help="re-arm the group after a --live drill")
    drill.set_defaults(run=run)


def _print_drill(report: dict[str, Any]) -> None:
    verification = report.get("verification") or {}
    print(f"drill ({report.get('mode')}): {'PASSED' if report.get('passed') else 'FAILED'}")
    from litellm_canary.response.drill import MEASUREMENTS

    for key in MEASUREMENTS:
        print(f"  {key}: {report.get(key)}")
    print(f"  verification: {verification.get('verdict')} {verification.get('failed_checks') or ''}")
    print(f"  incident: {report.get('incident_path')}")
    for missed in report.get("missed") or []:
        print(f"  missed: {missed}")


async def _offline_drill(fault: Any, incidents_dir: str | None) -> dict[str, Any]:
    """The offline drill, then LiteLLM's logging worker stopped while its event loop still runs
    (else ``asyncio.run`` closing the loop prints "Task was destroyed but it is pending!")."""
    from litellm_canary.response.drill import run_drill

    try:
        return await run_drill(fault, incidents_dir=incidents_dir)
    finally:
        await _stop_litellm_logging_worker()


async def _stop_litellm_logging_worker() -> None:
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
    except ImportError:  # another LiteLLM release: nothing to stop here
        return
    with contextlib.suppress(Exception):  # the drill's callbacks are done; do not wait forever
        await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), timeout=5.0)
    await GLOBAL_LOGGING_WORKER.stop(timeout=5.0)


def run(args: argparse.Namespace) -> int:
    """Run the drill; exit status 1 when it missed a standard."""
    from litellm_canary.response.drill import DrillError, run_live_drill

    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the one JSON object
            if args.live:
                if not args.config:
                    raise CliError("--live needs --config FILE (the gateway's config)")
                report = run_live_drill(args.config, url=args.url, group=args.group, rearm=args.rearm)
            else:
                if args.config or args.url or args.group or args.rearm:
                    raise CliError("--config, --url, --group and --rearm go with --live")
                import litellm

                litellm.suppress_debug_info = True
                report = asyncio.run(_offline_drill(args.fault, args.dir))
    except DrillError as error:
        raise CliError(f"drill: {error}") from None
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        _print_drill(report)
    return 0 if report["passed"] else DRILL_MISSED

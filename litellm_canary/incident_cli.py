"""The ``incidents`` and ``drill`` subcommands of ``litellm-canary``.

* ``incidents list|show ID|annotate ID --cause TEXT --change TEXT`` with ``--dir DIR`` or
  ``--config FILE`` (its ``incidents.dir``); an unknown id is exit status 2 with a clear message.
* ``drill [--json] [--fault errors|slow-ttft|bad-answers] [--dir DIR]``: the self-contained drill;
  ``drill --config FILE --live [--url URL] [--group G] [--rearm]``: drill a running gateway.
  Exit status 0 when every drill standard was met, 1 when one was missed, 2 when it could not run.

The work itself is :mod:`litellm_canary.incidents` and :mod:`litellm_canary.drill`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from litellm_canary.core.config import ConfigError, load_config_file

__all__ = ["DRILL_MISSED", "add_commands", "run"]

DRILL_MISSED = 1  # exit status of a drill that missed a standard


class _UsageError(Exception):
    """Bad arguments: one line on stderr, exit status 2."""


def add_commands(commands: Any) -> None:
    """Add ``incidents`` and ``drill`` to the CLI's subparsers."""
    incidents = commands.add_parser("incidents", help="list, show and annotate incident records")
    actions = incidents.add_subparsers(dest="incidents_command", required=True)
    for name, text in (
        ("list", "one line per incident, newest first"),
        ("show", "an incident's report (Markdown)"),
        ("annotate", "fill in an incident's actual cause and what would change"),
    ):
        action = actions.add_parser(name, help=text)
        where = action.add_mutually_exclusive_group()
        where.add_argument("--dir", help="the incidents directory")
        where.add_argument("--config", help="a canary or gateway config: its incidents.dir")
        if name != "list":
            action.add_argument("id", help="the incident id (see `incidents list`)")
        if name == "annotate":
            action.add_argument("--cause", required=True, help="the actual cause")
            action.add_argument("--change", required=True, help="what would change next time")
        else:
            action.add_argument("--json", action="store_true", help="print JSON")

    drill = commands.add_parser("drill", help="run a rollback drill (offline, or --live against a gateway)")
    drill.add_argument("--json", action="store_true", help="print one JSON object")
    drill.add_argument("--fault", choices=["errors", "slow-ttft", "bad-answers"], default="errors")
    drill.add_argument("--dir", help="incidents directory of the offline drill (default: a temp dir)")
    drill.add_argument("--config", help="gateway config (with --live)")
    drill.add_argument("--live", action="store_true", help="drill the running gateway of --config")
    drill.add_argument("--url", help="the gateway's base URL (default: gateway.host/port of --config)")
    drill.add_argument("--group", help="the model group to drill (default: the only rollout)")
    drill.add_argument("--rearm", action="store_true", help="re-arm the group after a --live drill")


def _directory(args: argparse.Namespace) -> Path:
    if args.dir:
        directory = Path(args.dir)
    elif args.config:
        config = load_config_file(args.config)
        if config.incidents is None:
            raise _UsageError(f"{args.config}: no 'incidents: {{dir: ...}}' configured")
        directory = config.incidents.dir
    else:
        raise _UsageError("say where the incidents are: --dir DIR or --config FILE")
    if not directory.is_dir():
        raise _UsageError(f"incidents directory {directory} does not exist")
    return directory


def _incidents(args: argparse.Namespace) -> int:
    from litellm_canary.response.incidents import (
        IncidentNotFound,
        IncidentStore,
        annotate_command,
        list_command,
        show_command,
    )

    directory = _directory(args)
    try:
        if args.incidents_command == "list":
            if args.json:
                print(json.dumps([s.model_dump() for s in IncidentStore(directory).list()], indent=2))
            else:
                print(list_command(directory), end="")
        elif args.incidents_command == "show":
            if args.json:
                print(json.dumps(IncidentStore(directory).get(args.id).model_dump(mode="json"), indent=2))
            else:
                print(show_command(directory, args.id), end="")
        else:
            if not args.cause.strip() or not args.change.strip():
                raise _UsageError("--cause and --change must not be blank")
            print(annotate_command(directory, args.id, args.cause, args.change), end="")
    except IncidentNotFound as error:
        raise _UsageError(str(error)) from None
    return 0


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


def _drill(args: argparse.Namespace) -> int:
    from litellm_canary.response.drill import DrillError, run_drill, run_live_drill

    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the one JSON object
            if args.live:
                if not args.config:
                    raise _UsageError("--live needs --config FILE (the gateway's config)")
                report = run_live_drill(args.config, url=args.url, group=args.group, rearm=args.rearm)
            else:
                if args.config or args.url or args.group or args.rearm:
                    raise _UsageError("--config, --url, --group and --rearm go with --live")
                import litellm

                litellm.suppress_debug_info = True
                report = asyncio.run(run_drill(args.fault, incidents_dir=args.dir))
    except DrillError as error:
        raise _UsageError(f"drill: {error}") from None
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        _print_drill(report)
    return 0 if report["passed"] else DRILL_MISSED


def run(args: argparse.Namespace) -> int:
    """Run an ``incidents`` or ``drill`` command; returns the exit status."""
    try:
        if args.command == "incidents":
            return _incidents(args)
        return _drill(args)
    except (_UsageError, ConfigError) as error:
        print(f"litellm-canary: {error}", file=sys.stderr)
        return 2

"""``litellm-canary incidents list|show ID|annotate ID --cause TEXT --change TEXT`` with ``--dir DIR``
or ``--config FILE`` (its ``incidents.dir``); an unknown id is exit status 2 with a clear message.

The records themselves are :mod:`litellm_canary.response.incidents`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from litellm_canary.cli.errors import CliError
from litellm_canary.core.config import load_config_file

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Add ``incidents`` and its actions to the CLI's subparsers."""
    incidents = commands.add_parser("incidents", help="list, show and annotate incident records")
    incidents.set_defaults(run=run)
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


def _directory(args: argparse.Namespace) -> Path:
    if args.dir:
        directory = Path(args.dir)
    elif args.config:
        config = load_config_file(args.config)
        if config.incidents is None:
            raise CliError(f"{args.config}: no 'incidents: {{dir: ...}}' configured")
        directory = config.incidents.dir
    else:
        raise CliError("say where the incidents are: --dir DIR or --config FILE")
    if not directory.is_dir():
        if args.config and args.incidents_command == "list":
            return directory  # configured, created by the first rollback: no incidents yet
        raise CliError(f"incidents directory {directory} does not exist")
    return directory


def run(args: argparse.Namespace) -> int:
    """Run ``incidents list``, ``show`` or ``annotate``."""
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
            if not directory.is_dir():
                print(f"no incidents yet: {directory} is created by the first rollback", file=sys.stderr)
                if args.json:
                    print("[]")
            elif args.json:
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
                raise CliError("--cause and --change must not be blank")
            print(annotate_command(directory, args.id, args.cause, args.change), end="")
    except IncidentNotFound as error:
        raise CliError(str(error)) from None
    return 0

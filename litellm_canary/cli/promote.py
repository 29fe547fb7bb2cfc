"""``litellm-canary promote``: serve the canary for good and close its window (refused, exit status
3, while the group is rolled back or its window is still open, unless ``--force``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from litellm_canary.cli.errors import CliError
from litellm_canary.core.config import load_config_file

__all__ = ["PROMOTE_REFUSED", "add_parser", "run"]

PROMOTE_REFUSED = 3  # exit status of a refused promotion (rolled back, window still open)


def add_parser(commands: Any) -> None:
    """Add ``promote`` to the CLI's subparsers."""
    promote = commands.add_parser("promote", help="serve the canary to everybody for good; close the window")
    promote.add_argument("--config", required=True, help="canary config with a flagd_file flag store")
    promote.add_argument("--group", required=True, help="the model group to promote")
    promote.add_argument("--force", action="store_true", help="promote before the canary window has ended")
    promote.add_argument("--json", action="store_true", help="print one JSON object")
    promote.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Promote ``--group``; exit status 3 when refused."""
    from litellm_canary.release.canary_window import PromoteRefused, promote_from_config

    try:
        result = promote_from_config(load_config_file(args.config), args.group, force=args.force)
    except PromoteRefused as error:
        raise CliError(f"promote refused: {error}", PROMOTE_REFUSED) from None
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['model_group']}: promoted, flag {result['flag_key']!r} serves canary to everybody")
    return 0

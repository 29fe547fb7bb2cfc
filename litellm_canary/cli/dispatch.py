"""The one dispatch: the argparse parser built from the subcommand modules, and the error mapping.

Each subcommand module has ``add_parser(commands)`` (its subparser, with ``run`` as its default) and
``run(args) -> int``. Every error from outside is one line on stderr, ``litellm-canary: ...``: a
:class:`CliError` with its exit status, a ``ConfigError`` with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from litellm_canary.cli.bench import add_parser as add_bench
from litellm_canary.cli.dashboard import add_parser as add_dashboard
from litellm_canary.cli.drill import add_parser as add_drill
from litellm_canary.cli.errors import BAD_INPUT, CliError
from litellm_canary.cli.incidents import add_parser as add_incidents
from litellm_canary.cli.promote import add_parser as add_promote
from litellm_canary.cli.rearm import add_parser as add_rearm
from litellm_canary.cli.rollback import add_parser as add_rollback
from litellm_canary.cli.rules import add_parser as add_rules
from litellm_canary.cli.serve import add_parser as add_serve
from litellm_canary.cli.status import add_parser as add_status
from litellm_canary.core.config import ConfigError

__all__ = ["build_parser", "main"]

# In the order of ``litellm-canary --help``.
SUBCOMMANDS = (
    add_status,
    add_serve,
    add_rules,
    add_dashboard,
    add_promote,
    add_rollback,
    add_rearm,
    add_incidents,
    add_drill,
    add_bench,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``litellm-canary`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="litellm-canary", description="The ``litellm-canary`` command line."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for add_parser in SUBCOMMANDS:
        add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``litellm-canary`` command; returns the exit status (the console-script entry point)."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except CliError as error:
        print(f"litellm-canary: {error}", file=sys.stderr)
        return error.exit_code
    except ConfigError as error:
        print(f"litellm-canary: {error}", file=sys.stderr)
        return BAD_INPUT
    return code

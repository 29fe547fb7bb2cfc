"""The ``litellm-canary`` command line: one module per subcommand, one error type, one dispatch.

* ``status``: :mod:`.status` (a config's rollouts and flags, or a running gateway's live state)
* ``serve``: :mod:`.serve` (a standalone gateway)
* ``rules``: :mod:`.rules` (Prometheus rules or the Alertmanager route)
* ``promote``: :mod:`.promote` (exit status 3 when refused)
* ``rollback`` / ``rearm``: :mod:`.rollback`, :mod:`.rearm`, reaching the replicas through
  :mod:`.replica_targets` and :mod:`.admin_client` (exit status 1 when the operation failed on the way)
* ``incidents``: :mod:`.incidents`; ``drill``: :mod:`.drill` (exit status 1 when a standard was missed)
* ``bench``: :mod:`.bench` (rollback latency under load, per-request overhead)

:mod:`.dispatch` builds the parser from these modules and turns a :class:`~.errors.CliError` or a
``ConfigError`` into one line on stderr and its exit status (2 for bad input).
"""

from __future__ import annotations

from litellm_canary.cli.dispatch import main
from litellm_canary.cli.errors import CliError

__all__ = ["CliError", "main"]

"""The command line's one error type: a message for one line on stderr and the exit status."""

from __future__ import annotations

__all__ = ["BAD_INPUT", "FAILED_ON_THE_WAY", "CliError"]

BAD_INPUT = 2  # usage, config, unknown group or id, unreadable file, refused token
FAILED_ON_THE_WAY = 1  # the operation started and failed (gateway unreachable, flag file not writable)


class CliError(Exception):
    """Report ``message`` on one line (``litellm-canary: message``) and exit with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code

"""A process's CPU time, read from Linux ``/proc/<pid>/stat``.

:class:`ProcessCpu` reads the CPU seconds a process has consumed: ``utime + stime`` (user and system
time of the process itself, all its threads) plus ``cutime + cstime`` (its children that it has
waited for), in clock ticks (``os.sysconf("SC_CLK_TCK")``, 100 on Linux) converted to seconds. The
difference of two readings is the CPU the process spent between them, whatever else the machine
did meanwhile: wall time drifts with the machine's load, CPU per unit of work much less.

Where ``/proc`` is not there (not Linux, a container without it, the process gone), a reading is
None and :attr:`ProcessCpu.unavailable` says why; nothing raises.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ProcessCpu", "clock_ticks", "stat_ticks"]

# fields of /proc/<pid>/stat counted from 1 (man 5 proc): 14 utime, 15 stime, 16 cutime, 17 cstime
_FIRST, _LAST = 14, 17


def stat_ticks(text: str) -> int:
    """utime + stime + cutime + cstime of a ``/proc/<pid>/stat`` line, in clock ticks.

    The command name (field 2) is in parentheses and may hold spaces and parentheses itself, so
    fields are counted after its last ``)``. Raises ``ValueError`` for a line that is not one."""
    head, paren, rest = text.rpartition(")")
    if not paren or "(" not in head:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    fields = rest.split()  # fields[0] is field 3 (the state)
    if len(fields) < _LAST - 2:
        raise ValueError(f"a /proc/<pid>/stat line with {len(fields) + 2} fields, expected >= {_LAST}")
    return sum(int(field) for field in fields[_FIRST - 3 : _LAST - 2])


def clock_ticks() -> int | None:
    """Clock ticks per second (``SC_CLK_TCK``), None where the system does not say."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):  # no os.sysconf (Windows) or no such name
        return None
    return ticks if ticks > 0 else None


class ProcessCpu:
    """The CPU seconds consumed by process ``pid`` (and its waited-for children), from ``proc``."""

    def __init__(self, pid: int | None, proc: Path = Path("/proc"), ticks: int | None = None) -> None:
        self.pid = pid
        self.path = None if pid is None else proc / str(pid) / "stat"
        self.ticks = clock_ticks() if ticks is None else ticks
        self.unavailable: str | None = None  # why a reading was None (the first reason seen)

    def seconds(self) -> float | None:
        """CPU seconds so far, or None (and :attr:`unavailable` set) when it cannot be read."""
        try:
            return self._read()
        except _Unavailable as why:
            if self.unavailable is None:
                self.unavailable = str(why)
            return None

    def since(self, start: float | None) -> float | None:
        """CPU seconds since the reading ``start`` (None when either reading is None)."""
        now = self.seconds()
        return None if start is None or now is None else now - start

    def _read(self) -> float:
        if self.path is None:
            raise _Unavailable("the process has no pid (not started)")
        if self.ticks is None:
            raise _Unavailable("the system does not say its clock ticks per second (SC_CLK_TCK)")
        try:
            return stat_ticks(self.path.read_text()) / self.ticks
        except OSError as error:
            raise _Unavailable(f"cannot read {self.path}: {error.strerror or error}") from None
        except ValueError as error:
            raise _Unavailable(f"cannot parse {self.path}: {error}") from None


class _Unavailable(Exception):
    """Why a CPU reading cannot be had."""

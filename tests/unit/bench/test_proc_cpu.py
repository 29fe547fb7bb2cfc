"""A process's CPU time from a fake ``/proc``: the fields counted, and a reason instead of a crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from litellm_canary.bench.proc_cpu import ProcessCpu, clock_ticks, stat_ticks

# man 5 proc: pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
#             utime stime cutime cstime priority nice num_threads ...
STAT = "4242 (litellm) S 1 4242 4242 0 -1 4194304 9000 0 12 0 250 50 7 3 20 0 9 0 1234 567 89"


def _proc(tmp_path: Path, pid: int, text: str) -> Path:
    (tmp_path / str(pid)).mkdir()
    (tmp_path / str(pid) / "stat").write_text(text + "\n")
    return tmp_path


def test_utime_stime_and_the_waited_for_childrens_times_are_summed() -> None:
    assert stat_ticks(STAT) == 250 + 50 + 7 + 3


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() -> None:
    tricky = STAT.replace("(litellm)", "(a) b (c))")
    assert stat_ticks(tricky) == 310


@pytest.mark.parametrize("text", ["", "4242 litellm S 1", "4242 (litellm) S 1 2 3"])
def test_a_line_that_is_not_a_stat_line_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="/proc/<pid>/stat"):
        stat_ticks(text)


def test_a_reading_is_seconds_and_since_is_the_difference(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 4242, STAT)
    cpu = ProcessCpu(4242, proc=proc, ticks=100)
    start = cpu.seconds()
    assert start == pytest.approx(3.10)
    (proc / "4242" / "stat").write_text(STAT.replace(" 250 50 ", " 300 60 "))
    assert cpu.since(start) == pytest.approx(0.60)
    assert cpu.unavailable is None


def test_no_proc_is_none_with_the_reason_never_an_error(tmp_path: Path) -> None:
    cpu = ProcessCpu(4242, proc=tmp_path / "no-proc", ticks=100)
    assert cpu.seconds() is None and cpu.since(None) is None
    assert cpu.unavailable is not None and "no-proc/4242/stat" in cpu.unavailable
    assert "No such file" in cpu.unavailable


def test_an_unparsable_stat_file_no_pid_or_no_tick_rate_are_reasons_too(tmp_path: Path) -> None:
    garbled = ProcessCpu(7, proc=_proc(tmp_path, 7, "garbage"), ticks=100)
    assert garbled.seconds() is None and "cannot parse" in str(garbled.unavailable)
    not_started = ProcessCpu(None)
    assert not_started.seconds() is None and "no pid" in str(not_started.unavailable)
    no_ticks = ProcessCpu(7, proc=tmp_path, ticks=None)
    no_ticks.ticks = None  # a system that does not say SC_CLK_TCK
    assert no_ticks.seconds() is None and "SC_CLK_TCK" in str(no_ticks.unavailable)


def test_the_first_reason_is_kept(tmp_path: Path) -> None:
    cpu = ProcessCpu(4242, proc=tmp_path, ticks=100)
    cpu.seconds()
    first = cpu.unavailable
    _proc(tmp_path, 4242, "garbage")
    cpu.seconds()
    assert cpu.unavailable == first


def test_this_process_reads_its_own_cpu_on_linux() -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("no /proc on this system")
    assert clock_ticks() is not None
    seconds = ProcessCpu(os.getpid()).seconds()
    assert seconds is not None and seconds > 0

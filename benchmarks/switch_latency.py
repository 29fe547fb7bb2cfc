"""How fast a rollback takes effect under streaming load, and what happens to streams in flight.

Setup. Two ``FakeUpstream`` servers on 127.0.0.1 (stable and canary; by default in a child process,
so their work does not compete for this process's GIL; ``--upstreams thread`` keeps them here)
stream a few-word answer with ``chunk_delay_s`` between chunks. A ``litellm.Router`` group ``chat``
points at them; a canary is attached with the memory flag store, its automatic-rollback triggers
off, and the flag set to the canary (``set_side``, or ``--canary-percent``). ``--clients`` client
coroutines each loop: stream ``acompletion(..., stream=True)``, consume the stream fully, think for an
exponentially distributed time (mean ``--think-ms``), repeat. Each stream is counted completed or
failed per side (the side is the request's canary stamp).

Load. LiteLLM spends ~30 ms of CPU per streamed call, so a 2-core machine sustains only ~15-25
streams/s. The default think time keeps 200 clients at about half of that. Without think time the
loop saturates: every stream (hence every drain) takes seconds, 100 flips take many minutes, and
LiteLLM starts failing connects (failed attempts the Router retries, on stable after a rollback).

A controller performs ``--flips`` rollback/re-arm cycles. Each cycle waits until canary attempts
are in flight (plus a random jitter, so flips land mid-stream), then ``t0 = perf_counter();
record = canary.rollback("chat", ...)``, waits for the first stable decision, waits for
``canary.drained("chat")``, reads the rollback record's in-flight canary attempts (completed /
failed / expired), re-arms and sets the flag back to the canary (the rollback wrote "stable").
Before the load starts, ``--idle-flips`` flips without any traffic time the ``rollback()`` call idle.

Every decision is logged by an ``on_decision`` listener as ``(perf_counter(), is_canary)``. Per flip:

* ``decision_to_restored`` = first stable decision after ``t0`` minus ``t0``. In one asyncio loop no
  decision can run while ``rollback()`` runs, so it is ``rollback_call`` (``t0`` until ``rollback()``
  returned: latch, flag-store write, log record, span) plus ``first_decision_wait`` (until the next
  request reaches the routing step: about the gap between requests, see ``decisions_per_s``).
* ``canary_after_flip`` counts canary decisions after ``rollback()`` returned and before the re-arm.

Targets (reported, not enforced): ``decision_to_restored_us_p99 <= 1000``, ``canary_after_flip == 0``,
``inflight_failed == 0``.

    python benchmarks/switch_latency.py [--json] [--quick] [--clients N] [--flips N] [--think-ms MS]

The measurement lives in :mod:`litellm_canary.bench.switch` (also ``litellm-canary bench switch
--offline``); this script only exposes all of its settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm_canary.bench import report, switch, switch_report
from litellm_canary.bench.switch_setup import Settings, default_settings


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, bool]:
    """The run's settings and whether to print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run (small counts)")
    parser.add_argument("--clients", type=int, help="concurrent client coroutines (default 200)")
    parser.add_argument("--flips", type=int, help="rollback/re-arm cycles (default 100)")
    parser.add_argument("--idle-flips", type=int, help="flips without traffic first (default 20)")
    parser.add_argument(
        "--think-ms",
        type=float,
        help="mean think time between a client's streams (default 25000: about 8 streams/s from 200 "
        "clients, about half of what LiteLLM sustains on a busy 2-core machine; near saturation streams "
        "take seconds, so does every drain, and LiteLLM starts failing connects)",
    )
    parser.add_argument("--chunk-delay-ms", type=float, default=10.0, help="upstream delay between chunks")
    parser.add_argument("--words", type=int, default=5, help="answer length in words (content chunks)")
    parser.add_argument("--canary-percent", type=float, default=100.0, help="share of users on the canary")
    parser.add_argument("--min-in-flight", type=int, default=1, help="canary attempts in flight to flip")
    parser.add_argument("--flip-jitter-ms", type=float, default=30.0, help="random wait before a flip")
    parser.add_argument("--drain-timeout-s", type=float, default=30.0)
    parser.add_argument("--step-timeout-s", type=float, default=30.0)
    parser.add_argument(
        "--upstreams",
        choices=("process", "thread"),
        default="process",
        help="serve the fake upstreams from a child process (default: they do not compete for this "
        "process's GIL) or from threads of this process",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-level", default="WARNING", help="stderr log level (default WARNING)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(name)s: %(message)s")
    try:
        settings = default_settings(
            args.quick,
            clients=args.clients,
            flips=args.flips,
            idle_flips=args.idle_flips,
            think_ms=args.think_ms,
            chunk_delay_ms=args.chunk_delay_ms,
            words=args.words,
            canary_percent=args.canary_percent,
            min_in_flight=args.min_in_flight,
            flip_jitter_ms=args.flip_jitter_ms,
            drain_timeout_s=args.drain_timeout_s,
            step_timeout_s=args.step_timeout_s,
            upstreams=args.upstreams,
            seed=args.seed,
        )
    except ValueError as error:
        parser.error(str(error))
    return settings, args.json


def main(argv: Sequence[str] | None = None) -> int:
    settings, as_json = parse_args(argv)
    report.measure_and_emit(lambda: switch.measure(settings), as_json, switch_report.summary_lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

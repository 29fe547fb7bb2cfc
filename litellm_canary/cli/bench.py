"""``litellm-canary bench``: the package's own measurements, against bundled fake upstreams.

* ``bench switch --offline``: rollback latency under streaming load and the fate of in-flight
  streams (:mod:`litellm_canary.bench.switch`)
* ``bench switch --url URL [--url URL ...]``: the same against running gateways or LiteLLM proxies
  (:mod:`.bench_remote`, :mod:`litellm_canary.bench.remote_switch`)
* ``bench overhead``: what the canary costs one request on the Router's hot path
  (:mod:`litellm_canary.bench.overhead`)
* ``bench proxy``: what the canary callback costs a real LiteLLM proxy under streaming load, and a
  rollback reaching every ``--num_workers`` worker (:mod:`litellm_canary.bench.proxy_overhead`)

Each prints a summary (p50/p99/max) or, with ``--json``, one JSON object on one line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

import litellm_canary.cli.bench_remote as remote_switch_cli
from litellm_canary.cli.errors import BAD_INPUT, FAILED_ON_THE_WAY, CliError

__all__ = ["add_parser", "run_overhead", "run_proxy", "run_switch"]


def add_parser(commands: Any) -> None:
    """Add ``bench switch`` and ``bench overhead`` to the CLI's subparsers."""
    bench = commands.add_parser("bench", help="measure rollback latency or the per-request overhead")
    kinds = bench.add_subparsers(dest="bench_command", required=True)

    switch = kinds.add_parser("switch", help="rollback latency under streaming load")
    where = switch.add_mutually_exclusive_group()
    where.add_argument(
        "--offline",
        action="store_true",
        help="measure an in-process Router and canary against bundled fake upstreams",
    )
    where.add_argument(
        "--url",
        action="append",
        help="a running gateway's or LiteLLM proxy's root URL (repeat for a fleet; the first one "
        "gets the rollbacks)",
    )
    switch.add_argument("--clients", type=int, help="concurrent clients (default 200 offline, 8 with --url)")
    switch.add_argument(
        "--flips", type=int, help="rollback/re-arm cycles (default 100 offline, 10 with --url)"
    )
    switch.add_argument("--json", action="store_true", help="print one JSON object")
    offline = switch.add_argument_group("--offline only")
    offline.add_argument("--think-ms", type=float, help="mean think time between streams (default 25000)")
    offline.add_argument("--quick", action="store_true", help="a few-second smoke run (small counts)")
    remote_switch_cli.add_arguments(switch.add_argument_group("--url only"))
    switch.set_defaults(run=run_switch)

    overhead = kinds.add_parser("overhead", help="the canary's cost per request (mocked upstream)")
    overhead.add_argument("--iterations", type=int, help="timed calls per variant (default 1500)")
    overhead.add_argument("--quick", action="store_true", help="a few-second smoke run (small counts)")
    overhead.add_argument("--json", action="store_true", help="print one JSON object")
    overhead.set_defaults(run=run_overhead)

    proxy = kinds.add_parser("proxy", help="the canary callback's cost in a real LiteLLM proxy under load")
    proxy.add_argument("--clients", type=int, help="concurrent streaming clients (default 32)")
    proxy.add_argument("--requests", type=int, help="requests per configuration per round (default 400)")
    proxy.add_argument("--rounds", type=int, help="rounds of both configurations (default 8)")
    proxy.add_argument(
        "--schedule",
        metavar="paired|alternating",
        help="paired: both proxies loaded at the same time in each round (default); alternating: one "
        "after the other",
    )
    proxy.add_argument(
        "--flips", type=int, help="rollbacks of the --num_workers 2 phase (default 10; 0 skips)"
    )
    proxy.add_argument(
        "--workers-via",
        metavar="file|redis",
        help="how a rollback reaches the other worker: the flag file (default) or a Redis broadcast "
        "(needs redis-server)",
    )
    proxy.add_argument("--quick", action="store_true", help="a short smoke run (small counts)")
    proxy.add_argument("--json", action="store_true", help="print one JSON object")
    proxy.set_defaults(run=run_proxy)


def _quiet() -> None:
    """No LiteLLM cost-map download, and only warnings on stderr."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")


def run_switch(args: argparse.Namespace) -> int:
    """Run ``bench switch``; 0 when it ran (its targets are reported, not enforced)."""
    if args.url:
        _quiet()
        return remote_switch_cli.run(args)
    if not args.offline:
        raise CliError(
            "bench switch needs --url URL (running gateways) or --offline (bundled fakes)", BAD_INPUT
        )
    remote_switch_cli.refuse_remote_options(args)
    _quiet()
    from litellm_canary.bench import report, switch, switch_report, switch_setup

    try:
        settings = switch_setup.default_settings(
            args.quick, clients=args.clients, flips=args.flips, think_ms=args.think_ms
        )
    except ValueError as error:
        raise CliError(f"bench switch: {error}", BAD_INPUT) from None
    report.measure_and_emit(lambda: switch.measure(settings), args.json, switch_report.summary_lines)
    return 0


def run_overhead(args: argparse.Namespace) -> int:
    """Run ``bench overhead``; 0 when it ran (its targets are reported, not enforced)."""
    _quiet()
    from litellm_canary.bench import overhead, report

    try:
        settings = overhead.default_settings(args.quick, iterations=args.iterations)
    except ValueError as error:
        raise CliError(f"bench overhead: {error}", BAD_INPUT) from None
    report.measure_and_emit(lambda: overhead.measure(settings), args.json, overhead.summary_lines)
    return 0


def run_proxy(args: argparse.Namespace) -> int:
    """Run ``bench proxy``; 0 when it ran (its targets are reported, not enforced)."""
    _quiet()
    from litellm_canary.bench import proxy_overhead, proxy_report, proxy_setup, report

    try:
        settings = proxy_setup.default_settings(
            args.quick,
            clients=args.clients,
            requests=args.requests,
            rounds=args.rounds,
            flips=args.flips,
            schedule=args.schedule,
            workers_via=args.workers_via,
        )
    except ValueError as error:
        raise CliError(f"bench proxy: {error}", BAD_INPUT) from None
    try:
        report.measure_and_emit(
            lambda: proxy_overhead.measure(settings), args.json, proxy_report.summary_lines
        )
    except (RuntimeError, OSError) as error:  # a process did not start (no `litellm`?), a wait timed out
        raise CliError(f"bench proxy: {error}", FAILED_ON_THE_WAY) from None
    return 0

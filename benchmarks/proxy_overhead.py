"""What the canary callback costs a real LiteLLM proxy under streaming load (with / without, one
run, both proxies loaded at once in each round, or alternating), and how fast a rollback reaches
every worker of a ``--num_workers 2`` proxy: what is measured and why is documented in
:mod:`litellm_canary.bench.proxy_overhead`.

Targets (reported, not enforced, each with a verdict met / missed / not_resolved): ``cpu_ratio <=
1.03``, ``throughput_ratio >= 0.97``, ``p99_added_ms <= 1``; workers phase ``confirmed_ms`` p99 <=
the flag poll interval + 50 ms (``--workers-via file``) or 50 ms (``--workers-via redis``).

    python benchmarks/proxy_overhead.py [--json] [--quick] [--clients N] [--requests N] [--rounds N]
        [--warmup N] [--canary-percent P] [--flips N] [--workers N] [--schedule paired|alternating]
        [--workers-via file|redis]

The measurement lives in :mod:`litellm_canary.bench.proxy_overhead` (also ``litellm-canary bench
proxy``); this script only exposes all of its settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm_canary.bench import report
from litellm_canary.bench.proxy_overhead import measure
from litellm_canary.bench.proxy_report import summary_lines
from litellm_canary.bench.proxy_setup import Settings, default_settings


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, bool]:
    """The run's settings and whether to print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (small counts)")
    parser.add_argument("--clients", type=int, help="concurrent streaming clients (default 32)")
    parser.add_argument("--requests", type=int, help="requests per configuration per round (default 400)")
    parser.add_argument("--rounds", type=int, help="rounds of both configurations (default 8)")
    parser.add_argument(
        "--schedule",
        metavar="paired|alternating",
        help="both proxies loaded at once per round (paired, default) or one after the other",
    )
    parser.add_argument("--warmup", type=int, help="untimed requests per configuration (default 100)")
    parser.add_argument(
        "--canary-percent", type=float, help="users the flag sends to the canary (default 10)"
    )
    parser.add_argument(
        "--flips", type=int, help="rollbacks of the --num_workers phase (default 10; 0 skips)"
    )
    parser.add_argument("--workers", type=int, help="--num_workers of that phase (default 2)")
    parser.add_argument(
        "--workers-via", metavar="file|redis", help="how a rollback reaches the other workers (default file)"
    )
    parser.add_argument("--log-level", default="WARNING", help="stderr log level (default WARNING)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(name)s: %(message)s")
    try:
        settings = default_settings(
            args.quick,
            clients=args.clients,
            requests=args.requests,
            rounds=args.rounds,
            warmup=args.warmup,
            canary_percent=args.canary_percent,
            flips=args.flips,
            workers=args.workers,
            schedule=args.schedule,
            workers_via=args.workers_via,
        )
    except ValueError as error:
        parser.error(str(error))
    return settings, args.json


def main(argv: Sequence[str] | None = None) -> int:
    settings, as_json = parse_args(argv)
    report.measure_and_emit(lambda: measure(settings), as_json, summary_lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What attaching a canary costs one request on the Router's hot path (end to end, the decision alone,
and its breakdown): what is measured and why is documented in :mod:`litellm_canary.bench.overhead`.

Targets (reported, not enforced): ``ratio <= 1.05``, ``decision_us_median <= 30``.

    python benchmarks/overhead.py [--json] [--quick] [--iterations N] [--block N] [--model M]

The measurement lives in :mod:`litellm_canary.bench.overhead` (also ``litellm-canary bench
overhead``); this script only exposes all of its settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm_canary.bench import report
from litellm_canary.bench.overhead import Settings, default_settings, measure, summary_lines


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, bool]:
    """The run's settings and whether to print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run (small counts)")
    parser.add_argument("--iterations", type=int, help="timed calls per variant (default 1500)")
    parser.add_argument("--block", type=int, help="calls per variant per round (default 50)")
    parser.add_argument("--warmup", type=int, help="untimed calls per variant (default 100)")
    parser.add_argument("--decision-iterations", type=int, help="timed decisions (default 20000)")
    parser.add_argument(
        "--model",
        default="openai/gpt-4o-mini",
        help="deployment model; a priced one avoids LiteLLM's per-call zero-cost diagnostic",
    )
    parser.add_argument("--flag-variant", choices=("stable", "canary"), default="stable")
    parser.add_argument("--log-level", default="WARNING", help="stderr log level (default WARNING)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(name)s: %(message)s")
    try:
        settings = default_settings(
            args.quick,
            iterations=args.iterations,
            block=args.block,
            warmup=args.warmup,
            decision_iterations=args.decision_iterations,
            model=args.model,
            flag_variant=args.flag_variant,
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

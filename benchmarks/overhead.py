"""What attaching a canary costs one request on the Router's hot path.

What is measured
----------------
* **End to end.** ``await router.acompletion(model="chat", messages=..., mock_response="hi")`` on two
  otherwise identical ``litellm.Router`` instances whose group ``chat`` has two mocked deployments
  (``chat-stable``, ``chat-canary``; LiteLLM's ``mock_response``, so no network): a *baseline* Router
  without a canary, and a *canary* Router with ``litellm_canary.attach`` (rollout ``chat``, flag
  ``chat-canary`` served by the OpenFeature SDK's ``InMemoryProvider`` -- the application's provider,
  no flag store). Calls run one at a time; after a warm-up of both Routers the two variants alternate
  in blocks (ABBA order), so drift and noise from other work on the machine hit both alike. We report
  each variant's median latency and ``ratio = canary / baseline`` (plus the median of the per-round
  block ratios, which pairs neighbouring blocks).
* **The decision alone.** ``await canary._routing.async_filter_deployments(group, deployments,
  messages, request_kwargs)`` (the LiteLLM deployment filter that decides the side and narrows the
  candidates; LiteLLM then picks among them), the canary's work on every attempt, timed call by
  call with a fresh, realistic ``request_kwargs`` dict each time (built outside the timed region;
  fresh so no request pin applies). The attempt each decision opens is closed right after the
  timed region, so no state accumulates.
* **Breakdown.** Where a decision's time goes, timed inside the filter (the flag read and the
  narrowing to the side are wrapped for one extra pass): ``flag_read`` (OpenFeature),
  ``deployment_choice`` (narrowing LiteLLM's candidates to the side) and ``other`` (for a canary
  decision this includes asking the Router's healthy chain whether the canary side can serve).
  Each part also
  timed alone in a tight loop (``decision_parts_isolated_us``); alone they run about twice as fast
  (warmer caches), so those do not add up to the decision.

The deployments use a priced model (``--model``) because for an unknown one LiteLLM runs a
zero-cost diagnostic on every call, which adds milliseconds to both variants and hides the
difference. ``attach`` is called as an application would, so the canary's process-global LiteLLM
callback and its trigger-evaluation thread are live during baseline calls too; the callback returns
at once for a non-canary call (its cost was below the noise when this was written).

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
    result = report.without_stray_prints(lambda: measure(settings))
    report.emit(result, as_json, summary_lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

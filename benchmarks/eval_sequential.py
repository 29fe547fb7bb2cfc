"""False-rollback rate and detection delay of the eval_score rule's sequential test (simulation).

Setup. :class:`litellm_canary.evals.SequentialEvalTest` with the default rule (``max_drop`` 0.05,
``alpha`` 0.05, ``min_samples`` 30) watches simulated canaries for ``--hours`` (default 48) at
``--per-minute`` scored samples per side per minute (default 1, i.e. 2880 scores per side). Each
minute the stable and the canary scores arrive in a random order; *every* added score is a look
(``test.rejected`` is read after each ``add``), and a run stops at its first rejection.

Scenarios, each with ``--runs`` canaries (default 1000) and a fixed seed:

* A/A (no real difference — any rejection is a false rollback): both sides draw from the same
  distribution, ``bernoulli_0.8`` (pass/fail scores, mean 0.8, variance 0.16) and ``beta_4_1``
  (graded scores, Beta(4, 1), mean 0.8, variance 0.027, drawn by inversion as ``U ** 0.25``). Each
  run false-alarms with probability <= alpha, so ``false_rollbacks <= alpha x aa_runs`` in expectation
  (Ville's inequality; in practice far below, because the bound is for the worst case at the
  H0 boundary ``mu_c = (1 - max_drop) mu_s`` and uses the [0, 1] variance bound 1/4);
* true drop (canary mean = ``(1 - --drop)`` x stable's, default a 10 % drop, i.e. twice ``max_drop``):
  Bernoulli(0.8) vs Bernoulli(0.72), and Beta(4, 1) vs Beta(2.57, 1) (mean 0.72). Reports the detection rate
  within the horizon and the median number of canary samples to detection (over detected runs).

Pure Python (``random``; numpy is not a dependency). ``--quick``: 100 runs over 12 h.

With ``--sources N`` each test runs at ``alpha / N``, as the eval pipeline does when N score series
(sampled traffic, golden set, feedback) are configured: the false-rollback bound per series is then
``alpha / N`` and the detection delay of one series grows a little.

    python benchmarks/eval_sequential.py [--json] [--quick] [--runs N] [--hours H] [--per-minute N]
                                         [--sources N]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from litellm_canary.evals import SequentialEvalTest

Draw = Callable[[random.Random], float]


def bernoulli(p: float) -> Draw:
    def draw(rng: random.Random) -> float:
        return 1.0 if rng.random() < p else 0.0

    return draw


def beta_a1(mean: float) -> Draw:
    """Beta(a, 1) with the given mean (a = mean / (1 - mean)), drawn by inversion as ``U ** (1 / a)``."""
    exponent = (1.0 - mean) / mean

    def draw(rng: random.Random) -> float:
        return float(rng.random() ** exponent)

    return draw


def run_one(
    test: SequentialEvalTest, stable: Draw, canary: Draw, rng: random.Random, minutes: int, per_minute: int
) -> int | None:
    """Canary samples at the first rejection, or ``None`` if none within ``minutes``."""
    test.reset()
    add = test.add
    for _ in range(minutes):
        for _ in range(per_minute):
            if rng.random() < 0.5:
                add("stable", stable(rng))
                if test.rejected:
                    return test.state().canary_samples
                add("canary", canary(rng))
            else:
                add("canary", canary(rng))
                if test.rejected:
                    return test.state().canary_samples
                add("stable", stable(rng))
            if test.rejected:
                return test.state().canary_samples
    return None


def scenario(
    name: str, stable: Draw, canary: Draw, args: argparse.Namespace, seed: int
) -> tuple[dict[str, Any], list[int | None]]:
    rng = random.Random(seed)
    # The eval pipeline runs one test per score source at alpha / sources (union bound).
    test = SequentialEvalTest(args.max_drop, args.alpha / args.sources, args.min_samples)
    minutes = round(args.hours * 60)
    started = time.perf_counter()
    outcomes = [run_one(test, stable, canary, rng, minutes, args.per_minute) for _ in range(args.runs)]
    detected = [n for n in outcomes if n is not None]
    return {
        "name": name,
        "runs": args.runs,
        "rejections": len(detected),
        "rejection_rate": len(detected) / args.runs,
        "median_samples_to_reject": statistics.median(detected) if detected else None,
        "elapsed_s": round(time.perf_counter() - started, 2),
    }, outcomes


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="100 runs over 12 h (a few seconds)")
    parser.add_argument("--runs", type=int, default=None, help="canaries per scenario (default 1000)")
    parser.add_argument("--hours", type=float, default=None, help="simulated watch time (default 48)")
    parser.add_argument("--per-minute", type=int, default=1, help="scored samples per side per minute")
    parser.add_argument("--max-drop", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--min-samples", type=int, default=30)
    parser.add_argument("--drop", type=float, default=0.10, help="true relative drop of the canary mean")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument(
        "--sources",
        type=int,
        default=1,
        help="score series judged side by side (traffic, golden, feedback): each test runs at alpha / N",
    )
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 100 if args.quick else 1000
    if args.hours is None:
        args.hours = 12.0 if args.quick else 48.0
    if args.runs < 1 or args.hours <= 0 or args.per_minute < 1 or args.sources < 1:
        parser.error("--runs, --hours, --per-minute and --sources must be positive")

    started = time.perf_counter()
    keep = 1.0 - args.drop
    aa = [
        scenario("aa_bernoulli_0.8", bernoulli(0.8), bernoulli(0.8), args, args.seed),
        scenario("aa_beta_4_1", beta_a1(0.8), beta_a1(0.8), args, args.seed + 1),
    ]
    drops = [
        scenario("drop_bernoulli_0.8", bernoulli(0.8), bernoulli(0.8 * keep), args, args.seed + 2),
        scenario("drop_beta_4_1", beta_a1(0.8), beta_a1(0.8 * keep), args, args.seed + 3),
    ]
    aa_runs = sum(s["runs"] for s, _ in aa)
    false_rollbacks = sum(s["rejections"] for s, _ in aa)
    drop_outcomes = [n for _, outcomes in drops for n in outcomes]
    detected = [n for n in drop_outcomes if n is not None]
    per_hour = 60 * args.per_minute
    median = statistics.median(detected) if detected else None
    result: dict[str, Any] = {
        "aa_runs": aa_runs,
        "false_rollbacks": false_rollbacks,
        "false_rollback_rate": false_rollbacks / aa_runs,
        "alpha": args.alpha,
        "sources": args.sources,
        "alpha_each": args.alpha / args.sources,
        "within_alpha": false_rollbacks <= args.alpha * aa_runs,
        "true_drop": args.drop,
        "true_drop_runs": len(drop_outcomes),
        "true_drop_detection_rate": len(detected) / len(drop_outcomes),
        "true_drop_detect_median_samples": median,
        "true_drop_detect_median_hours": None if median is None else round(median / per_hour, 2),
        "samples_per_side": round(args.hours * 60) * args.per_minute,
        "hours": args.hours,
        "per_minute": args.per_minute,
        "max_drop": args.max_drop,
        "min_samples": args.min_samples,
        "seed": args.seed,
        "scenarios": [s for s, _ in aa + drops],
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if key != "scenarios":
                print(f"{key:34} {value}")
        for s in result["scenarios"]:
            print(
                f"  {s['name']:22} rejections {s['rejections']}/{s['runs']} "
                f"median samples {s['median_samples_to_reject']} ({s['elapsed_s']} s)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""False-rollback rate, power and detection delay of the eval_score rule's sequential test (simulation).

Setup. The test of :class:`litellm_canary.evals.SequentialEvalTest` (testing by betting on
paired differences, predictable plug-in bets) with the default rule (``max_drop`` 0.05, ``alpha``
0.05, ``min_samples`` 30) watches simulated canaries for ``--hours`` (default 48) at
``--per-minute`` scored samples per side per minute (default 1, i.e. 2880 scores per side). Each
minute brings one stable and one canary score per source in either order; the in-process test pairs
them in arrival order, so each minute closes exactly one pair per source whatever the order, and
the pair's closing score is the only look that can change the verdict: *every* score is a look. A
run stops at its first rejection.

The simulation is numpy-vectorised over runs (:class:`BettingPaths` is the same arithmetic as
``SequentialEvalTest``, one array element per run; ``tests/unit/detection/test_sequential.py``
checks they agree score for score). Several sources are combined as the eval pipeline does
(:class:`~litellm_canary.detection.evals.judge.EvalJudge`): the mean of the sources' e-values is
tested at the full ``alpha``.

Score kinds: ``bernoulli`` (pass/fail scores, stable mean 0.8, variance 0.16) and ``beta`` (graded
scores, stable Beta(4, 1): mean 0.8, variance 0.027, drawn by inversion as ``U ** 0.25``; a canary
with mean ``m`` is Beta(m / (1 - m), 1)).

Scenarios (``--runs`` canaries each, default 1000, fixed seeds):

* A/A at equal means and A/A **at the H0 boundary** ``mu_c = (1 - max_drop) mu_s`` (the least
  favourable null: any rejection is a false rollback, Ville's inequality caps the rate at ``alpha``);
* a true drop (``--drop``, default 10 %, twice ``max_drop``): detection rate within the horizon and
  median canary samples to detection (over detected runs), per kind and pooled;
* the power curve: drops 5-20 %, both kinds, with one source and with three sources (the drop seen by
  one source only, the two others A/A at equal means, and by all three).

    python benchmarks/eval_sequential.py [--json] [--quick] [--runs N] [--hours H] [--per-minute N]
                                         [--plot docs/eval-power.png]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from litellm_canary.detection.evals.sequential import MAX_BET, PRIOR_VARIANCE, TUNED_PAIRS

Floats = NDArray[np.float64]
KINDS = ("bernoulli", "beta")
STABLE_MEAN = 0.8
POWER_DROPS = (0.05, 0.075, 0.10, 0.125, 0.15, 0.175, 0.20)


class BettingPaths:
    """``runs`` independent copies of the betting e-process of ``SequentialEvalTest`` (one per element)."""

    def __init__(
        self,
        runs: int,
        max_drop: float,
        alpha: float,
        *,
        tuned_pairs: float = TUNED_PAIRS,
        max_bet: float = MAX_BET,
        prior: float = PRIOR_VARIANCE,
    ):
        self.k = 1.0 - max_drop
        self.threshold = math.log(1.0 / alpha)
        self.tuned_pairs = tuned_pairs
        self.max_bet = max_bet
        self.prior = prior
        self.pairs = 0
        self.log_wealth = np.zeros(runs)
        self.bet = np.zeros(runs)
        self.sum_z = np.zeros(runs)
        self.sum_z2 = np.zeros(runs)

    def pair(self, stable: Floats, canary: Floats) -> Floats:
        """Bet on one pair per run (batch means of stable and canary scores); the new log wealth."""
        z = self.k * stable - canary
        self.log_wealth += np.log1p(self.bet * z)
        self.pairs += 1
        self.sum_z += z
        self.sum_z2 += z * z
        n = self.pairs + 1.0  # evals.plug_in_bet, vectorised
        variance = (self.prior + self.sum_z2 - self.sum_z * self.sum_z / n) / n
        bet = np.minimum(np.sqrt(2.0 * self.threshold / (variance * self.tuned_pairs)), self.max_bet)
        self.bet = np.where(self.sum_z > 0.0, bet, 0.0)
        return self.log_wealth


def draw(kind: str, mean: float, rng: np.random.Generator, runs: int) -> Floats:
    if kind == "bernoulli":
        return (rng.random(runs) < mean).astype(np.float64)
    return rng.random(runs) ** ((1.0 - mean) / mean)  # Beta(a, 1), a = mean / (1 - mean)


def simulate(
    kind: str,
    canary_means: list[float],
    *,
    runs: int,
    pairs: int,
    max_drop: float,
    alpha: float,
    min_samples: int,
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    """Canary samples per source at the first rejection of each run (-1: none within ``pairs``).

    One source per entry of ``canary_means`` (stable mean 0.8 everywhere); the sources' e-values are
    averaged and tested at ``alpha``.
    """
    paths = [BettingPaths(runs, max_drop, alpha) for _ in canary_means]
    threshold = math.log(1.0 / alpha)
    log_n = math.log(len(canary_means))
    detected = np.full(runs, -1, dtype=np.int64)
    for t in range(1, pairs + 1):
        logs = [
            p.pair(draw(kind, STABLE_MEAN, rng, runs), draw(kind, m, rng, runs))
            for p, m in zip(paths, canary_means, strict=True)
        ]
        combined = logs[0].copy() if len(logs) == 1 else np.logaddexp.reduce(np.stack(logs), axis=0) - log_n
        if t >= min_samples:
            hit = (combined >= threshold) & (detected < 0)
            detected[hit] = t
            if (detected >= 0).all():
                break
    return detected


def summarise(detected: NDArray[np.int64]) -> dict[str, Any]:
    hits = detected[detected >= 0]
    return {
        "runs": int(detected.size),
        "rejections": int(hits.size),
        "rejection_rate": hits.size / detected.size,
        "median_samples_to_reject": float(np.median(hits)) if hits.size else None,
    }


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="200 runs over 12 h, no power curve (seconds)")
    parser.add_argument("--runs", type=int, default=None, help="canaries per scenario (default 1000)")
    parser.add_argument("--hours", type=float, default=None, help="simulated watch time (default 48)")
    parser.add_argument("--per-minute", type=int, default=1, help="scored samples per side per minute")
    parser.add_argument("--max-drop", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--min-samples", type=int, default=30)
    parser.add_argument("--drop", type=float, default=0.10, help="true relative drop of the canary mean")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--no-power", action="store_true", help="skip the power curve")
    parser.add_argument("--plot", default=None, help="write the power curve as a PNG here (needs matplotlib)")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 200 if args.quick else 1000
    if args.hours is None:
        args.hours = 12.0 if args.quick else 48.0
    if args.runs < 1 or args.hours <= 0 or args.per_minute < 1:
        parser.error("--runs, --hours and --per-minute must be positive")
    if not 0 < args.alpha < 1 or not 0 < args.max_drop < 1 or not 0 <= args.drop < 1:
        parser.error("--alpha and --max-drop must be in (0, 1), --drop in [0, 1)")

    started = time.perf_counter()
    pairs = round(args.hours * 60) * args.per_minute
    common = {
        "runs": args.runs,
        "pairs": pairs,
        "max_drop": args.max_drop,
        "alpha": args.alpha,
        "min_samples": args.min_samples,
    }
    seed = iter(range(args.seed, args.seed + 10_000))

    def run(name: str, kind: str, canary_means: list[float]) -> tuple[dict[str, Any], NDArray[np.int64]]:
        t0 = time.perf_counter()
        detected = simulate(kind, canary_means, rng=np.random.default_rng(next(seed)), **common)
        return {
            "name": name,
            **summarise(detected),
            "elapsed_s": round(time.perf_counter() - t0, 2),
        }, detected

    boundary = STABLE_MEAN * (1.0 - args.max_drop)
    aa = [run(f"aa_{kind}", kind, [STABLE_MEAN]) for kind in KINDS]
    aa_boundary = [run(f"aa_boundary_{kind}", kind, [boundary]) for kind in KINDS]
    drops = [run(f"drop_{kind}", kind, [STABLE_MEAN * (1.0 - args.drop)]) for kind in KINDS]

    power: list[dict[str, Any]] = []
    if not (args.quick or args.no_power):
        for kind in KINDS:
            for drop in POWER_DROPS:
                bad = STABLE_MEAN * (1.0 - drop)
                for sources, drop_sources, means in (
                    (1, 1, [bad]),
                    (3, 1, [bad, STABLE_MEAN, STABLE_MEAN]),
                    (3, 3, [bad, bad, bad]),
                ):
                    summary, _ = run(f"power_{kind}_{drop}_{sources}_{drop_sources}", kind, means)
                    power.append(
                        {
                            "drop": drop,
                            "kind": kind,
                            "sources": sources,
                            "drop_sources": drop_sources,
                            "detected_rate": summary["rejection_rate"],
                            "median_samples": summary["median_samples_to_reject"],
                        }
                    )

    aa_runs = sum(s["runs"] for s, _ in aa)
    false_rollbacks = sum(s["rejections"] for s, _ in aa)
    boundary_runs = sum(s["runs"] for s, _ in aa_boundary)
    boundary_false = sum(s["rejections"] for s, _ in aa_boundary)
    detected = [int(n) for _, d in drops for n in d if n >= 0]
    median = statistics.median(detected) if detected else None
    per_hour = 60 * args.per_minute
    result: dict[str, Any] = {
        "test": "betting (predictable plug-in) on paired differences; sources: mean e-value at alpha",
        "aa_runs": aa_runs,
        "false_rollbacks": false_rollbacks,
        "false_rollback_rate": false_rollbacks / aa_runs,
        "aa_boundary_runs": boundary_runs,
        "aa_boundary_false_rollbacks": boundary_false,
        "aa_boundary_false_rollback_rate": boundary_false / boundary_runs,
        "alpha": args.alpha,
        "within_alpha": false_rollbacks <= args.alpha * aa_runs
        and boundary_false <= args.alpha * boundary_runs,
        "true_drop": args.drop,
        "true_drop_runs": sum(s["runs"] for s, _ in drops),
        "true_drop_detection_rate": len(detected) / sum(s["runs"] for s, _ in drops),
        "true_drop_detect_median_samples": median,
        "true_drop_detect_median_hours": None if median is None else round(median / per_hour, 2),
        "true_drop_by_kind": {
            kind: {"detected_rate": s["rejection_rate"], "median_samples": s["median_samples_to_reject"]}
            for kind, (s, _) in zip(KINDS, drops, strict=True)
        },
        "power": power,
        "samples_per_side": pairs,
        "hours": args.hours,
        "per_minute": args.per_minute,
        "max_drop": args.max_drop,
        "min_samples": args.min_samples,
        "seed": args.seed,
        "scenarios": [s for s, _ in aa + aa_boundary + drops],
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    if args.plot and power:
        plot(power, args.plot, args)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if key not in ("scenarios", "power"):
                print(f"{key:34} {value}")
        for s in result["scenarios"]:
            print(
                f"  {s['name']:22} rejections {s['rejections']}/{s['runs']} "
                f"median samples {s['median_samples_to_reject']} ({s['elapsed_s']} s)"
            )
        for p in power:
            print(
                f"  power {p['kind']:9} drop {p['drop']:<6} sources {p['sources']} "
                f"(drop in {p['drop_sources']}) "
                f"detected {p['detected_rate']:.3f} median {p['median_samples']}"
            )
    return 0


def plot(power: list[dict[str, Any]], path: str, args: argparse.Namespace) -> None:
    """Detection rate and median delay against the true drop, per kind and source setup."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate_ax, delay_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    setups = [(1, 1, "1 source"), (3, 1, "3 sources, drop in 1"), (3, 3, "3 sources, drop in all")]
    for kind, colour in zip(KINDS, ("tab:blue", "tab:orange"), strict=True):
        for (sources, drop_sources, label), style in zip(setups, ("-", "--", ":"), strict=True):
            rows = [
                p
                for p in power
                if p["kind"] == kind and p["sources"] == sources and p["drop_sources"] == drop_sources
            ]
            drops = [100 * p["drop"] for p in rows]
            rate_ax.plot(
                drops,
                [p["detected_rate"] for p in rows],
                style,
                color=colour,
                marker="o",
                ms=3,
                label=f"{kind}, {label}",
            )
            delay_ax.plot(
                drops, [p["median_samples"] or math.nan for p in rows], style, color=colour, marker="o", ms=3
            )
    rate_ax.axhline(args.alpha, color="grey", lw=0.8)
    rate_ax.axvline(100 * args.max_drop, color="grey", lw=0.8)
    rate_ax.set(
        xlabel="true drop of the canary mean (%)", ylabel=f"detected within {args.hours:g} h", ylim=(0, 1.02)
    )
    delay_ax.set(
        xlabel="true drop of the canary mean (%)", ylabel="median canary samples to detection", yscale="log"
    )
    rate_ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(
        f"eval_score test: max_drop {args.max_drop:g}, alpha {args.alpha:g}, "
        f"{args.per_minute} score/side/min, "
        f"{args.runs} runs per point"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())

"""The always-valid sequential test (testing by betting), combining sources, and its benchmark."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from typing import Any

import pytest

from litellm_canary.core.config import EvalScoreTrigger
from litellm_canary.detection.evals.sequential import (
    MAX_BET,
    EvalVerdict,
    SequentialEvalTest,
    mean_log_e_value,
    plug_in_bet,
)
from tests.support import REPO

ROOT = REPO


# ------------------------------------------------------------------------------------------------
# The sequential test
# ------------------------------------------------------------------------------------------------


def feed(test: SequentialEvalTest, stable: float, canary: float) -> bool:
    """One stable then one canary score; whether the test rejected at either look."""
    test.add("stable", stable)
    rejected = test.rejected
    test.add("canary", canary)
    return rejected or test.rejected


def test_aa_false_rejection_rate_is_below_alpha() -> None:
    rng = random.Random(1234)
    test = SequentialEvalTest(max_drop=0.05, alpha=0.05, min_samples=30)
    runs, looks, false_alarms = 200, 500, 0
    for _ in range(runs):
        test.reset()
        for _ in range(looks):
            if feed(test, float(rng.random() < 0.8), float(rng.random() < 0.8)):
                false_alarms += 1
                break
    assert false_alarms <= 0.05 * runs / 2  # with margin: the guarantee is <= alpha


def test_aa_at_the_null_boundary_with_unequal_rates() -> None:
    # The hardest null: canary mean exactly (1 - max_drop) x stable's, stable scored 3x as often,
    # arrivals in random order; Ville's inequality still holds (weights are predictable).
    rng = random.Random(99)
    test = SequentialEvalTest(max_drop=0.2, alpha=0.1, min_samples=1)
    runs, false_alarms = 150, 0
    for _ in range(runs):
        test.reset()
        for _ in range(1600):
            if rng.random() < 0.75:
                test.add("stable", float(rng.random() < 0.5))
            else:
                test.add("canary", float(rng.random() < 0.4))
            if test.rejected:
                false_alarms += 1
                break
    assert false_alarms <= 0.1 * runs


def test_unequal_rates_pair_each_batch_mean_with_the_other_side() -> None:
    # 50 canary scores before any stable one: they form one batch, closed by the first stable score
    # (one pair: mean 0.0 vs 1.0); the next 49 stable scores wait for a canary score, which closes a
    # pair with their mean. Nothing is dropped from the reported means.
    test = SequentialEvalTest(max_drop=0.05, alpha=0.05, min_samples=1)
    for _ in range(50):
        test.add("canary", 0.0)
    assert test.state().effective_pairs == 0.0
    for _ in range(50):
        test.add("stable", 1.0)
    verdict = test.state()
    assert (verdict.canary_samples, verdict.stable_samples) == (50, 50)
    assert verdict.effective_pairs == 1.0
    assert verdict.canary_mean == 0.0 and verdict.stable_mean == 1.0
    assert verdict.statistic == 0.0  # the first bet is 0: nothing was known before the first pair
    test.add("canary", 0.0)
    verdict = test.state()
    assert verdict.effective_pairs == 2.0
    # the second pair (Z = 0.95) was bet on with the stake fixed after the first
    bet = plug_in_bet(1, 0.95, 0.95**2, threshold=math.log(20))
    assert bet > 0 and verdict.statistic == pytest.approx(math.log1p(bet * 0.95))


def test_bets_are_fixed_before_the_pair_from_the_past_pairs_only() -> None:
    rng = random.Random(11)
    test = SequentialEvalTest(max_drop=0.1, alpha=0.05, min_samples=1)
    log_wealth = sum_z = sum_z2 = 0.0
    bets = []
    for pairs in range(300):
        stable, canary = rng.random(), rng.random() * 0.9
        bet = plug_in_bet(pairs, sum_z, sum_z2, threshold=math.log(20))  # from the past pairs only
        bets.append(bet)
        feed(test, stable, canary)
        z = 0.9 * stable - canary
        log_wealth += math.log1p(bet * z)
        sum_z, sum_z2 = sum_z + z, sum_z2 + z * z
        assert test.state().statistic == pytest.approx(log_wealth)
        assert 0.0 <= bet <= MAX_BET
    assert bets[0] == 0.0 and max(bets) > 0.0


def test_the_bet_is_zero_unless_the_canary_is_behind_and_grows_as_the_spread_shrinks() -> None:
    threshold = math.log(20)
    assert plug_in_bet(10, -0.5, 3.0, threshold=threshold) == 0.0
    assert plug_in_bet(10, 0.0, 3.0, threshold=threshold) == 0.0
    wide = plug_in_bet(1000, 40.0, 350.0, threshold=threshold)  # pass/fail-like spread
    narrow = plug_in_bet(1000, 40.0, 70.0, threshold=threshold)  # graded-score spread
    assert 0.0 < wide < narrow <= MAX_BET
    assert wide == pytest.approx(math.sqrt(2 * threshold / ((0.25 + 350 - 1600 / 1001) / 1001 * 1500)))
    assert plug_in_bet(1000, 950.0, 902.5, threshold=threshold) == MAX_BET  # no spread: the cap


def test_benchmark_simulator_is_the_same_arithmetic_as_the_test() -> None:
    # benchmarks/eval_sequential.py simulates the test vectorised over runs; score for score it must
    # be the in-process SequentialEvalTest, or its figures say nothing about the library.
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import eval_sequential
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(5)
    runs, pairs = 4, 400
    stable = (rng.random((pairs, runs)) < 0.8).astype(float)
    canary = rng.random((pairs, runs)) ** 0.5
    paths = eval_sequential.BettingPaths(runs, 0.05, 0.05)
    tests = [SequentialEvalTest(0.05, 0.05, 1) for _ in range(runs)]
    for t in range(pairs):
        logs = paths.pair(stable[t], canary[t])
        for run, test in enumerate(tests):
            test.add("canary", float(canary[t, run]))
            test.add("stable", float(stable[t, run]))
            assert test.log_e_value() == pytest.approx(logs[run], abs=1e-9)


def test_mean_log_e_value_is_the_log_of_the_mean_e_value() -> None:
    assert mean_log_e_value([]) == 0.0
    assert mean_log_e_value([0.0, 0.0, 0.0]) == 0.0
    assert mean_log_e_value([math.log(60), 0.0, 0.0]) == pytest.approx(math.log(62 / 3))
    assert mean_log_e_value([1000.0, 0.0]) == pytest.approx(1000.0 - math.log(2))  # no overflow


def test_detects_a_20_percent_drop_quickly() -> None:
    rng = random.Random(7)
    test = SequentialEvalTest(max_drop=0.05, alpha=0.05, min_samples=30)
    detected_at = []
    for _ in range(20):
        test.reset()
        while test.state().canary_samples < 3000 and not test.rejected:
            test.add("stable", float(rng.random() < 0.8))
            if not test.rejected:
                test.add("canary", float(rng.random() < 0.64))
        if test.rejected:
            detected_at.append(test.state().canary_samples)
    assert len(detected_at) == 20
    assert sorted(detected_at)[10] < 1200  # median pairs to detection
    verdict = test.state()
    assert verdict.reject
    assert verdict.statistic >= verdict.threshold == pytest.approx(math.log(20))
    assert verdict.canary_mean is not None and verdict.stable_mean is not None
    assert verdict.canary_mean < verdict.stable_mean


def test_deterministic_total_failure_is_rejected_right_at_min_samples() -> None:
    test = SequentialEvalTest(max_drop=0.05, alpha=0.05, min_samples=30)
    for _ in range(29):
        feed(test, 1.0, 0.0)
    assert test.state().statistic > test.threshold  # the evidence is there ...
    assert not test.state().reject  # ... but 29 < min_samples on each side
    test.add("stable", 1.0)
    assert not test.rejected  # canary still at 29
    test.add("canary", 0.0)
    assert test.state().reject


def test_canary_exactly_at_the_allowed_drop_is_never_rejected() -> None:
    # canary = (1 - max_drop) x stable exactly, every time: every pair's difference is 0.
    test = SequentialEvalTest(max_drop=0.05, alpha=0.05, min_samples=1)
    for _ in range(20_000):
        assert not feed(test, 1.0, 0.95)
    verdict = test.state()
    assert verdict.statistic <= 0.0
    assert verdict.canary_mean == pytest.approx(0.95)


def test_canary_better_than_stable_is_never_rejected() -> None:
    test = SequentialEvalTest(max_drop=0.05, alpha=0.05, min_samples=1)
    for _ in range(5000):
        assert not feed(test, 0.0, 1.0)
    assert test.state().statistic == 0.0  # it never bets on the canary being better


def test_rejects_iff_statistic_reaches_threshold() -> None:
    test = SequentialEvalTest(max_drop=0.05, alpha=0.05, min_samples=1)
    rng = random.Random(3)
    for _ in range(3000):
        feed(test, float(rng.random() < 0.8), float(rng.random() < 0.7))
        verdict = test.state()
        assert verdict.reject == (verdict.statistic >= verdict.threshold)


def test_state_and_reset() -> None:
    test = SequentialEvalTest.from_rule(EvalScoreTrigger())
    empty = test.state()
    assert empty == EvalVerdict(
        reject=False,
        canary_mean=None,
        stable_mean=None,
        canary_samples=0,
        stable_samples=0,
        statistic=0.0,
        threshold=math.log(20),
        effective_pairs=0.0,
    )
    test.add("stable", 0.5)
    test.add("stable", 1)
    test.add("canary", 0.25)
    verdict = test.state()
    assert (verdict.stable_samples, verdict.canary_samples) == (2, 1)
    assert (verdict.stable_mean, verdict.canary_mean) == (0.75, 0.25)
    scores = verdict.as_eval_scores()
    assert (scores.canary_mean, scores.stable_samples) == (0.25, 2)
    assert json.loads(json.dumps(verdict.as_dict()))["canary_samples"] == 1
    test.reset()
    assert test.state() == empty


@pytest.mark.parametrize(
    ("side", "score", "message"),
    [
        ("stable", -0.1, "score must be a number in"),
        ("canary", 1.5, "score must be a number in"),
        ("canary", math.nan, "score must be a number in"),
        ("canary", "0.5", "score must be a number in"),
        ("canary", True, "score must be a number in"),
        ("baseline", 0.5, "side must be 'stable' or 'canary', got 'baseline'"),
    ],
)
def test_add_validates(side: Any, score: Any, message: str) -> None:
    test = SequentialEvalTest(0.05, 0.05, 30)
    with pytest.raises(ValueError, match=message):
        test.add(side, score)
    assert test.state().canary_samples == test.state().stable_samples == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_drop": 0.0}, "max_drop"),
        ({"max_drop": 1.0}, "max_drop"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"min_samples": 0}, "min_samples"),
        ({"min_samples": 2.5}, "min_samples"),
        ({"max_bet": 0}, "max_bet"),
        ({"max_bet": 1.0}, "max_bet"),
        ({"prior": 0}, "prior"),
        ({"tuned_pairs": 0}, "tuned_pairs"),
    ],
)
def test_constructor_validates(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"max_drop": 0.05, "alpha": 0.05, "min_samples": 30, **kwargs}
    with pytest.raises(ValueError, match=message):
        SequentialEvalTest(**args)


# ------------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------------


def test_benchmark_json_has_the_boundary_a_a_runs_and_the_power_curve() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "eval_sequential.py"),
            "--runs",
            "100",
            "--hours",
            "6",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    lines = completed.stdout.splitlines()
    assert len(lines) == 1, completed.stdout[:2000]
    result = json.loads(lines[0])
    for key in ("aa_runs", "false_rollbacks", "alpha", "true_drop_detect_median_samples"):
        assert key in result
    assert result["aa_runs"] == result["aa_boundary_runs"] == 200  # 100 runs x 2 score kinds
    assert result["false_rollbacks"] <= result["alpha"] * result["aa_runs"]
    assert result["aa_boundary_false_rollbacks"] <= result["alpha"] * result["aa_boundary_runs"]
    assert 0.0 <= result["true_drop_detection_rate"] <= 1.0
    power = result["power"]
    assert {(p["kind"], p["sources"]) for p in power} == {
        (k, n) for k in ("bernoulli", "beta") for n in (1, 3)
    }
    assert {p["drop"] for p in power} == {0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2}
    for point in power:
        assert set(point) >= {"drop", "kind", "sources", "detected_rate", "median_samples"}
    # a 20 % drop of graded scores is found in every run, a drop at the allowed 5 % rarely
    assert all(p["detected_rate"] == 1.0 for p in power if p["kind"] == "beta" and p["drop"] == 0.2)
    assert all(p["detected_rate"] <= 0.1 for p in power if p["drop"] == 0.05)

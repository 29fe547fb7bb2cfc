"""Comparisons over rounds: the pooled ratio, the bootstrap interval over rounds, the verdicts."""

from __future__ import annotations

import pytest

from litellm_canary.bench.round_stats import (
    VERDICTS,
    RatioRound,
    bootstrap_interval,
    pooled_ratio,
    verdict,
)


def test_the_pooled_ratio_weighs_each_round_by_its_size() -> None:
    # canary 100 requests in 2 s and 300 in 2 s (100/s), baseline 200 in 2 s and 200 in 2 s (100/s)
    rounds = [RatioRound(100, 2.0, 200, 2.0), RatioRound(300, 2.0, 200, 2.0)]
    assert pooled_ratio(rounds) == pytest.approx(1.0)
    assert pooled_ratio([RatioRound(90, 1.0, 100, 1.0)]) == pytest.approx(0.9)


@pytest.mark.parametrize(
    "rounds",
    [[], [RatioRound(1, 0, 1, 1)], [RatioRound(1, 1, 0, 1)], [RatioRound(1, 1, 1, 0)]],
)
def test_an_undefined_pooled_ratio_is_none(rounds: list[RatioRound]) -> None:
    assert pooled_ratio(rounds) is None


def _rounds(ratios: list[float]) -> list[RatioRound]:
    return [RatioRound(ratio * 100, 1.0, 100, 1.0) for ratio in ratios]


def test_the_interval_covers_the_rounds_and_is_the_same_for_the_same_rounds() -> None:
    rounds = _rounds([0.95, 0.97, 0.99, 1.01, 1.03, 0.98, 1.0, 0.96])
    interval = bootstrap_interval(rounds, pooled_ratio)
    assert interval is not None
    low, high = interval
    point = pooled_ratio(rounds)
    assert point is not None and 0.95 <= low < point < high <= 1.03
    assert bootstrap_interval(rounds, pooled_ratio) == interval  # fixed seed
    assert bootstrap_interval(rounds, pooled_ratio, seed=1) != interval


def test_identical_rounds_give_a_zero_width_interval() -> None:
    assert bootstrap_interval(_rounds([1.02] * 5), pooled_ratio) == pytest.approx((1.02, 1.02))


def test_the_interval_narrows_with_more_alike_rounds() -> None:
    wide = bootstrap_interval(_rounds([0.9, 1.1] * 4), pooled_ratio)
    narrow = bootstrap_interval(_rounds([0.99, 1.01] * 4), pooled_ratio)
    assert wide is not None and narrow is not None
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_fewer_than_two_rounds_or_an_undefined_statistic_give_no_interval() -> None:
    assert bootstrap_interval(_rounds([1.0]), pooled_ratio) is None
    assert bootstrap_interval([], pooled_ratio) is None
    assert bootstrap_interval(_rounds([1.0, 1.1]), lambda rounds: None) is None


@pytest.mark.parametrize(
    ("interval", "target", "at_least", "expected"),
    [
        ((0.98, 1.02), 0.97, True, "met"),
        ((0.97, 1.02), 0.97, True, "met"),  # on the target is on its good side
        ((0.90, 0.96), 0.97, True, "missed"),
        ((0.95, 0.99), 0.97, True, "not_resolved"),
        ((0.99, 1.02), 1.03, False, "met"),
        ((1.04, 1.08), 1.03, False, "missed"),
        ((1.01, 1.05), 1.03, False, "not_resolved"),
        ((-2.0, 0.5), 1.0, False, "met"),
        (None, 1.0, False, "not_resolved"),
        (None, 0.97, True, "not_resolved"),
    ],
)
def test_the_verdict_weighs_the_whole_interval(
    interval: tuple[float, float] | None, target: float, at_least: bool, expected: str
) -> None:
    assert verdict(interval, target, at_least=at_least) == expected
    assert expected in VERDICTS

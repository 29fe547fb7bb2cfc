"""Sliding outcome windows: counts, bucket expiry, thread safety and TTFT quantile accuracy."""

from __future__ import annotations

import dataclasses
import math
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from litellm_canary.detection.outcome_windows import (
    TTFT_BINS,
    TTFT_MAX_S,
    TTFT_MIN_S,
    TTFT_RELATIVE_ACCURACY,
    OutcomeWindow,
    WindowStats,
)

ACCURACY = TTFT_RELATIVE_ACCURACY + 1e-9  # float rounding at a bin edge


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def exact_quantile(samples: list[float], q: float) -> float:
    """Nearest rank: the smallest sample that at least ``q`` of the samples are <= to."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_an_empty_window_has_no_requests_and_no_quantiles() -> None:
    stats = OutcomeWindow(120, clock=FakeClock()).stats()
    assert (stats.requests, stats.failures, stats.ttft_samples) == (0, 0, 0)
    assert stats.error_rate == 0.0
    assert stats.ttft_p99_s is None
    assert stats.quantile(0.5) is None
    assert stats.window_s == 120.0


def test_counts_requests_failures_and_ttft_samples() -> None:
    window = OutcomeWindow(10, clock=FakeClock())
    window.record(True, 0.2)
    window.record(True)
    window.record(False)
    window.record(False, 0.4)
    stats = window.stats()
    assert (stats.requests, stats.failures, stats.ttft_samples) == (4, 2, 2)
    assert stats.error_rate == 0.5
    assert stats.ttft_p99_s == pytest.approx(0.4, rel=ACCURACY)


def test_stats_are_a_frozen_snapshot() -> None:
    clock = FakeClock()
    window = OutcomeWindow(10, clock=clock)
    window.record(True, 0.1)
    before = window.stats()
    window.record(False, 5.0)
    assert (before.requests, before.ttft_samples) == (1, 1)
    assert before.quantile(1.0) == pytest.approx(0.1, rel=ACCURACY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.requests = 3  # type: ignore[misc]


def test_a_sample_counts_for_the_window_then_expires_without_new_records() -> None:
    clock = FakeClock()
    window = OutcomeWindow(120, clock=clock)  # 20 buckets of 6 s
    window.record(False, 1.0)  # at the very start of a bucket: lives the full window
    clock.now = 119.999
    assert window.stats().requests == 1
    clock.now = 120.0
    stats = window.stats()
    assert (stats.requests, stats.failures, stats.ttft_samples, stats.ttft_p99_s) == (0, 0, 0, None)


def test_a_sample_lives_at_least_window_minus_one_bucket() -> None:
    clock = FakeClock(5.999)  # the end of the first 6 s bucket
    window = OutcomeWindow(120, clock=clock)
    window.record(True)
    clock.now = 5.999 + 114.0  # window - bucket width later: still in
    assert window.stats().requests == 1
    clock.now = 120.0  # the bucket leaves as a whole
    assert window.stats().requests == 0


def test_buckets_expire_one_by_one_as_the_window_slides() -> None:
    clock = FakeClock()
    window = OutcomeWindow(10, clock=clock, buckets=10)
    for second in range(10):
        clock.now = second + 0.5
        window.record(second % 2 == 0, ttft_s=float(second + 1))
    assert window.stats().requests == 10
    clock.now = 14.5  # the buckets of seconds 0..4 have left
    stats = window.stats()
    assert (stats.requests, stats.failures) == (5, 3)  # seconds 5, 7, 9 failed
    assert stats.quantile(0.0) == pytest.approx(6.0, rel=ACCURACY)
    assert stats.ttft_p99_s == pytest.approx(10.0, rel=ACCURACY)


def test_a_reused_ring_slot_forgets_its_old_contents() -> None:
    clock = FakeClock()
    window = OutcomeWindow(2, clock=clock, buckets=4)
    for _ in range(50):
        window.record(False, 30.0)
    clock.now = 2.0 * 7 + 0.1  # same ring slot, seven windows later
    window.record(True, 0.01)
    stats = window.stats()
    assert (stats.requests, stats.failures, stats.ttft_samples) == (1, 0, 1)
    assert stats.ttft_p99_s == pytest.approx(0.01, rel=ACCURACY)


def test_fractional_windows_and_times() -> None:
    clock = FakeClock(0.0)
    window = OutcomeWindow(0.25, clock=clock, buckets=5)  # 50 ms buckets
    window.record(False)
    clock.now = 0.2
    window.record(True)
    assert window.stats().requests == 2
    clock.now = 0.26
    assert (window.stats().requests, window.stats().failures) == (1, 0)
    clock.now = 0.5
    assert window.stats().requests == 0


def test_a_traffic_gap_longer_than_the_window_empties_it() -> None:
    clock = FakeClock()
    window = OutcomeWindow(60, clock=clock)
    for i in range(100):
        clock.now = i * 0.1
        window.record(i % 3 == 0, 0.5)
    clock.now = 10 + 60
    assert window.stats() == WindowStats(60.0, 0, 0, 0, None)


def test_record_batch_matches_single_records() -> None:
    clock = FakeClock(3.0)
    single, batch = OutcomeWindow(30, clock=clock), OutcomeWindow(30, clock=clock)
    ttfts = [0.05, 0.3, 0.3, 1.2, 9.0]
    for i, ttft in enumerate(ttfts):
        single.record(i != 1, ttft)
    single.record(False)
    batch.record_batch(4, 2, ttfts)
    assert single.stats() == batch.stats()
    assert single.stats().quantile(0.5) == batch.stats().quantile(0.5)


@pytest.mark.parametrize("bad", [-0.001, math.nan])
def test_an_invalid_ttft_is_rejected_and_nothing_is_counted(bad: float) -> None:
    window = OutcomeWindow(10, clock=FakeClock())
    with pytest.raises(ValueError, match="ttft_s"):
        window.record(True, bad)
    with pytest.raises(ValueError, match="ttft_s"):
        window.record_batch(1, 0, [0.1, bad])
    assert window.stats().requests == 0


def test_invalid_window_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="window_s"):
        OutcomeWindow(0, clock=FakeClock())
    with pytest.raises(ValueError, match="buckets"):
        OutcomeWindow(10, clock=FakeClock(), buckets=0)
    with pytest.raises(ValueError, match="counts"):
        OutcomeWindow(10, clock=FakeClock()).record_batch(-1, 0)
    with pytest.raises(ValueError, match="quantile"):
        OutcomeWindow(10, clock=FakeClock()).stats().quantile(1.5)


def test_ttfts_outside_the_accurate_range_are_clamped() -> None:
    window = OutcomeWindow(10, clock=FakeClock())
    window.record_batch(3, 0, [0.0, 0.0004, TTFT_MIN_S])
    assert window.stats().quantile(1.0) == TTFT_MIN_S
    window.record_batch(2, 0, [3600.0, math.inf])
    top = window.stats().quantile(1.0)
    assert top == pytest.approx(TTFT_MAX_S, rel=ACCURACY)


def test_memory_is_bounded_whatever_the_traffic() -> None:
    clock = FakeClock()
    window = OutcomeWindow(1, clock=clock, buckets=4)
    rng = random.Random(7)
    for i in range(20_000):
        clock.now = i * 0.001
        window.record(True, rng.uniform(0, 1000))
    assert len(window._ring) == 4
    assert all(len(bucket.ttft) <= TTFT_BINS for bucket in window._ring)
    assert len(window._ttft) <= TTFT_BINS


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.lognormvariate(math.log(0.6), 0.7),  # a typical TTFT
        lambda rng: rng.uniform(TTFT_MIN_S, TTFT_MAX_S),
        lambda rng: math.exp(rng.uniform(math.log(TTFT_MIN_S), math.log(TTFT_MAX_S))),  # every scale
        lambda rng: rng.choice([0.2, 0.2, 0.2, 7.5]) * rng.uniform(0.99, 1.01),  # bimodal
    ],
)
def test_quantiles_are_within_the_stated_relative_error_of_exact_quantiles(draw: object) -> None:
    rng = random.Random(2024)
    clock = FakeClock()
    window = OutcomeWindow(60, clock=clock)
    samples = []
    for i in range(5000):
        clock.now = i * 0.01  # spread over several buckets, which stats() merges
        sample = draw(rng)  # type: ignore[operator]
        samples.append(sample)
        window.record(True, sample)
    stats = window.stats()
    assert stats.ttft_samples == len(samples)
    for q in (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0):
        exact = exact_quantile(samples, q)
        estimate = stats.quantile(q)
        assert estimate is not None
        assert abs(estimate - exact) <= ACCURACY * exact, (q, estimate, exact)
    assert stats.ttft_p99_s == stats.quantile(0.99)


@settings(max_examples=100, deadline=None)
@given(
    samples=st.lists(st.floats(min_value=TTFT_MIN_S, max_value=TTFT_MAX_S), min_size=1, max_size=300),
    q=st.floats(min_value=0.0, max_value=1.0),
)
def test_any_quantile_of_any_sample_is_within_the_bound(samples: list[float], q: float) -> None:
    window = OutcomeWindow(10, clock=FakeClock())
    window.record_batch(len(samples), 0, samples)
    estimate = window.stats().quantile(q)
    exact = exact_quantile(samples, q)
    assert estimate is not None
    assert abs(estimate - exact) <= ACCURACY * exact


def test_records_from_several_threads_are_all_counted() -> None:
    clock = FakeClock()
    window = OutcomeWindow(60, clock=clock)
    per_thread, threads = 5000, 4

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for i in range(per_thread):
            window.record(i % 10 != 0, rng.uniform(0.1, 2.0))

    workers = [threading.Thread(target=worker, args=(seed,)) for seed in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    stats = window.stats()
    assert stats.requests == stats.ttft_samples == per_thread * threads
    assert stats.failures == per_thread * threads // 10

"""The rollout monitor: its step and windows, rule scenarios over time, and an A/A run."""

from __future__ import annotations

import json
import math
import random
from collections import Counter

import pytest

from litellm_canary.core.config import ErrorRateTrigger, FastFailTrigger, Triggers
from litellm_canary.core.decision import Side
from litellm_canary.detection.rollout_monitor import MonitorResult, RolloutMonitor, default_step_s
from litellm_canary.detection.rules import EvalScores, RuleName, RuleStatus


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def json_roundtrip(status: RuleStatus | MonitorResult) -> object:
    return json.loads(json.dumps(status.as_dict(), allow_nan=False))


# --- default step and windows ------------------------------------------------------------------------


def test_default_step_is_a_twentieth_of_the_smallest_enabled_window_clamped() -> None:
    assert default_step_s(Triggers()) == 0.5  # fast_fail 10 s
    assert default_step_s(Triggers(fast_fail=False)) == 5.0  # 120 / 20 = 6, clamped to 5
    assert default_step_s(Triggers(fast_fail=FastFailTrigger(window_s=0.1))) == 0.01  # clamped up
    assert default_step_s(Triggers(fast_fail=FastFailTrigger(window_s=3.0))) == pytest.approx(0.15)
    assert default_step_s(Triggers(error_rate=False, ttft_p99=False, fast_fail=False)) == 5.0


def test_the_monitor_exposes_its_step_and_keeps_one_window_pair_per_distinct_length() -> None:
    clock = FakeClock()
    assert RolloutMonitor(Triggers(), clock=clock).window_lengths == (10.0, 120.0, 300.0)
    shared = Triggers(error_rate=ErrorRateTrigger(window_s=300.0), fast_fail=False)
    monitor = RolloutMonitor(shared, clock=clock)
    assert (monitor.window_lengths, monitor.step_s) == ((300.0,), 5.0)
    assert RolloutMonitor(Triggers(), clock=clock, step_s=2.0).step_s == 2.0
    with pytest.raises(ValueError, match="step_s"):
        RolloutMonitor(Triggers(), clock=clock, step_s=0.0)


# --- RolloutMonitor scenarios ------------------------------------------------------------------------


class Sim:
    """Drives a monitor with a fake clock: ``rate`` requests per second per side, evaluating every step."""

    def __init__(self, triggers: Triggers, *, rate: float = 10.0, step_s: float | None = None) -> None:
        self.clock = FakeClock()
        self.monitor = RolloutMonitor(triggers, clock=self.clock, step_s=step_s)
        self.rate = rate
        self._debt = {"stable": 0.0, "canary": 0.0}
        self._errors = {"stable": 0.0, "canary": 0.0}

    def run(
        self,
        seconds: float,
        *,
        canary_errors: float = 0.01,
        stable_errors: float = 0.01,
        canary_ttft: float | None = 0.5,
        canary_traffic: bool = True,
        evaluate: bool = True,
    ) -> list[MonitorResult]:
        """Advance ``seconds``; failures are spread deterministically at the given fractions."""
        step = self.monitor.step_s
        results = []
        for _ in range(round(seconds / step)):
            self.clock.now += step
            for side, errors in (("stable", stable_errors), ("canary", canary_errors)):
                if side == "canary" and not canary_traffic:
                    continue
                self._debt[side] += self.rate * step
                while self._debt[side] >= 1:
                    self._debt[side] -= 1
                    self._errors[side] += errors
                    failed = self._errors[side] >= 1
                    self._errors[side] -= failed
                    ttft = canary_ttft if side == "canary" else 0.5
                    self.monitor.record(side, not failed, None if failed else ttft)  # type: ignore[arg-type]
            if evaluate:
                results.append(self.monitor.evaluate())
        return results


def states(results: list[MonitorResult], rule: RuleName) -> list[str]:
    return [r.rule(rule).state for r in results]


def first_firing(results: list[MonitorResult]) -> MonitorResult | None:
    return next((r for r in results if r.firing is not None), None)


def test_a_healthy_canary_is_ok_on_every_rule() -> None:
    sim = Sim(Triggers())
    results = sim.run(600)
    assert first_firing(results) is None
    last = results[-1]
    assert [s.state for s in last.rules] == ["ok", "ok", "ok", "insufficient_data"]  # no eval scores
    # 10 req/s over the last 120 s, less the part of a 6 s bucket that has already slid out.
    assert 1140 <= last.rule("error_rate").observed["canary_requests"] <= 1200  # type: ignore[operator]


def test_error_rate_fires_after_breaching_for_its_whole_window() -> None:
    sim = Sim(Triggers())  # step 0.5 s
    results = sim.run(400, canary_errors=0.2)  # 20 %: below fast_fail's 50 %
    fired = first_firing(results)
    assert fired is not None and fired.firing is not None
    status = fired.firing
    assert status.rule == "error_rate"
    assert status.breaching_since is not None
    assert fired.at - status.breaching_since == pytest.approx(120.0)
    # It starts breaching within a second of the canary having min_requests (2 s at 10 req/s): the
    # significance guard wants a few more samples than the bare threshold.
    assert 2.0 <= status.breaching_since <= 3.0
    assert status.observed["canary_error_rate"] == pytest.approx(0.2, abs=0.01)
    assert status.observed["baseline_source"] == "stable"
    assert status.window_s == 120.0 and status.min_samples == 20
    assert json_roundtrip(status) == status.as_dict()
    assert states(results, "fast_fail").count("firing") == 0


def test_ttft_p99_fires_after_breaching_for_its_whole_window() -> None:
    sim = Sim(Triggers())
    results = sim.run(320, canary_errors=0.0, stable_errors=0.0, canary_ttft=4.5)
    fired = first_firing(results)
    assert fired is not None and fired.firing is not None
    assert fired.firing.rule == "ttft_p99"
    assert fired.firing.breaching_since is not None
    assert fired.at - fired.firing.breaching_since == pytest.approx(300.0)
    assert fired.firing.observed["canary_ttft_p99_ms"] == pytest.approx(4500, rel=0.02)
    assert fired.firing.observed["stable_ttft_p99_ms"] == pytest.approx(500, rel=0.02)
    assert fired.firing.threshold == 4000.0


def test_fast_fail_fires_at_the_first_evaluation_with_min_requests() -> None:
    sim = Sim(Triggers())  # 10 req/s, step 0.5 s: 10 canary requests after 1 s
    results = sim.run(3, canary_errors=1.0)
    assert states(results, "fast_fail")[:2] == ["insufficient_data", "firing"]
    fired = results[1]
    assert fired.firing is not None and fired.firing.rule == "fast_fail"
    assert fired.firing.observed["canary_requests"] == 10


def test_fast_fail_takes_priority_when_several_rules_fire() -> None:
    sim = Sim(Triggers(fast_fail=FastFailTrigger(error_rate=0.6)))
    sim.run(200, canary_errors=0.5)  # error_rate firing from 122 s; fast_fail not (50 % < 60 %)
    results = sim.run(5, canary_errors=1.0)  # the last 10 s: 75 % errors
    last = results[-1]
    assert last.rule("error_rate").state == "firing"
    assert last.rule("fast_fail").state == "firing"
    assert last.firing is not None and last.firing.rule == "fast_fail"


def test_recovery_mid_window_resets_the_streak() -> None:
    # step 5 s, threshold ~2 % (stable at 1 %); the guard off: 5 % on 150 requests is not significant
    sim = Sim(Triggers(error_rate=ErrorRateTrigger(alpha=None), fast_fail=False), rate=5.0)
    breach = sim.run(30, canary_errors=0.05)
    assert states(breach, "error_rate")[-1] == "breaching"
    heal = sim.run(150, canary_errors=0.0)  # the bad half-minute is diluted, then slides out
    assert "ok" in states(heal, "error_rate")
    assert first_firing(breach + heal) is None
    assert heal[-1].rule("error_rate").breaching_since is None
    # A new breach needs a full window again.
    again = sim.run(200, canary_errors=0.2)
    fired = first_firing(again)
    assert fired is not None and fired.firing is not None
    assert fired.firing.breaching_since is not None and fired.firing.breaching_since > 180
    assert fired.at - fired.firing.breaching_since == pytest.approx(120.0)


def test_a_canary_traffic_gap_empties_the_window_and_resets_the_streak() -> None:
    # min_requests 200 (40 s of canary traffic) so that the bad data stops counting before 120 s.
    sim = Sim(Triggers(error_rate=ErrorRateTrigger(min_requests=200), fast_fail=False), rate=5.0)
    assert states(sim.run(60, canary_errors=0.3), "error_rate")[-1] == "breaching"  # since 40 s
    gap = sim.run(130, canary_traffic=False)
    assert states(gap, "error_rate")[-1] == "insufficient_data"
    assert gap[-1].rule("error_rate").observed["canary_requests"] == 0  # the window is empty
    resumed = sim.run(100, canary_errors=0.3)  # 105 s + 60 s of breaching, but not continuous
    assert first_firing(gap + resumed) is None
    assert resumed[-1].rule("error_rate").breaching_since == pytest.approx(230.0)


def test_an_evaluation_gap_resets_the_streak() -> None:
    sim = Sim(Triggers(fast_fail=False), rate=5.0)  # step 5 s
    sim.run(100, canary_errors=0.3)  # breaching since 5 s: would fire at 125 s
    sim.run(15, canary_errors=0.3, evaluate=False)  # paused: three steps without evaluation
    results = sim.run(100, canary_errors=0.3)
    assert first_firing(results) is None
    assert results[0].rule("error_rate").breaching_since == pytest.approx(120.0)


def test_a_low_traffic_canary_never_fires() -> None:
    sim = Sim(Triggers(), rate=0.1)  # one request every 10 s per side, all canary ones failing
    results = sim.run(1800, canary_errors=1.0)
    assert first_firing(results) is None
    assert set(states(results, "error_rate")) == {"insufficient_data"}  # 12 < 20 requests per 120 s
    assert set(states(results, "fast_fail")) == {"insufficient_data"}
    assert set(states(results, "ttft_p99")) == {"insufficient_data"}


def test_a_disabled_rule_reports_disabled_and_never_fires() -> None:
    sim = Sim(Triggers(error_rate=False, fast_fail=False, eval_score=False))
    results = sim.run(400, canary_errors=0.9)
    assert first_firing(results) is None
    assert set(states(results, "error_rate")) == {"disabled"}
    status = results[-1].rule("error_rate")
    assert (status.breaching_since, status.window_s, status.min_samples) == (None, 120.0, 20)
    assert sim.monitor.window_lengths == (300.0,)
    assert json_roundtrip(results[-1]) == results[-1].as_dict()


def test_eval_scores_fire_immediately_and_reset_clears_them() -> None:
    clock = FakeClock()
    monitor = RolloutMonitor(Triggers(error_rate=False, ttft_p99=False, fast_fail=False), clock=clock)
    assert monitor.evaluate().rule("eval_score").state == "insufficient_data"
    monitor.record_scores(EvalScores(canary_mean=0.6, canary_samples=40, stable_mean=0.8, stable_samples=40))
    clock.now += monitor.step_s
    result = monitor.evaluate()
    assert result.firing is not None and result.firing.rule == "eval_score"
    assert json_roundtrip(result.firing) == result.firing.as_dict()
    monitor.reset()
    assert monitor.evaluate().rule("eval_score").state == "insufficient_data"


def test_reset_starts_fresh_windows_and_streaks() -> None:
    sim = Sim(Triggers(fast_fail=False), rate=5.0)
    assert states(sim.run(100, canary_errors=0.3), "error_rate")[-1] == "breaching"
    sim.monitor.reset()
    result = sim.monitor.evaluate()
    status = result.rule("error_rate")
    assert (status.state, status.breaching_since) == ("insufficient_data", None)
    assert status.observed["canary_requests"] == 0


def test_record_accepts_the_side_enum_and_rejects_other_sides() -> None:
    clock = FakeClock()
    monitor = RolloutMonitor(Triggers(), clock=clock)
    monitor.record(Side.CANARY, False)
    monitor.record_batch(Side.STABLE, 3, 1, [0.2, 0.3])
    status = monitor.evaluate().rule("error_rate")
    assert (status.observed["canary_failures"], status.observed["stable_requests"]) == (1, 4)
    with pytest.raises(ValueError, match="side"):
        monitor.record("baseline", True)  # type: ignore[arg-type]


def test_every_status_is_json_serialisable() -> None:
    sim = Sim(Triggers(error_rate=ErrorRateTrigger(baseline_error_rate=0.02)))
    sim.monitor.record_scores(
        EvalScores(canary_mean=0.7, canary_samples=5, stable_mean=0.8, stable_samples=5)
    )
    results = sim.run(1, canary_errors=0.5) + sim.run(130, canary_errors=0.4, canary_ttft=9.0)
    seen = {status.state for result in results for status in result.rules}
    assert seen >= {"insufficient_data", "breaching", "firing"}
    for result in results:
        assert json_roundtrip(result) == result.as_dict()


# --- A/A: healthy canaries do not fire -----------------------------------------------------------------


def _ttft_pool(size: int = 20_000) -> list[float]:
    """A realistic TTFT mix: log-normal around 500 ms, with a 2 % slow mode (cold cache, long prompt)."""
    rng = random.Random(99)
    pool = []
    for _ in range(size):
        ttft = rng.lognormvariate(math.log(0.5), 0.5)
        if rng.random() < 0.02:
            ttft *= rng.lognormvariate(math.log(2.5), 0.3)
        pool.append(ttft)
    return pool


TTFT_POOL = _ttft_pool()


def _failures_per_step(rng: random.Random, requests: int, per_step: int, error_rate: float) -> Counter[int]:
    """Each request fails independently with ``error_rate``: jump from failure to failure (geometric)."""
    counts: Counter[int] = Counter()
    position = -1
    log_ok = math.log(1 - error_rate)
    while True:
        position += 1 + int(math.log(1 - rng.random()) / log_ok)
        if position >= requests:
            return counts
        counts[position // per_step] += 1


def simulate_healthy_canary(
    seed: int, triggers: Triggers, *, ttft: bool, stop_on_fire: bool = False, rate_per_s: float = 5.0
) -> Counter[str]:
    """One 30-minute A/A rollout at ``rate_per_s`` per side, 1 % errors on both, evaluated every step.

    Requests between two evaluations are recorded as one batch at a random instant of the step (window
    buckets are 6 s and 15 s wide, so finer timing changes nothing). With ``ttft``, one successful
    canary request in five is streamed and has a TTFT from :data:`TTFT_POOL` (300 samples per 300 s
    window: a noisier p99, so a harder test, than if every request streamed; and 5x cheaper). Stable's
    TTFT is left out: no rule reads it, it is context only. Returns a count of ``rule:state``.
    """
    rng = random.Random(seed)
    clock = FakeClock(rng.uniform(0, 1000))  # bucket boundaries fall differently in each run
    monitor = RolloutMonitor(triggers, clock=clock)
    step = monitor.step_s
    steps = round(30 * 60 / step)
    per_step = round(rate_per_s * step)
    failures = {
        side: _failures_per_step(rng, steps * per_step, per_step, 0.01) for side in ("stable", "canary")
    }
    seen: Counter[tuple[str, str]] = Counter()
    for k in range(steps):
        start = clock.now
        clock.now = start + rng.random() * step
        failed = min(failures["stable"][k], per_step)
        monitor.record_batch("stable", per_step - failed, failed)
        failed = min(failures["canary"][k], per_step)
        ok = per_step - failed
        monitor.record_batch("canary", ok, failed, rng.choices(TTFT_POOL, k=ok // 5) if ttft else ())
        clock.now = start + step
        result = monitor.evaluate()
        seen.update((status.rule, status.state) for status in result.rules)
        if stop_on_fire and result.firing is not None:
            break
    return Counter({f"{rule}:{state}": count for (rule, state), count in seen.items()})


A_A_CANARIES = 200
A_A_EVALUATIONS = A_A_CANARIES * 360  # 30 min at the default 5 s step


def test_healthy_canaries_never_fire_ttft_p99() -> None:
    triggers = Triggers(error_rate=False, fast_fail=False, eval_score=False)
    total: Counter[str] = Counter()
    for seed in range(A_A_CANARIES):
        total += simulate_healthy_canary(seed, triggers, ttft=True)
    assert total["ttft_p99:firing"] == 0
    # The run was meaningful: each canary was judged all along once it had 20 TTFT samples (20 s).
    assert total["ttft_p99:insufficient_data"] <= A_A_CANARIES * 4
    assert total["ttft_p99:ok"] + total["ttft_p99:breaching"] + total["ttft_p99:insufficient_data"] == (
        A_A_EVALUATIONS
    )
    # While a window holds few samples its p99 is its maximum and can breach: the for-duration holds.
    assert total["ttft_p99:breaching"] < 0.01 * A_A_EVALUATIONS


@pytest.mark.parametrize("rate_per_s", [1.0, 5.0, 20.0])
def test_healthy_canaries_never_fire_error_rate(rate_per_s: float) -> None:
    """Without the significance guard 7/200 (5 req/s) and 72/200 (1 req/s) of these fired."""
    triggers = Triggers(ttft_p99=False, fast_fail=False, eval_score=False)
    judged = 0
    for seed in range(A_A_CANARIES):
        seen = simulate_healthy_canary(seed, triggers, ttft=False, stop_on_fire=True, rate_per_s=rate_per_s)
        assert seen["error_rate:firing"] == 0, f"healthy canary {seed} was rolled back by error_rate"
        judged += seen["error_rate:ok"] + seen["error_rate:breaching"]
    assert judged >= 0.95 * A_A_EVALUATIONS  # judged nearly all along (not insufficient_data)

"""Eval sampling off the request path: the bounded queue, sampling, scoring, and the eval_score rule."""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any

import litellm
import pytest
from litellm import Router

import litellm_canary
from litellm_canary.core.config import ConfigError, EvalScoreTrigger
from litellm_canary.core.decision import Side
from litellm_canary.core.outcomes import Outcome
from litellm_canary.core.rollback_record import RollbackRecord
from litellm_canary.detection.evals.answers import response_text
from litellm_canary.detection.evals.judge import EvalJudge
from litellm_canary.detection.evals.sample_queue import Sample, SampleQueue
from litellm_canary.detection.evals.sampling import EvalPipeline
from litellm_canary.detection.evals.sequential import mean_log_e_value
from litellm_canary.testing.fake_upstream import FakeUpstream
from tests.support.helpers import chat_rollout, deployment, started_upstreams, upstream_router

MESSAGES = [{"role": "user", "content": "what is 2+2?"}]
CHAT_ANSWER = {"choices": [{"message": {"role": "assistant", "content": "The answer is 4."}}]}
QUIET = {"error_rate": False, "ttft_p99": False, "fast_fail": False, "cooldown": False}
_users = itertools.count()


def _sample(side: str = "canary") -> Sample:
    return Sample(side, f"chat-{side}", {"messages": MESSAGES}, "answer")  # type: ignore[arg-type]


# -- the queue ----------------------------------------------------------------------------------------


def test_a_full_queue_drops_and_counts_per_side() -> None:
    ready: list[int] = []
    queue = SampleQueue(2, on_ready=lambda: ready.append(1))
    assert queue.offer(_sample("canary")) and queue.offer(_sample("stable"))
    assert not queue.offer(_sample("canary"))
    assert not queue.offer(_sample("stable"))
    assert not queue.offer(_sample("stable"))
    assert (len(queue), dict(queue.dropped), dict(queue.offered)) == (
        2,
        {"canary": 1, "stable": 2},
        {"canary": 2, "stable": 3},
    )
    assert ready == [1]  # woken once for the batch, not per sample
    assert queue.take() is not None and queue.take() is not None and queue.take() is None
    queue.offer(_sample())
    assert ready == [1, 1]  # empty again, then non-empty: woken again


def test_queue_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="queue size must be an int >= 1, got 0"):
        SampleQueue(0)


def test_a_sample_never_shows_its_text() -> None:
    assert "2+2" not in repr(_sample()) and "answer" not in repr(_sample())


# -- the judge ----------------------------------------------------------------------------------------


def test_the_judge_averages_the_sources_e_values_and_latches_the_first_rejection() -> None:
    rule = EvalScoreTrigger(max_drop=0.05, alpha=0.1, min_samples=5)
    judge = EvalJudge(rule, ("traffic", "golden"))
    assert judge.threshold == pytest.approx(math.log(10))  # the full alpha: no split
    assert judge.eval_scores() is None
    judge.add_pairs("golden", [(1.0, 1.0)] * 10)
    healthy = judge.eval_scores()
    assert healthy is not None and healthy.reject is False and healthy.source == "golden"
    rejected_at = None
    for n in range(1, 200):
        judge.add_pairs("traffic", [(0.0, 1.0)])
        scores = judge.eval_scores()
        assert scores is not None
        if scores.reject:
            rejected_at = n
            break
    assert rejected_at is not None and rejected_at >= 5
    status = judge.status()
    series = [status["series"][source]["statistic"] for source in ("traffic", "golden")]
    assert status["log_e_value"] == pytest.approx(mean_log_e_value(series))
    assert status["log_e_value"] >= math.log(10)
    assert series[1] == 0.0  # golden: canary equal to stable, no bet
    judge.add_pairs("traffic", [(1.0, 1.0)] * 500)  # the e-value falls back; the verdict stays
    latched = judge.eval_scores()
    assert latched is not None and latched.reject and latched.source == "traffic"
    assert judge.status()["rejected_by"] == "traffic"
    judge.reset()
    assert judge.eval_scores() is None and judge.status()["rejected_by"] is None


def test_one_source_past_1_over_alpha_alone_does_not_reject_or_say_so() -> None:
    rule = EvalScoreTrigger(max_drop=0.05, alpha=0.05, min_samples=5)
    judge = EvalJudge(rule, ("traffic", "golden"))
    judge.add_pairs("golden", [(1.0, 1.0)] * 10)  # golden: no evidence, e-value 1
    while judge.status()["series"]["traffic"]["statistic"] < math.log(20):
        judge.add_pairs("traffic", [(0.0, 1.0)])  # each pair adds at most log(1 + 0.5 * 0.95) = 0.39
    status = judge.status()
    traffic = status["series"]["traffic"]["statistic"]
    # traffic alone is past log(1/alpha), but the mean (e^traffic + 1) / 2 is not yet at 1/alpha = 20
    assert math.log(20) <= traffic < math.log(39)
    assert status["log_e_value"] == pytest.approx(mean_log_e_value([traffic, 0.0]))
    assert status["log_e_value"] < math.log(20)
    scores = judge.eval_scores()
    assert scores is not None and scores.reject is False and status["rejected_by"] is None
    assert "reject" not in status["series"]["traffic"]  # only the mean e-value decides, and says so
    judge.add_pairs("traffic", [(0.0, 1.0)] * 3)
    assert judge.status()["rejected_by"] == "traffic"


def test_an_equal_canary_never_rejects() -> None:
    judge = EvalJudge(EvalScoreTrigger(min_samples=1), ("traffic",))
    for _ in range(2000):
        judge.add("traffic", "canary", 0.9)
        judge.add("traffic", "stable", 0.9)
    scores = judge.eval_scores()
    assert scores is not None and not scores.reject and scores.log_e_value is not None
    assert scores.log_e_value <= 0


def test_the_rule_follows_the_sequential_verdict_not_the_plain_means() -> None:
    from litellm_canary.detection.rules import EvalScores, check_eval_score

    rule = EvalScoreTrigger(max_drop=0.05, min_samples=5)
    means_breach = {"canary_mean": 0.5, "canary_samples": 10, "stable_mean": 0.9, "stable_samples": 10}
    plain = check_eval_score(rule, EvalScores(**means_breach))
    assert plain.state == "breaching" and "reject" not in plain.observed
    not_yet = check_eval_score(
        rule, EvalScores(**means_breach, reject=False, log_e_value=1.0, log_threshold=3.0)
    )
    assert not_yet.state == "ok" and "does not reject" in not_yet.summary
    means_ok = {"canary_mean": 0.9, "canary_samples": 10, "stable_mean": 0.9, "stable_samples": 10}
    rejected = check_eval_score(
        rule, EvalScores(**means_ok, reject=True, log_e_value=3.5, log_threshold=3.0, source="golden")
    )
    assert rejected.state == "breaching" and rejected.observed["source"] == "golden"
    assert "sequential test on golden scores rejects: log e-value 3.5 >= 3" in rejected.summary
    few = check_eval_score(rule, EvalScores(0.0, 2, 1.0, 2, reject=False))
    assert few.state == "insufficient_data"


# -- config -------------------------------------------------------------------------------------------


def _mock_router() -> Router:
    return Router(
        model_list=[
            deployment("chat", "chat-stable", "The answer is 4."),
            deployment("chat", "chat-canary", "4"),
        ]
    )


def _config(evals: Mapping[str, Any] | None, **triggers: Any) -> dict[str, Any]:
    rollout = chat_rollout(triggers={**QUIET, **triggers})
    if evals is not None:
        rollout["evals"] = dict(evals)
    return {"rollouts": [rollout], "flag_store": {"kind": "memory"}}


@pytest.mark.parametrize(
    ("evals", "message"),
    [
        (
            {"sample_rate": 0.5},
            "evals needs a 'scorer' (sampled traffic), a 'golden_set' or 'feedback: true'",
        ),
        ({"scorer": {"builtin": "regex"}}, "builtin scorer 'regex' needs 'pattern'"),
        ({"scorer": {"builtin": "json_schema"}}, "builtin scorer 'json_schema' needs 'schema'"),
        ({"scorer": {"builtin": "bleu", "reference": "x"}}, "rollouts[0].evals.scorer"),
        ({"scorer": "litellm_canary.evals:exact_match", "sample_rate": 1.5}, "sample_rate"),
        ({"scorer": "litellm_canary.evals:exact_match", "queue_size": 0}, "queue_size"),
        ({"scorer": "litellm_canary.evals:exact_match", "golden_interval_s": 0}, "golden_interval_s"),
        ({"scorer": "litellm_canary.evals:exact_match", "sample_rat": 0.1}, "sample_rat"),
    ],
)
def test_invalid_evals_config_is_refused_with_the_field(evals: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        litellm_canary.attach(_mock_router(), _config(evals), background=False)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("scorer", "message"),
    [
        (
            {"builtin": "regex", "pattern": "(unclosed"},
            "rollouts[0].evals.scorer: invalid regex_match pattern",
        ),
        ({"builtin": "json_schema", "schema": {"type": 12}}, "rollouts[0].evals.scorer: invalid JSON schema"),
        (
            "no_such_module_xyz:score",
            "rollouts[0].evals.scorer: cannot import scorer 'no_such_module_xyz:score'",
        ),
    ],
)
def test_an_unusable_scorer_is_refused_before_anything_is_attached(scorer: Any, message: str) -> None:
    router = _mock_router()
    with pytest.raises(ConfigError, match=re.escape(message)):
        litellm_canary.attach(router, _config({"scorer": scorer}), background=False)
    assert not any(type(c).__name__ == "CanaryCallbacks" for c in litellm.callbacks)  # nothing attached


def test_a_bad_golden_set_is_refused_with_its_line(tmp_path: Any) -> None:
    golden = tmp_path / "golden.jsonl"
    golden.write_text('{"prompt": "a", "reference": "b"}\n\n{"prompt": "c"}\n')
    with pytest.raises(
        ConfigError, match=r"rollouts\[0\]\.evals\.golden_set: .*golden\.jsonl:3: a case needs"
    ):
        litellm_canary.attach(_mock_router(), _config({"golden_set": str(golden)}), background=False)


# -- sampling and scoring ------------------------------------------------------------------------------


async def test_sampled_responses_are_scored_by_side_and_a_full_queue_drops() -> None:
    router = _mock_router()
    evals = {"scorer": {"builtin": "regex", "pattern": "answer is 4"}, "sample_rate": 1.0, "queue_size": 3}
    canary = litellm_canary.attach(router, _config(evals, eval_score={"min_samples": 1}), background=False)
    updates: list[str] = []
    canary.evals.on_update(updates.append)
    offers = _offers(canary)
    try:
        canary.set_side("chat", Side.CANARY)
        await _send(router, 2)
        await offers.wait(2)
        canary.set_side("chat", Side.STABLE)
        await _send(router, 3)
        await offers.wait(5)
        queue = canary.evals.rollouts["chat"].queue
        assert sum(queue.offered.values()) == 5
        assert dict(queue.dropped) == {"stable": 2}  # the queue holds 3; it filled up with stable
        assert await canary.evals.score_pending() == 3
        status = canary.status()["groups"]["chat"]["evals"]
        assert status["scored"]["traffic"] == {
            "canary": {"ok": 2, "failed": 0},
            "stable": {"ok": 1, "failed": 0},
        }
        assert status["queue"] == {"size": 3, "depth": 0, "dropped": {"stable": 2, "canary": 0}}
        series = status["series"]["traffic"]
        assert (series["canary_mean"], series["stable_mean"]) == (0.0, 1.0)
        assert updates == ["chat"] * 3
        verdict = canary.auto_rollback.monitors["chat"].evaluate().rule("eval_score")
        assert verdict.observed["source"] == "traffic" and verdict.observed["reject"] is False
    finally:
        canary.detach()


async def test_streamed_and_sync_responses_are_scored_on_their_full_text_and_not_while_rolled_back() -> None:
    router = _mock_router()
    evals = {"scorer": {"builtin": "regex", "pattern": "^The answer is 4\\.$"}, "sample_rate": 1.0}
    canary = litellm_canary.attach(router, _config(evals, eval_score={"min_samples": 1}), background=False)
    canary.route_sync_calls()  # sync calls are steered only through the opt-in strategy
    offers = _offers(canary)
    try:
        assert await _stream(router) == "The answer is 4."
        assert await asyncio.to_thread(_sync_completion, router) == "The answer is 4."
        await offers.wait(2)
        assert await canary.evals.score_pending() == 2
        scored = canary.status()["groups"]["chat"]["evals"]["scored"]["traffic"]["stable"]
        assert scored == {"ok": 2, "failed": 0}
        assert canary.status()["groups"]["chat"]["evals"]["series"]["traffic"]["stable_mean"] == 1.0
        canary.rollback("chat", "manual")
        await _send(router, 3)
        await offers.wait(5)
        assert len(canary.evals.rollouts["chat"].queue) == 0  # nothing to judge while rolled back
    finally:
        canary.detach()


async def test_the_sample_rate_is_a_fraction_of_responses() -> None:
    router = _mock_router()
    canary = litellm_canary.attach(
        router, _config({"scorer": {"builtin": "regex", "pattern": "4"}}), background=False
    )
    draws = iter([0.05, 0.5, 0.09, 0.1, 0.99])  # sample_rate 0.1 (the default): draws below it are kept
    pipeline = EvalPipeline(canary.config, canary.runtimes, router, rng=lambda: next(draws))
    try:
        for _ in range(5):
            outcome = Outcome("chat", Side.STABLE, "chat-stable", True, "success")
            pipeline.offer(outcome, {"messages": MESSAGES}, CHAT_ANSWER)
        assert sum(pipeline.rollouts["chat"].queue.offered.values()) == 2
    finally:
        canary.detach()


async def test_a_failing_scorer_counts_failures_and_judges_nothing() -> None:
    router = _mock_router()
    evals = {"scorer": "tests.integration.test_eval_sampling:out_of_range_scorer", "sample_rate": 1.0}
    canary = litellm_canary.attach(router, _config(evals), background=False)
    offers = _offers(canary)
    try:
        await _send(router, 2)
        await offers.wait(2)
        await canary.evals.score_pending()
        status = canary.status()["groups"]["chat"]["evals"]
        assert status["scored"]["traffic"]["stable"] == {"ok": 0, "failed": 2}
        assert status["series"]["traffic"]["stable_samples"] == 0
    finally:
        canary.detach()


async def out_of_range_scorer(request: Mapping[str, Any], response: Any) -> float:
    return 1.5


async def test_responses_api_answers_are_scored_on_their_output_text_and_embeddings_are_not_sampled() -> None:
    router = _mock_router()
    evals = {"scorer": "tests.integration.test_eval_sampling:recording_scorer", "sample_rate": 1.0}
    canary = litellm_canary.attach(router, _config(evals, eval_score={"min_samples": 1}), background=False)
    offers = _offers(canary)
    _seen.clear()
    try:
        response = await router.aresponses(model="chat", input="what is 2+2?")
        await offers.wait(1)
        assert await canary.evals.score_pending() == 1
        status = canary.status()["groups"]["chat"]["evals"]
        assert status["scored"]["traffic"]["stable"] == {"ok": 1, "failed": 0}
        assert status["series"]["traffic"]["stable_mean"] == 1.0  # "The answer is 4." matched
        ((request, text),) = _seen
        assert text == "The answer is 4." and response.id
        assert request["input"] == "what is 2+2?" and request["messages"] == MESSAGES
        # An embedding has no text answer: never queued (not a scorer failure either).
        embedding = litellm.EmbeddingResponse(data=[{"object": "embedding", "index": 0, "embedding": [0.1]}])
        outcome = Outcome("chat", Side.STABLE, "chat-stable", True, "success")
        canary.evals.offer(outcome, {"input": ["what is 2+2?"], "messages": MESSAGES}, embedding)
        assert len(canary.evals.rollouts["chat"].queue) == 0
    finally:
        canary.detach()


_seen: list[tuple[Mapping[str, Any], str]] = []


async def recording_scorer(request: Mapping[str, Any], response: Any) -> float:
    text = response_text(response)
    _seen.append((request, text))
    return 1.0 if "answer is 4" in text else 0.0


_sync_gate = threading.Event()
_sync_entered = threading.Event()


def blocking_sync_scorer(request: Mapping[str, Any], response: Any) -> float:
    """A plain (sync) scorer that blocks until the test opens the gate."""
    _sync_entered.set()
    _sync_gate.wait(timeout=30)
    return 1.0


async def test_a_stuck_sync_scorer_runs_off_the_loop_and_times_out() -> None:
    _sync_gate.clear()
    _sync_entered.clear()
    router = _mock_router()
    evals = {
        "scorer": "tests.integration.test_eval_sampling:blocking_sync_scorer",
        "sample_rate": 1.0,
        "score_timeout_s": 0.5,
    }
    canary = litellm_canary.attach(router, _config(evals), background=False)
    offers = _offers(canary)
    release = threading.Timer(20, _sync_gate.set)  # a scorer run on the loop would hang the test
    release.start()
    try:
        await _send(router, 1)
        await offers.wait(1)
        scoring = asyncio.create_task(canary.evals.score_pending())
        # The scorer is stuck in its thread; this loop still runs other work meanwhile.
        await asyncio.to_thread(_sync_entered.wait, 10)
        assert _sync_entered.is_set() and not scoring.done()
        assert await scoring == 1  # score_timeout_s ended the wait
        assert not _sync_gate.is_set()  # ... while the scorer was still stuck
        status = canary.status()["groups"]["chat"]["evals"]
        assert status["scored"]["traffic"]["stable"] == {"ok": 0, "failed": 1}
        assert status["series"]["traffic"]["stable_samples"] == 0
    finally:
        _sync_gate.set()
        release.cancel()
        canary.detach()


# -- off the request path -----------------------------------------------------------------------------

_gate = threading.Event()
_entered = threading.Event()


async def blocking_scorer(request: Mapping[str, Any], response: Any) -> float:
    """Blocks the scoring thread (not just its loop) until the test opens the gate."""
    _entered.set()
    _gate.wait(timeout=30)
    return 1.0


async def test_a_blocked_scorer_never_delays_a_response() -> None:
    _gate.clear()
    _entered.clear()
    router = _mock_router()
    evals = {
        "scorer": "tests.integration.test_eval_sampling:blocking_scorer",
        "sample_rate": 1.0,
        "queue_size": 5,
    }
    canary = litellm_canary.attach(router, _config(evals))
    canary.route_sync_calls()  # sync calls are steered only through the opt-in strategy
    offers, scored = _offers(canary), _updates(canary)
    try:
        await _send(router, 1)
        await asyncio.to_thread(_entered.wait, 10)  # the scorer is now stuck on the scoring thread
        # While it is stuck: async, streamed and sync requests all complete, and samples pile up
        # and then drop instead of waiting.
        answers = await _send(router, 20)
        answers.append(await _stream(router))
        answers.append(await asyncio.to_thread(_sync_completion, router))
        assert answers == ["The answer is 4."] * 22
        assert not _gate.is_set() and scored.count == 0
        await offers.wait(23)
        queue = canary.evals.rollouts["chat"].queue
        assert queue.dropped["stable"] == 23 - 1 - 5  # one taken by the stuck scorer, 5 queued
        _gate.set()
        await scored.wait(6)
        assert canary.status()["groups"]["chat"]["evals"]["scored"]["traffic"]["stable"]["ok"] == 6
    finally:
        _gate.set()
        canary.detach()
    assert not canary.evals.running


# -- the eval_score rule on a real Router with fault-injecting upstreams --------------------------------


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, FakeUpstream]]:
    servers = started_upstreams({"chat-stable": "The answer is 4.", "chat-canary": "The answer is 4."})
    yield servers
    for server in servers.values():
        server.stop()


async def test_a_canary_giving_bad_answers_is_rolled_back_by_the_eval_score_rule(
    upstreams: dict[str, FakeUpstream],
) -> None:
    upstreams["chat-canary"].set_faults(bad_answer="I am not sure.")
    router = upstream_router(upstreams, num_retries=0, disable_cooldowns=True)
    evals = {"scorer": {"builtin": "regex", "pattern": "answer is 4"}, "sample_rate": 1.0}
    config = {
        **_config(evals, eval_score={"min_samples": 5, "alpha": 0.05}),
        "evaluation_step_s": 0.02,
    }
    canary = litellm_canary.attach(router, config)
    rolled_back: asyncio.Future[RollbackRecord] = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    canary.controller.on_rollback(
        lambda record: loop.call_soon_threadsafe(lambda: rolled_back.done() or rolled_back.set_result(record))
    )
    try:
        canary.set_canary_percent("chat", 50)
        for _ in range(40):
            await _send(router, 10)
            if rolled_back.done():
                break
        record = await asyncio.wait_for(rolled_back, 10)
        assert record.kind == "automatic"
        assert record.cause is not None and record.cause["rule"] == "eval_score"
        assert record.cause["reject"] is True and record.cause["source"] == "traffic"
        assert record.cause["log_e_value"] >= record.cause["log_threshold"]
        assert record.cause["canary_mean"] == 0.0 and record.cause["stable_mean"] == 1.0
        status = canary.status()["groups"]["chat"]
        assert status["state"] == "rolled_back" and status["evals"]["rejected_by"] == "traffic"
        # Re-arming starts the judgement afresh.
        upstreams["chat-canary"].clear_faults()
        canary.rearm("chat")
        assert canary.status()["groups"]["chat"]["evals"]["series"]["traffic"]["canary_samples"] == 0
        assert canary.status()["groups"]["chat"]["evals"]["rejected_by"] is None
    finally:
        canary.detach()


async def test_a_healthy_canary_is_not_rolled_back(upstreams: dict[str, FakeUpstream]) -> None:
    router = upstream_router(upstreams, num_retries=0, disable_cooldowns=True)
    evals = {"scorer": {"builtin": "regex", "pattern": "answer is 4"}, "sample_rate": 1.0}
    config = {**_config(evals, eval_score={"min_samples": 5, "alpha": 0.05}), "evaluation_step_s": 0.02}
    canary = litellm_canary.attach(router, config, background=False)
    offers = _offers(canary)
    try:
        canary.set_canary_percent("chat", 50)
        for step in range(1, 11):
            await _send(router, 20)
            await offers.wait(20 * step)
            await canary.evals.score_pending()
            canary.auto_rollback.evaluate()
        status = canary.status()["groups"]["chat"]
        series = status["evals"]["series"]["traffic"]
        assert min(series["canary_samples"], series["stable_samples"]) >= 20
        assert status["state"] == "armed"
        assert status["triggers"]["rules"][-1]["rule"] == "eval_score"
        assert status["triggers"]["rules"][-1]["state"] == "ok"
    finally:
        canary.detach()


# -- helpers ------------------------------------------------------------------------------------------


async def _send(router: Router, n: int) -> list[str]:
    async def one() -> str:
        response = await router.acompletion(model="chat", messages=MESSAGES, user=f"u{next(_users)}")
        return str(response.choices[0].message.content)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def _stream(router: Router) -> str:
    response = await router.acompletion(model="chat", messages=MESSAGES, stream=True, user=f"u{next(_users)}")
    return "".join([chunk.choices[0].delta.content or "" async for chunk in response])


def _sync_completion(router: Router) -> str:
    response = router.completion(model="chat", messages=MESSAGES, user=f"u{next(_users)}")
    return str(response.choices[0].message.content)


class Waiter:
    """Counts calls from LiteLLM's logging workers or the scoring thread; a test awaits a count."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self.count = 0

    def __call__(self, *args: Any) -> None:
        self._loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        self.count += 1
        self._changed.set()

    async def wait(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while self.count < count:
                self._changed.clear()
                await self._changed.wait()


def _offers(canary: litellm_canary.Canary) -> Waiter:
    """Counts successful attempts after the eval pipeline has seen them (listeners run in order)."""
    waiter = Waiter()
    canary._callbacks.successes.connect(waiter)
    return waiter


def _updates(canary: litellm_canary.Canary) -> Waiter:
    waiter = Waiter()
    canary.evals.on_update(waiter)
    return waiter


async def test_replayed_feedback_counts_each_response_once_in_the_series() -> None:
    router = _mock_router()
    evals = {"feedback": True}
    canary = litellm_canary.attach(router, _config(evals, eval_score={"min_samples": 5}), background=False)
    offers = _offers(canary)
    try:
        ids: dict[str, list[str]] = {}
        for side in ("canary", "stable"):
            canary.set_side("chat", side)
            for _ in range(3):
                response = await router.acompletion(model="chat", messages=MESSAGES, user=f"u{next(_users)}")
                ids.setdefault(side, []).append(response.id)
        await offers.wait(6)
        for _ in range(4):  # the same feedback, replayed (a retrying client, a double click)
            for canary_id, stable_id in zip(ids["canary"], ids["stable"], strict=True):
                canary.record_feedback(canary_id, 0.0)
                canary.record_feedback(stable_id, 1.0)
        canary.record_feedback(ids["canary"][0], 1.0)  # a changed mind: replaces the tally's score
        status = canary.status()["groups"]["chat"]
        series = status["evals"]["series"]["feedback"]
        assert (series["canary_samples"], series["stable_samples"]) == (3, 3)  # not 13 / 12
        assert series["effective_pairs"] == 3
        assert status["evals"]["scored"]["feedback"] == {
            "canary": {"ok": 3, "failed": 0},
            "stable": {"ok": 3, "failed": 0},
        }
        assert status["feedback"]["sides"]["canary"] == {"count": 3, "mean": round(1 / 3, 6)}
        canary.auto_rollback.evaluate()
        assert canary.status()["groups"]["chat"]["state"] != "rolled_back"  # 3 < min_samples 5
    finally:
        canary.detach()


async def test_user_feedback_is_its_own_series_and_can_fire_the_rule() -> None:
    router = _mock_router()
    evals = {"scorer": {"builtin": "regex", "pattern": "4"}, "sample_rate": 0.0, "feedback": True}
    canary = litellm_canary.attach(router, _config(evals, eval_score={"min_samples": 5}), background=False)
    offers = _offers(canary)
    try:
        ids: dict[str, list[str]] = {}
        for side, count in (("canary", 30), ("stable", 30)):
            canary.set_side("chat", side)
            for _ in range(count):
                response = await router.acompletion(model="chat", messages=MESSAGES, user=f"u{next(_users)}")
                ids.setdefault(side, []).append(response.id)
        await offers.wait(60)
        evals_status = canary.status()["groups"]["chat"]["evals"]
        assert evals_status["combination"] == "mean_e_value"
        assert evals_status["log_threshold"] == pytest.approx(math.log(20))  # 2 sources, no alpha split
        for canary_id, stable_id in zip(ids["canary"], ids["stable"], strict=True):
            canary.record_feedback(canary_id, 0.0)  # users hate the canary's answers
            canary.record_feedback(stable_id, 1.0)
        canary.auto_rollback.evaluate()
        status = canary.status()["groups"]["chat"]
        assert status["state"] == "rolled_back"
        assert status["last_rollback"]["cause"]["source"] == "feedback"
        assert status["evals"]["scored"]["feedback"]["canary"] == {"ok": 30, "failed": 0}
        assert status["evals"]["scored"]["traffic"]["canary"] == {"ok": 0, "failed": 0}  # sample_rate 0
    finally:
        canary.detach()

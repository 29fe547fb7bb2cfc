"""Golden sets: parsing with line-numbered errors, replays against each side, and the eval_score rule."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import litellm_canary
from litellm_canary.core.config import load_config_file, parse_config
from litellm_canary.core.decision import Side
from litellm_canary.core.rollback_record import RollbackRecord
from litellm_canary.detection.golden import GoldenSetError, load_golden_set, parse_golden_lines, replay_golden
from litellm_canary.testing.fake_upstream import FakeUpstream
from tests.support.helpers import OutcomeWaiter, chat_rollout, started_upstreams, upstream_router

QUIET = {"error_rate": False, "ttft_p99": False, "fast_fail": False, "cooldown": False}
SECRET = "secret prompt text 7f3a"
CASES = [
    {"prompt": f"{SECRET}: what is 2+2?", "expect": {"regex": "answer is 4"}, "tags": ["math"]},
    {"prompt": [{"role": "user", "content": f"{SECRET} again"}], "reference": "The answer is 4."},
    {"prompt": "exactly?", "expect": {"exact": "The answer is 4."}, "reference": "ignored with expect"},
    {"prompt": "as json", "expect": {"json_schema": {"type": "object"}}},
]


def _write(tmp_path: Path, cases: list[Any]) -> Path:
    path = tmp_path / "golden.jsonl"
    path.write_text("# golden set\n\n" + "\n".join(json.dumps(c) for c in cases) + "\n")
    return path


# -- parsing ------------------------------------------------------------------------------------------


def test_a_golden_set_parses_with_its_line_numbers(tmp_path: Path) -> None:
    cases = load_golden_set(_write(tmp_path, CASES))
    assert [c.line for c in cases] == [3, 4, 5, 6]  # the comment and the blank line are skipped
    assert cases[0].tags == ("math",) and cases[0].messages == (
        {"role": "user", "content": CASES[0]["prompt"]},
    )
    assert cases[1].messages == tuple(CASES[1]["prompt"])
    assert SECRET not in repr(cases[0])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["prompt"]', "a case must be a JSON object, got list"),
        ('{"prompt": "a", "reference": "b", "answer": "c"}', "unknown key(s) ['answer']"),
        ('{"reference": "b"}', "a case needs a 'prompt'"),
        ('{"prompt": "a"}', "a case needs 'expect' or 'reference'"),
        ('{"prompt": "  ", "reference": "b"}', "'prompt' is an empty string"),
        ('{"prompt": [], "reference": "b"}', "'prompt' must be a non-empty string or list of messages"),
        ('{"prompt": [{"content": "x"}], "reference": "b"}', "'prompt'[0] must be a message object"),
        ('{"prompt": [{"role": "user"}], "reference": "b"}', "'prompt'[0] has no 'content'"),
        ('{"prompt": "a", "reference": 4}', "'reference' must be a string, got int"),
        ('{"prompt": "a", "expect": {"regex": "a", "exact": "b"}}', "exactly one of"),
        ('{"prompt": "a", "expect": {"contains": "b"}}', "unknown expectation 'expect.contains'"),
        ('{"prompt": "a", "expect": {"regex": "(x"}}', "invalid regex_match pattern '(x'"),
        ('{"prompt": "a", "expect": {"regex": 3}}', "'expect.regex' must be a string"),
        ('{"prompt": "a", "expect": {"json_schema": {"type": 5}}}', "invalid JSON schema"),
        ('{"prompt": "a", "expect": {"exact": null}}', "'expect.exact' must be a string"),
        ('{"prompt": "a", "reference": "b", "tags": "math"}', "'tags' must be a list of strings"),
    ],
)
def test_each_bad_line_is_named_with_its_number(line: str, message: str) -> None:
    good = '{"prompt": "ok", "reference": "ok"}'
    with pytest.raises(GoldenSetError) as error:
        parse_golden_lines([good, "", line], "g.jsonl")
    assert str(error.value).startswith("g.jsonl:3: ")
    assert message in str(error.value)


def test_a_relative_golden_set_path_resolves_next_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    (folder / "sets").mkdir(parents=True)
    (folder / "sets" / "golden.jsonl").write_text('{"prompt": "Say OK", "expect": {"exact": "OK"}}\n')
    rollout = {**chat_rollout(), "evals": {"golden_set": "sets/golden.jsonl"}}
    for name, text in (
        ("canary.yaml", yaml.safe_dump({"rollouts": [rollout]})),
        ("canary.json", json.dumps({"rollouts": [rollout]})),
        ("proxy.yaml", yaml.safe_dump({"model_list": [], "litellm_canary": {"rollouts": [rollout]}})),
    ):
        (folder / name).write_text(text)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(exist_ok=True)
        monkeypatch.chdir(elsewhere)  # the process runs from another folder
        evals = load_config_file(Path("..") / "conf" / name).rollouts[0].evals
        assert evals is not None and evals.golden_set is not None
        assert evals.golden_set.resolve() == (folder / "sets" / "golden.jsonl").resolve(), name
        assert len(load_golden_set(evals.golden_set)) == 1
    # A mapping given in code has no file: relative paths stay relative to the working directory.
    evals = parse_config({"rollouts": [rollout]}).rollouts[0].evals
    assert evals is not None and evals.golden_set == Path("sets/golden.jsonl")
    absolute = {**rollout, "evals": {"golden_set": str(folder / "sets" / "golden.jsonl")}}
    (folder / "abs.yaml").write_text(yaml.safe_dump({"rollouts": [absolute]}))
    evals = load_config_file(folder / "abs.yaml").rollouts[0].evals
    assert evals is not None and evals.golden_set == folder / "sets" / "golden.jsonl"


def test_an_empty_or_missing_golden_set_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("# nothing\n\n")
    with pytest.raises(GoldenSetError, match=r"empty\.jsonl: no cases"):
        load_golden_set(empty)
    with pytest.raises(GoldenSetError, match=r"cannot read golden set .*missing\.jsonl"):
        load_golden_set(tmp_path / "missing.jsonl")


# -- replays ------------------------------------------------------------------------------------------


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, FakeUpstream]]:
    servers = started_upstreams({"chat-stable": "The answer is 4.", "chat-canary": "The answer is 4."})
    yield servers
    for server in servers.values():
        server.stop()


def _config(golden: Path, **evals: Any) -> dict[str, Any]:
    rollout = chat_rollout(
        triggers={**QUIET, "eval_score": {"min_samples": 5, "alpha": 0.05}},
        evals={"golden_set": str(golden), "golden_interval_s": 0.05, **evals},
    )
    return {"rollouts": [rollout], "flag_store": {"kind": "memory"}, "evaluation_step_s": 0.02}


async def test_replay_golden_scores_each_side_without_keeping_text(
    upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    upstreams["chat-canary"].set_faults(bad_answer="I am not sure.")
    router = upstream_router(upstreams, num_retries=0)
    canary = litellm_canary.attach(router, _config(_write(tmp_path, CASES)), background=False)
    outcomes = OutcomeWaiter(canary)
    try:
        stable = await replay_golden(canary, "chat", Side.STABLE)
        bad = await replay_golden(canary, "chat", Side.CANARY)
        assert (stable.side, stable.n, stable.failures) == (Side.STABLE, 4, 0)
        assert [c.score for c in stable.cases] == [1.0, 1.0, 1.0, 0.0]  # the answer is not JSON
        assert stable.mean_score == 0.75
        assert [c.score for c in bad.cases] == [0.0, 0.0, 0.0, 0.0] and bad.mean_score == 0.0
        assert {c.deployment_id for c in bad.cases} == {"chat-canary"}
        assert stable.cases[0].as_dict() == {
            "line": 3,
            "deployment_id": "chat-stable",
            "score": 1.0,
            "error": None,
            "tags": ["math"],
        }
        assert SECRET not in json.dumps(stable.as_dict())
        # Replays are probes, not user traffic: the upstreams saw them, the outcome windows did not.
        assert upstreams["chat-stable"].stats()["requests"] == 4
        assert outcomes.outcomes == [] and canary.status()["groups"]["chat"]["attempts"] == {}
        # A side whose calls fail scores 0 per case and counts the failures, by error type only.
        upstreams["chat-canary"].set_faults(error_rate=1.0, error_status=500)
        failed = await replay_golden(canary, "chat", Side.CANARY)
        assert failed.failures == 4 and failed.mean_score == 0.0
        assert {c.error for c in failed.cases} == {"InternalServerError"}
    finally:
        canary.detach()


async def test_replay_golden_needs_a_golden_set(upstreams: dict[str, FakeUpstream]) -> None:
    router = upstream_router(upstreams)
    config = {"rollouts": [chat_rollout()], "flag_store": {"kind": "memory"}}
    canary = litellm_canary.attach(router, config, background=False)
    try:
        with pytest.raises(ValueError, match="model group 'chat' has no golden set configured"):
            await replay_golden(canary, "chat", Side.STABLE)
    finally:
        canary.detach()


# -- scheduled rounds and the eval_score rule ----------------------------------------------------------


async def test_a_canary_failing_the_golden_set_is_rolled_back(
    upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    upstreams["chat-canary"].set_faults(bad_answer="I am not sure.")
    router = upstream_router(upstreams, num_retries=0)
    loop = asyncio.get_running_loop()
    rolled_back: asyncio.Future[RollbackRecord] = loop.create_future()
    canary = litellm_canary.attach(router, _config(_write(tmp_path, CASES)))
    canary.controller.on_rollback(
        lambda record: loop.call_soon_threadsafe(lambda: rolled_back.done() or rolled_back.set_result(record))
    )
    try:
        # No user traffic at all: the scheduled golden rounds alone find the bad canary.
        record = await asyncio.wait_for(rolled_back, 30)
        assert record.kind == "automatic" and record.cause is not None
        assert (record.cause["rule"], record.cause["source"], record.cause["reject"]) == (
            "eval_score",
            "golden",
            True,
        )
        # The verdict as it was when the test rejected (possibly mid-round).
        assert record.cause["canary_mean"] == 0.0 and 0.7 < record.cause["stable_mean"] <= 1.0
        baseline = canary.evals.golden_baseline("chat")
        assert baseline is not None and baseline.side is Side.STABLE and baseline.mean_score == 0.75
        evals = canary.status()["groups"]["chat"]["evals"]
        assert evals["rejected_by"] == "golden" and evals["golden"]["baseline_mean"] == 0.75
        assert evals["log_threshold"] == pytest.approx(math.log(20))  # alpha 0.05
        # While rolled back no round runs; the verifier can still replay stable on demand.
        assert await canary.evals.run_golden_round("chat") is None
        after = await replay_golden(canary, "chat", Side.STABLE)
        assert after.mean_score == baseline.mean_score
    finally:
        canary.detach()


async def test_a_healthy_canary_passes_its_golden_rounds(
    upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    router = upstream_router(upstreams, num_retries=0)
    canary = litellm_canary.attach(router, _config(_write(tmp_path, CASES)), background=False)
    try:
        for _ in range(15):
            round_ = await canary.evals.run_golden_round("chat")
            assert round_ is not None and round_["canary"].mean_score == round_["stable"].mean_score
            canary.auto_rollback.evaluate()
        status = canary.status()["groups"]["chat"]
        assert status["state"] == "armed"
        assert status["evals"]["golden"]["rounds"] == 15
        assert status["evals"]["series"]["golden"]["canary_samples"] == 60
        eval_rule = next(r for r in status["triggers"]["rules"] if r["rule"] == "eval_score")
        assert eval_rule["state"] == "ok" and eval_rule["source"] == "golden"
    finally:
        canary.detach()


async def test_metrics_show_eval_scores_per_side(upstreams: dict[str, FakeUpstream], tmp_path: Path) -> None:
    from litellm_canary.integrations.metrics import CanaryMetrics

    upstreams["chat-canary"].set_faults(bad_answer="I am not sure.")
    router = upstream_router(upstreams, num_retries=0)
    canary = litellm_canary.attach(router, _config(_write(tmp_path, CASES)), background=False)
    metrics = CanaryMetrics(canary)
    try:
        await canary.evals.run_golden_round("chat")
        text = metrics.exposition().decode()
        assert 'litellm_canary_eval_score_mean{model_group="chat",side="stable",source="golden"} 0.75' in text
        assert 'litellm_canary_eval_score_mean{model_group="chat",side="canary",source="golden"} 0.0' in text
        assert 'litellm_canary_eval_samples{model_group="chat",side="canary",source="golden"} 4.0' in text
        scored = (
            'litellm_canary_eval_scored_total{model_group="chat",result="ok",side="stable",source="golden"}'
        )
        assert f"{scored} 4.0" in text
        assert 'litellm_canary_eval_dropped_total{model_group="chat",side="canary"} 0.0' in text
        assert "litellm_canary_eval_log_e_value" in text
    finally:
        canary.detach()

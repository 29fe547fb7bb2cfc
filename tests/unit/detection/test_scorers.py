"""The scorers: reading the answer text, the bundled scorers, check_score and load_scorer."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from litellm import ModelResponse

from litellm_canary.detection.evals.answers import response_text
from litellm_canary.detection.evals.scorers import (
    check_score,
    exact_match,
    json_schema_valid,
    load_scorer,
    reference_similarity,
    regex_match,
    token_f1,
)

REQUEST: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def completion(content: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


# ------------------------------------------------------------------------------------------------
# Response text and the built-in scorers
# ------------------------------------------------------------------------------------------------


def test_response_text_reads_dicts_model_responses_and_strings() -> None:
    assert response_text("plain") == "plain"
    assert response_text(completion("from dict")) == "from dict"
    model_response = ModelResponse(choices=[{"message": {"role": "assistant", "content": "from litellm"}}])
    assert response_text(model_response) == "from litellm"
    assert response_text(completion(None)) == ""
    assert response_text(completion([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])) == "ab"


@pytest.mark.parametrize("bad", [{}, {"choices": []}, {"choices": [{}]}, 42, None, completion(3)])
def test_response_text_rejects_other_shapes(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"choices\[0\]\.message\.content"):
        response_text(bad)


async def test_exact_match() -> None:
    scorer = exact_match("Paris")
    assert await scorer(REQUEST, completion("  Paris\n")) == 1.0
    assert await scorer(REQUEST, "paris") == 0.0
    assert await exact_match("Paris", case_sensitive=False)(REQUEST, "paris") == 1.0
    assert await exact_match("Paris", strip=False)(REQUEST, " Paris") == 0.0
    with pytest.raises(ValueError, match="reference must be a str"):
        exact_match(3)  # type: ignore[arg-type]


async def test_regex_match() -> None:
    scorer = regex_match(r"\b\d{4}-\d{2}-\d{2}\b")
    assert await scorer(REQUEST, completion("on 2026-11-27, yes")) == 1.0
    assert await scorer(REQUEST, completion("tomorrow")) == 0.0
    with pytest.raises(ValueError, match=r"invalid regex_match pattern '\('"):
        regex_match("(")
    with pytest.raises(ValueError, match=r"must be a str or re\.Pattern"):
        regex_match(3)  # type: ignore[arg-type]


async def test_json_schema_valid() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name"],
    }
    scorer = json_schema_valid(schema)
    assert await scorer(REQUEST, completion('{"name": "a", "age": 3}')) == 1.0
    assert await scorer(REQUEST, completion('```json\n{"name": "a"}\n```')) == 1.0
    assert await scorer(REQUEST, completion('{"age": 3}')) == 0.0  # required missing
    assert await scorer(REQUEST, completion('{"name": "a", "age": -1}')) == 0.0
    assert await scorer(REQUEST, completion("not json at all")) == 0.0
    assert await scorer(REQUEST, completion(None)) == 0.0
    with pytest.raises(ValueError, match="invalid JSON schema"):
        json_schema_valid({"type": "no-such-type"})
    with pytest.raises(ValueError, match="must be a mapping"):
        json_schema_valid([])  # type: ignore[arg-type]


async def test_reference_similarity_is_token_f1() -> None:
    scorer = reference_similarity("The capital of France is Paris.")
    assert await scorer(REQUEST, completion("the capital of france is paris")) == 1.0
    assert await scorer(REQUEST, completion("Berlin")) == 0.0
    # 3 shared tokens; precision 3/3, recall 3/6 -> F1 = 2/3
    assert await scorer(REQUEST, "capital France Paris") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0
    assert token_f1("", "x") == 0.0
    assert token_f1("a a b", "a b b") == pytest.approx(2 / 3)  # multiset overlap is 2
    with pytest.raises(ValueError, match="reference must be a str"):
        reference_similarity(None)  # type: ignore[arg-type]


def test_check_score() -> None:
    assert check_score(1) == 1.0
    for bad in (-0.01, 1.01, math.nan, math.inf, "0.5", True, None):
        with pytest.raises(ValueError, match="my scorer"):
            check_score(bad, "my scorer")


# ------------------------------------------------------------------------------------------------
# load_scorer
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def scorer_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("fake_scorers_mod")

    async def async_scorer(request: Any, response: Any) -> float:
        return 0.25

    def sync_scorer(request: Any, response: Any) -> float:
        return 0.75

    class Holder:
        nested = staticmethod(sync_scorer)

    module.async_scorer = async_scorer  # type: ignore[attr-defined]
    module.sync_scorer = sync_scorer  # type: ignore[attr-defined]
    module.Holder = Holder  # type: ignore[attr-defined]
    module.NOT_CALLABLE = 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_scorers_mod", module)
    return module


async def test_load_scorer_both_syntaxes(scorer_module: types.ModuleType) -> None:
    assert load_scorer("fake_scorers_mod:async_scorer") is scorer_module.async_scorer
    assert await load_scorer("fake_scorers_mod.async_scorer")(REQUEST, "x") == 0.25
    assert await load_scorer("fake_scorers_mod:sync_scorer")(REQUEST, "x") == 0.75  # wrapped
    assert await load_scorer("fake_scorers_mod:Holder.nested")(REQUEST, "x") == 0.75
    factory = load_scorer("litellm_canary.evals:exact_match")  # a factory is callable too
    assert callable(factory)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_module_xyz:f", "cannot import scorer 'no_such_module_xyz:f'"),
        ("fake_scorers_mod:missing", "cannot import scorer 'fake_scorers_mod:missing'.*AttributeError"),
        ("fake_scorers_mod.missing", "cannot import scorer 'fake_scorers_mod.missing'"),
        ("fake_scorers_mod:NOT_CALLABLE", "scorer 'fake_scorers_mod:NOT_CALLABLE' is a int, not a callable"),
        ("justaname", "'justaname' must look like"),
        ("mod:", "'mod:' must look like"),
        ("", "non-empty string"),
    ],
)
def test_load_scorer_errors_name_the_path(scorer_module: types.ModuleType, path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_scorer(path)


def test_load_scorer_wraps_import_time_exceptions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "broken_scorer_mod.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"cannot import scorer 'broken_scorer_mod:f': RuntimeError: boom"):
        load_scorer("broken_scorer_mod:f")

"""FakeUpstream over real HTTP on 127.0.0.1, driven by the official openai client and by litellm."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import litellm
import openai
import pytest

from litellm_canary.testing.fake_upstream import FakeUpstream, Faults, UpstreamStats

ANSWER = "the quick brown fox jumps"
MESSAGES: list[Any] = [{"role": "user", "content": "say something"}]
# Plain HTTP only, but every httpx client builds a TLS context (~50 ms): build one and share it.
TLS = ssl.create_default_context()


def openai_client(upstream: FakeUpstream, **options: Any) -> openai.AsyncOpenAI:
    options.setdefault("max_retries", 0)
    http_client = openai.DefaultAsyncHttpxClient(verify=TLS)
    return openai.AsyncOpenAI(base_url=upstream.base_url, api_key="x", http_client=http_client, **options)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream("primary", answer=ANSWER) as up:
        yield up


@pytest.fixture
async def client(upstream: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai_client(upstream) as c:
        yield c


@pytest.fixture
async def http(upstream: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=upstream.url, timeout=5.0, verify=TLS) as c:
        yield c


def litellm_kwargs(upstream: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/fake",
        "api_base": upstream.base_url,
        "api_key": "x",
        "messages": MESSAGES,
        "max_retries": 0,
        **extra,
    }


async def collect_chat_stream(client: openai.AsyncOpenAI, **extra: Any) -> list[str]:
    stream = await client.chat.completions.create(model="fake", messages=MESSAGES, stream=True, **extra)
    return [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]


# ------------------------------------------------------------------------------------------ lifecycle


def test_binds_loopback_ephemeral_ports_and_is_refused_until_started() -> None:
    a, b = FakeUpstream("a"), FakeUpstream("b")
    try:
        assert a.port > 0 and b.port > 0 and a.port != b.port
        assert a.base_url == f"http://127.0.0.1:{a.port}/v1"
        with pytest.raises(httpx.ConnectError):  # port reserved but not listening yet
            httpx.get(f"{a.base_url}/models", timeout=2, verify=TLS)
        with a, b:
            assert a.running and b.running
            assert httpx.get(f"{a.base_url}/models", timeout=2, verify=TLS).json()["data"][0]["id"] == "a"
            assert httpx.get(f"{b.base_url}/models", timeout=2, verify=TLS).json()["data"][0]["id"] == "b"
            assert a.start() is a  # idempotent
        assert not a.running
        a.stop()  # idempotent
    finally:
        a.stop()
        b.stop()


def test_restart_keeps_port_and_counters() -> None:
    up = FakeUpstream("r", answer="again")
    port = up.port
    with up:
        httpx.get(f"{up.base_url}/models", timeout=2, verify=TLS)
    with up:
        assert up.port == port
        httpx.get(f"{up.base_url}/models", timeout=2, verify=TLS)
        assert up.stats()["requests"] == 2


# --------------------------------------------------------------------------------------- happy paths


async def test_non_stream_answer_with_openai(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="fake", messages=MESSAGES)
    completion = raw.parse()
    assert raw.headers["x-fake-upstream"] == "primary"
    assert completion.object == "chat.completion"
    assert completion.model == "fake"
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 5
    stats = upstream.stats()
    assert stats["requests"] == 1 and stats["in_flight"] == 0 and stats["errors"] == 0
    assert stats["endpoints"]["chat_completions"] == 1
    assert upstream.recorded_requests()[0].body["messages"] == MESSAGES


async def test_stream_chunks_assemble_to_answer(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="fake", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 5
    assert "".join(pieces) == ANSWER
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    stats = upstream.stats()
    assert stats["streams_started"] == 1 and stats["streams_completed"] == 1 and stats["in_flight"] == 0


async def test_litellm_non_stream_and_stream(upstream: FakeUpstream) -> None:
    response = await litellm.acompletion(**litellm_kwargs(upstream))
    assert response.choices[0].message.content == ANSWER
    stream = await litellm.acompletion(**litellm_kwargs(upstream, stream=True))
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
    assert "".join(pieces) == ANSWER
    assert len([p for p in pieces if p]) > 1
    assert upstream.stats()["streams_completed"] == 1


async def test_responses_endpoint(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(model="fake", input="hello there")
    assert response.id.startswith("resp_")
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == ANSWER
    assert response.usage is not None and response.usage.output_tokens == 5

    stream = await client.responses.create(model="fake", input="hello there", stream=True)
    events = [event async for event in stream]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) == 5 and "".join(deltas) == ANSWER
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert upstream.stats()["endpoints"]["responses"] == 2


async def test_embeddings_are_deterministic(
    upstream: FakeUpstream, client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    first = await client.embeddings.create(model="emb", input=["alpha", "beta"])  # base64 on the wire
    again = await client.embeddings.create(model="emb", input="alpha", encoding_format="float")
    assert [d.index for d in first.data] == [0, 1]
    alpha = first.data[0].embedding
    assert len(alpha) == 8
    assert abs(sum(x * x for x in alpha) - 1.0) < 1e-3
    assert again.data[0].embedding == pytest.approx(alpha, abs=1e-6)
    assert first.data[1].embedding != pytest.approx(alpha, abs=1e-6)
    sized = (await http.post("/v1/embeddings", json={"model": "emb", "input": "x", "dimensions": 4})).json()
    assert len(sized["data"][0]["embedding"]) == 4
    assert upstream.stats()["endpoints"]["embeddings"] == 3


async def test_models_endpoint(client: openai.AsyncOpenAI) -> None:
    assert [m.id async for m in client.models.list()] == ["primary"]


# -------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize("status", [500, 429, 503])
async def test_error_rate_one_gives_status(
    upstream: FakeUpstream, client: openai.AsyncOpenAI, http: httpx.AsyncClient, status: int
) -> None:
    upstream.set_faults(error_rate=1.0, error_status=status)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="fake", messages=MESSAGES)
    assert caught.value.status_code == status
    raw = await http.post("/v1/embeddings", json={"model": "e", "input": "x"})
    assert raw.status_code == status
    error = raw.json()["error"]
    assert set(error) >= {"message", "type", "code"}
    assert error["type"] == ("rate_limit_error" if status == 429 else "server_error")
    with pytest.raises(openai.APIStatusError):
        await litellm.acompletion(**litellm_kwargs(upstream))
    stats = upstream.stats()
    assert stats["errors"] == stats["requests"] == 3


async def test_error_rate_is_reproducible_for_a_seed(upstream: FakeUpstream, http: httpx.AsyncClient) -> None:
    async def pattern() -> list[int]:
        return [(await http.get("/v1/models")).status_code for _ in range(30)]

    upstream.set_faults(error_rate=0.5, seed=7)
    first = await pattern()
    upstream.set_faults(error_rate=0.5, seed=7)  # setting faults reseeds
    assert await pattern() == first
    assert 0 < first.count(500) < 30


async def test_fail_nth(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    upstream.set_faults(fail_nth={2, 4}, error_status=503)
    outcomes: list[str] = []
    for _ in range(4):
        try:
            await client.chat.completions.create(model="fake", messages=MESSAGES)
            outcomes.append("ok")
        except openai.InternalServerError as exc:
            outcomes.append(str(exc.status_code))
    assert outcomes == ["ok", "503", "ok", "503"]
    assert upstream.stats()["errors"] == 2


async def test_bad_answer(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    upstream.set_faults(bad_answer="definitely wrong")
    completion = await client.chat.completions.create(model="fake", messages=MESSAGES)
    assert completion.choices[0].message.content == "definitely wrong"
    assert "".join(await collect_chat_stream(client)) == "definitely wrong"
    response = await litellm.acompletion(**litellm_kwargs(upstream))
    assert response.choices[0].message.content == "definitely wrong"
    upstream.clear_faults()
    completion = await client.chat.completions.create(model="fake", messages=MESSAGES)
    assert completion.choices[0].message.content == ANSWER


async def test_latency_and_first_token_delay_ordering(
    upstream: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    upstream.set_faults(latency_s=0.2)
    t0 = time.perf_counter()
    await client.chat.completions.create(model="fake", messages=MESSAGES)
    assert time.perf_counter() - t0 >= 0.18

    upstream.set_faults(first_token_delay_s=0.3)
    t0 = time.perf_counter()
    stream = await client.chat.completions.create(model="fake", messages=MESSAGES, stream=True)
    headers_at = time.perf_counter() - t0
    arrivals: list[float] = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter() - t0)
    first_token_at = arrivals[0]
    assert headers_at < first_token_at  # headers come before the delay, the first token after it
    assert first_token_at >= 0.28
    assert arrivals[-1] - arrivals[0] < first_token_at  # no chunk_delay: the rest follow quickly


async def test_chunk_delay_spreads_chunks(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    upstream.set_faults(chunk_delay_s=0.05)
    t0 = time.perf_counter()
    pieces = await collect_chat_stream(client)
    assert "".join(pieces) == ANSWER
    assert time.perf_counter() - t0 >= 0.05 * 5  # at least the gaps between the content chunks


@pytest.mark.parametrize("after", [0, 2])
async def test_mid_stream_disconnect_surfaces_as_exception(
    upstream: FakeUpstream, client: openai.AsyncOpenAI, after: int
) -> None:
    upstream.set_faults(fail_mid_stream_after=after)
    received: list[str] = []
    stream = await client.chat.completions.create(model="fake", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert received == ["the ", "quick "][:after]

    with pytest.raises(openai.OpenAIError):  # litellm's exceptions derive from openai's
        async for _ in await litellm.acompletion(**litellm_kwargs(upstream, stream=True)):
            pass
    stats = upstream.stats()
    assert stats["streams_failed"] == 2 and stats["streams_completed"] == 0
    assert stats["errors"] == 2 and stats["in_flight"] == 0


async def test_mid_stream_error_event(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    upstream.set_faults(fail_mid_stream_after=1, mid_stream_mode="error_event", error_status=503)
    with pytest.raises(openai.APIError, match="mid-stream failure after 1 chunk"):
        await collect_chat_stream(client)
    assert upstream.stats()["streams_failed"] == 1


async def test_held_stream_is_in_flight_until_released(
    upstream: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    upstream.set_faults(hold_stream=True)
    received: list[str] = []
    first_piece = asyncio.Event()

    async def consume() -> str:
        stream = await client.chat.completions.create(model="fake", messages=MESSAGES, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
                first_piece.set()
        return "".join(received)

    task = asyncio.create_task(consume())
    assert await upstream.wait_for_in_flight(1, 5.0)
    assert await upstream.async_wait_until(lambda s: s["streams_held"] == 1, 5.0)
    await asyncio.wait_for(first_piece.wait(), 5.0)
    assert received == ["the "]  # held after the first content chunk
    assert not task.done()
    assert upstream.stats()["streams_completed"] == 0

    upstream.release_streams()
    assert await asyncio.wait_for(task, 5.0) == ANSWER
    stats = upstream.stats()
    assert stats["streams_completed"] == 1 and stats["streams_held"] == 0 and stats["in_flight"] == 0


async def test_control_endpoints(upstream: FakeUpstream, http: httpx.AsyncClient) -> None:
    reply = await http.post("/_control/faults", json={"error_rate": 1, "error_status": 503, "fail_nth": [9]})
    assert reply.status_code == 200
    assert reply.json()["error_status"] == 503
    assert upstream.faults == Faults(error_rate=1.0, error_status=503, fail_nth=frozenset({9}))
    assert (await http.get("/v1/models")).status_code == 503

    merged = await http.post("/_control/faults?merge=true", json={"bad_answer": "nope"})
    assert merged.json()["error_status"] == 503 and merged.json()["bad_answer"] == "nope"
    bad = await http.post("/_control/faults", json={"no_such_fault": 1})
    assert bad.status_code == 400 and "no_such_fault" in bad.json()["error"]["message"]
    bad = await http.post("/_control/faults", json={"error_rate": 3})
    assert bad.status_code == 400

    stats = (await http.get("/_control/stats")).json()
    assert stats["name"] == "primary"
    assert stats["requests"] == 1 and stats["errors"] == 1
    assert stats["endpoints"]["models"] == 1
    assert stats["faults"]["bad_answer"] == "nope"

    await http.post("/_control/faults", json={})  # replace with no faults
    assert upstream.faults == Faults()
    assert (await http.get("/v1/models")).status_code == 200
    reset = (await http.post("/_control/reset")).json()
    assert reset["requests"] == 0


def test_faults_validation_and_update_semantics() -> None:
    with pytest.raises(ValueError):
        Faults(error_rate=1.5)
    with pytest.raises(ValueError):
        Faults(error_status=200)
    with pytest.raises(ValueError):
        Faults(fail_nth={0})
    up = FakeUpstream("f")
    try:
        up.set_faults(latency_s=0.1)
        up.update_faults(error_rate=0.5)
        assert up.faults == Faults(latency_s=0.1, error_rate=0.5)
        up.set_faults(error_rate=0.5)  # set replaces
        assert up.faults == Faults(error_rate=0.5)
        up.faults = Faults(hang=True)
        assert up.faults.hang
    finally:
        up.stop()


# -------------------------------------------------------------------------------------- hang & stop


async def test_hang_times_out_client_and_stop_returns_promptly(upstream: FakeUpstream) -> None:
    upstream.set_faults(hang=True)
    async with openai_client(upstream, timeout=0.2) as c:
        with pytest.raises(openai.APITimeoutError):
            await c.chat.completions.create(model="fake", messages=MESSAGES)
    # the server notices the client went away
    assert await upstream.async_wait_until(lambda s: s["in_flight"] == 0 and s["hanging"] == 0, 5.0)

    async with openai_client(upstream, timeout=30) as c:
        pending = asyncio.create_task(c.chat.completions.create(model="fake", messages=MESSAGES))
        assert await upstream.async_wait_until(lambda s: s["hanging"] == 1, 5.0)
        t0 = time.perf_counter()
        await asyncio.to_thread(upstream.stop)
        assert time.perf_counter() - t0 < 3.0
        assert not upstream.running
        with pytest.raises(openai.APIError):
            await pending


def test_stop_with_hanging_request_from_sync_code() -> None:
    up = FakeUpstream("sync-hang").start()
    up.set_faults(hang=True)
    outcome: list[BaseException | int] = []

    def call() -> None:
        try:
            outcome.append(httpx.get(f"{up.base_url}/models", timeout=30, verify=TLS).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    try:
        assert up.wait_until(lambda s: s["hanging"] == 1, 5.0)
        stats: UpstreamStats = up.stats()
        assert stats["in_flight"] == 1
        t0 = time.perf_counter()
        up.stop()
        assert time.perf_counter() - t0 < 3.0
    finally:
        up.stop()
        caller.join(5.0)
    assert not caller.is_alive()
    assert outcome and outcome[0] != 200


async def test_stop_cuts_held_stream(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    upstream.set_faults(hold_stream=True, hold_after_chunks=0)
    task = asyncio.create_task(collect_chat_stream(client))
    assert await upstream.async_wait_until(lambda s: s["streams_held"] == 1, 5.0)
    t0 = time.perf_counter()
    await asyncio.to_thread(upstream.stop)
    assert time.perf_counter() - t0 < 3.0
    with pytest.raises(openai.APIConnectionError):
        await asyncio.wait_for(task, 5.0)
    assert upstream.stats()["streams_cancelled"] == 1

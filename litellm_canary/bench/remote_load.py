"""``bench switch --url``'s load: clients sending streaming and non-streaming chat completions
through every gateway with the official ``openai`` client, each request recorded with the side that
served it (the ``x-litellm-model-id`` response header, classified with the group's deployment ids).

Client ``n`` streams unless ``n % 4 == 3`` (a quarter of the clients send non-streaming requests)
and sends its ``i``-th request to gateway ``(n + i) % len(targets)``, so every gateway sees both
kinds all the time. A request's ``answered`` time is when its response headers arrived (the served
deployment is known from then on); a stream ends ``completed`` (a finish reason came), ``failed``
(an error event or status), or ``cut`` (it stopped without a finish reason, or the connection broke).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

from litellm_canary.bench.remote_admin import GroupState, Target

__all__ = ["MODEL_ID_HEADER", "Load", "RequestRecord", "send_one"]

MODEL_ID_HEADER = "x-litellm-model-id"
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "litellm-canary bench switch"}]


@dataclass
class RequestRecord:
    target: int
    stream: bool
    start: float
    answered: float | None = None
    end: float | None = None
    side: str | None = None  # stable, canary, unknown; None: no answer
    outcome: str | None = None  # completed, failed, cut, error (no answer); None: still running


@dataclass
class Load:
    """The clients and every request they made (in the order they started); ``changed`` is set
    whenever a request's side is known or one ends, for the flip controller to re-check."""

    targets: list[Target]
    states: list[GroupState]
    model: str
    api_key: str
    clients: int
    records: list[RequestRecord] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def openai_clients(self) -> list[openai.AsyncOpenAI]:
        return [
            openai.AsyncOpenAI(base_url=t.chat_base, api_key=self.api_key, max_retries=0, timeout=60)
            for t in self.targets
        ]

    async def run(self) -> None:
        """Run the clients until ``stop`` is set."""
        sdks = self.openai_clients()
        try:
            await asyncio.gather(*(self._client(n, sdks) for n in range(self.clients)))
        finally:
            for sdk in sdks:
                await sdk.close()

    async def _client(self, number: int, sdks: list[openai.AsyncOpenAI]) -> None:
        iteration = 0
        while not self.stop.is_set():
            index = (number + iteration) % len(self.targets)
            record = RequestRecord(index, stream=number % 4 != 3, start=time.perf_counter())
            self.records.append(record)
            await send_one(
                sdks[index],
                self.model,
                record,
                self.states[index].side_of,
                self.changed.set,
                user=f"bench-{number}-{iteration}",
            )
            iteration += 1
            await asyncio.sleep(0)


async def send_one(
    sdk: openai.AsyncOpenAI,
    model: str,
    record: RequestRecord,
    side_of: Callable[[str | None], str],
    notify: Callable[[], None],
    *,
    user: str,
) -> dict[str, Any]:
    """Send one request into ``record`` (calling ``notify`` when its side is known and at its end);
    returns what the preflight check reports: the header and the error, if any."""
    seen: dict[str, Any] = {"model_id": None, "error": None}
    try:
        raw = await sdk.chat.completions.with_raw_response.create(
            model=model, messages=MESSAGES, stream=record.stream, user=user
        )
        record.answered = time.perf_counter()
        seen["model_id"] = raw.headers.get(MODEL_ID_HEADER)
        record.side = side_of(seen["model_id"])
        notify()
        parsed = raw.parse()
        if isinstance(parsed, openai.AsyncStream):
            finished = False
            async for chunk in parsed:
                finished |= any(choice.finish_reason for choice in chunk.choices)
            record.outcome = "completed" if finished else "cut"
        else:
            record.outcome = "completed"
    except openai.APIStatusError as error:
        seen["error"] = error
        record.outcome = "failed" if record.answered is not None else "error"
    except (openai.APIConnectionError, httpx.HTTPError, OSError) as error:
        seen["error"] = error
        record.outcome = "cut" if record.answered is not None else "error"
    except openai.APIError as error:  # an error event in the stream
        seen["error"] = error
        record.outcome = "failed" if record.answered is not None else "error"
    finally:
        record.end = time.perf_counter()
        if record.outcome is None:  # cancelled at the end of the run
            record.outcome = "cut" if record.answered is not None else "error"
        notify()
    return seen

"""End-to-end: the canary in a real ``litellm --config`` proxy with ``--num_workers 2``.

Both workers attach (each answers ``/canary/status`` with its own pid and serves the canary), and a
rollback sent to the proxy (it lands on one worker, which writes the shared flag file) reaches the
other worker: new requests served by both workers go to stable, read from LiteLLM's
``x-litellm-model-id`` header. Requests use a new connection each (``Connection: close``) so both
workers get some. No timing is asserted (the propagation figure is measured by ``bench proxy``);
the bounds are generous deadlines.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagdFileStore
from litellm_canary.testing.fake_upstream import FakeUpstream
from litellm_canary.testing.gateway_process import wait_until
from litellm_canary.testing.litellm_proxy import LiteLLMProxy

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

WORKERS = 2
DEADLINE_S = 60.0  # generous: a loaded 2-core machine
CLOSE = {"Connection": "close"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiteLLMProxy, FlagdFileStore]]:
    directory = tmp_path_factory.mktemp("workers")
    flags = FlagdFileStore(directory / "flags.json")
    flags.set_side("chat", Side.CANARY)
    with FakeUpstream("stable").start() as stable, FakeUpstream("canary").start() as canary:
        config = {
            "model_list": [
                stable.deployment("chat", "chat-stable"),
                canary.deployment("chat", "chat-canary"),
            ],
            "litellm_settings": {"callbacks": ["litellm_canary.proxy.canary"]},
            "litellm_canary": {
                "flag_store": {"kind": "flagd_file", "path": str(flags.path), "poll_ms": 50},
                "rollouts": [
                    {
                        "model_group": "chat",
                        "stable": ["chat-stable"],
                        "canary": ["chat-canary"],
                        "flag_key": "chat",
                    }
                ],
            },
        }
        with LiteLLMProxy(directory, config, "workers", num_workers=WORKERS) as proxy:
            proxy.start().wait_ready()
            yield proxy, flags


def served(proxy: LiteLLMProxy) -> str | None:
    """One streamed chat completion on a new connection; the deployment that served it."""
    api = openai.OpenAI(
        base_url=f"{proxy.url}/v1", api_key=proxy.master_key, max_retries=0, default_headers=CLOSE
    )
    raw = api.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True, user=uuid.uuid4().hex
    )
    assert [chunk for chunk in raw.parse()]  # consumed to the end
    return raw.headers.get("x-litellm-model-id")


def attempts_per_worker(proxy: LiteLLMProxy) -> dict[int, dict[str, Any]]:
    """``status()["groups"]["chat"]["attempts"]`` of every worker, by pid (new connection per call;
    a worker still starting answers later)."""
    seen: dict[int, dict[str, Any]] = {}

    def every_worker_answered() -> bool:
        answer = proxy.admin("GET", "/canary/status", headers=CLOSE)
        assert answer.status_code == 200, answer.text
        status = answer.json()
        seen[status["pid"]] = status["groups"]["chat"]["attempts"]
        return len(seen) == WORKERS

    wait_until(every_worker_answered, DEADLINE_S, interval=0, what=f"{WORKERS} workers to answer")
    return seen


def test_both_workers_attach_and_follow_a_rollback_sent_to_the_proxy(
    setup: tuple[LiteLLMProxy, FlagdFileStore],
) -> None:
    proxy, flags = setup
    assert proxy.pid not in attempts_per_worker(proxy)  # the workers answer, not the supervisor

    def both_served_the_canary() -> bool:
        assert served(proxy) in ("chat-stable", "chat-canary")
        return all(attempts.get("canary:success", 0) >= 1 for attempts in attempts_per_worker(proxy).values())

    wait_until(both_served_the_canary, DEADLINE_S, interval=0, what="both workers to serve the canary")

    rolled = proxy.admin(
        "POST", "/canary/rollback", json={"model_group": "chat", "reason": "test"}, headers=CLOSE
    )
    assert rolled.status_code == 200, rolled.text
    assert flags.read()["flags"]["chat"]["defaultVariant"] == Side.STABLE.value  # what the other worker reads

    streak = [0]

    def twenty_stable_in_a_row() -> bool:
        streak[0] = streak[0] + 1 if served(proxy) == "chat-stable" else 0
        return streak[0] >= 20

    wait_until(twenty_stable_in_a_row, DEADLINE_S, interval=0, what="new requests to go to stable")
    before = attempts_per_worker(proxy)

    def both_served_stable_since() -> bool:
        assert served(proxy) == "chat-stable"  # every new request, whichever worker serves it
        now = attempts_per_worker(proxy)
        return all(now[pid].get("stable:success", 0) > before[pid].get("stable:success", 0) for pid in before)

    wait_until(both_served_stable_since, DEADLINE_S, interval=0, what="both workers to serve stable")

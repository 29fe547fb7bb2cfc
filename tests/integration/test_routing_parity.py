"""Routing parity with plain LiteLLM (issue 11), on real ``litellm.Router`` instances.

Unmanaged groups: every case runs twice, on a plain Router and on the same Router with a canary
attached to *another* group (flag serving the canary, so the canary machinery is live), and the
results are compared request by request (which deployment served, or which error). Each case also
asserts LiteLLM's documented behaviour, so a case cannot pass by both variants being equally wrong.

Managed groups: the canary only chooses the side; LiteLLM's strategy, limits, order, tags and
pre-call checks choose the deployment within it, and a canary side that cannot serve an attempt
sends it to stable.

LiteLLM 1.110 keeps usage, latency and cooldown state per deployment id across Routers in one
process, so every Router here gets fresh ids (``run`` prefix). Upstreams are ``mock_response`` or
``litellm_canary.fake_upstream`` (latency).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from litellm import Router

import litellm_canary
from litellm_canary.testing.fake_upstream import FakeUpstream

MESSAGES = [{"role": "user", "content": "hi"}]
LONG = [{"role": "user", "content": " ".join(["word"] * 200)}]
_runs = itertools.count()

Spec = Callable[[str], list[dict[str, Any]]]


def dep(run: str, group: str, name: str, answer: object = None, **params: Any) -> dict[str, Any]:
    """A mocked deployment whose id is unique to ``run`` and whose answer is its ``name``."""
    litellm_params: dict[str, Any] = {
        "model": "openai/fake-model",
        "api_key": "sk-test",
        "mock_response": name if answer is None else answer,
        **params,
    }
    return {"model_name": group, "litellm_params": litellm_params, "model_info": {"id": f"{run}-{name}"}}


def failing(run: str, group: str, name: str, **params: Any) -> dict[str, Any]:
    return dep(run, group, name, Exception(f"{name} is down"), **params)


def build(
    spec: Spec, *, with_canary: bool, **router_kwargs: Any
) -> tuple[Router, litellm_canary.Canary | None]:
    """A fresh Router from ``spec``; with a canary attached to the extra group ``managed``."""
    run = f"p{next(_runs)}"
    model_list = spec(run)
    if with_canary:
        model_list += [dep(run, "managed", "m-stable"), dep(run, "managed", "m-canary")]
    router = Router(model_list=model_list, **router_kwargs)
    if not with_canary:
        return router, None
    canary = litellm_canary.attach(
        router,
        {
            "rollouts": [
                {
                    "model_group": "managed",
                    "stable": [f"{run}-m-stable"],
                    "canary": [f"{run}-m-canary"],
                    "flag_key": "managed",
                }
            ],
            "flag_store": {"kind": "memory"},
        },
    )
    canary.set_side("managed", "canary")
    return router, canary


async def served(router: Router, n: int, model: str = "g", **kwargs: Any) -> list[str]:
    """What answered each of ``n`` sequential requests: the deployment's name or the error class."""
    results = []
    messages = kwargs.pop("messages", MESSAGES)
    for _ in range(n):
        try:
            response = await router.acompletion(model=model, messages=messages, **kwargs)
            results.append(str(response.choices[0].message.content))
        except Exception as error:
            results.append(type(error).__name__)
    return results


def served_sync(router: Router, n: int, model: str = "g", **kwargs: Any) -> list[str]:
    results = []
    for _ in range(n):
        try:
            response = router.completion(model=model, messages=MESSAGES, **kwargs)
            results.append(str(response.choices[0].message.content))
        except Exception as error:
            results.append(type(error).__name__)
    return results


Scenario = Callable[[Router], Awaitable[Any]]


async def side_by_side(spec: Spec, scenario: Scenario, **router_kwargs: Any) -> tuple[Any, Any]:
    """``scenario`` on a plain Router and on one with a canary on another group.

    Each Router is retired afterwards: LiteLLM registers a strategy's selector (latency, least-busy,
    usage) as a process-global callback de-duplicated by class, so a live earlier Router would keep
    the next one's selector from recording anything."""
    plain_router, _ = build(spec, with_canary=False, **router_kwargs)
    try:
        plain = await scenario(plain_router)
    finally:
        plain_router.retire()
    router, canary = build(spec, with_canary=True, **router_kwargs)
    assert canary is not None
    try:
        attached = await scenario(router)
        assert canary.status()["decision_errors"] == 0
        assert canary.status()["unsteered"] == {}
        # The canary's group still serves through it while the other groups are compared.
        assert await served(router, 1, model="managed") == ["m-canary"]
    finally:
        canary.detach()
        router.retire()
    return plain, attached


# -- unmanaged groups: identical results -----------------------------------------------------------


async def test_order_failover_default_strategy() -> None:
    def spec(run: str) -> list[dict[str, Any]]:
        return [failing(run, "g", "first", order=1), dep(run, "g", "second", order=2)]

    plain, attached = await side_by_side(spec, lambda r: served(r, 20), num_retries=0)
    assert plain == ["second"] * 20
    assert attached == plain


async def test_weighted_failover() -> None:
    def spec(run: str) -> list[dict[str, Any]]:
        return [failing(run, "g", "bad", weight=1), dep(run, "g", "good", weight=0)]

    plain, attached = await side_by_side(
        spec, lambda r: served(r, 20), num_retries=0, enable_weighted_failover=True
    )
    assert plain == ["good"] * 20
    assert attached == plain


async def test_pre_call_checks_context_window() -> None:
    def spec(run: str) -> list[dict[str, Any]]:
        small = dep(run, "g", "small", model="gpt-3.5-turbo")
        small["model_info"]["max_input_tokens"] = 20
        big = dep(run, "g", "big", model="gpt-3.5-turbo")
        big["model_info"]["max_input_tokens"] = 100_000
        return [small, big]

    plain, attached = await side_by_side(
        spec, lambda r: served(r, 20, messages=LONG), enable_pre_call_checks=True
    )
    assert plain == ["big"] * 20
    assert attached == plain


async def test_tag_filtering() -> None:
    def spec(run: str) -> list[dict[str, Any]]:
        return [dep(run, "g", "free", tags=["free"]), dep(run, "g", "paid", tags=["paid"])]

    plain, attached = await side_by_side(
        spec, lambda r: served(r, 20, metadata={"tags": ["paid"]}), enable_tag_filtering=True
    )
    assert plain == ["paid"] * 20
    assert attached == plain


async def test_alias_async_and_sync_pick() -> None:
    def spec(run: str) -> list[dict[str, Any]]:
        return [dep(run, "target", "t1")]

    async def scenario(router: Router) -> tuple[list[str], str]:
        picked = await asyncio.to_thread(router.get_available_deployment, "alias")
        return await served(router, 3, model="alias"), str(picked["model_name"])

    plain, attached = await side_by_side(spec, scenario, model_group_alias={"alias": "target"})
    assert plain == (["t1"] * 3, "target")
    assert attached == plain


async def test_retries() -> None:
    servers: list[FakeUpstream] = []

    def spec(run: str) -> list[dict[str, Any]]:
        server = FakeUpstream(run, answer="ok").start()
        server.set_faults(fail_nth={1, 2, 4}, error_status=503)  # the 1st request needs 2 retries
        servers.append(server)
        return [server.deployment("g", f"{run}-only")]

    try:
        plain, attached = await side_by_side(spec, lambda r: served(r, 4), num_retries=1, retry_after=0)
    finally:
        for server in servers:
            server.stop()
    # request 1: attempts 1, 2 fail (1 retry) -> error; request 2: attempt 3 ok;
    # request 3: attempt 4 fails, retry 5 ok; request 4: ok
    assert plain == ["ServiceUnavailableError", "ok", "ok", "ok"]
    assert attached == plain


async def test_cooldown_takes_a_failing_deployment_out() -> None:
    def spec(run: str) -> list[dict[str, Any]]:
        return [failing(run, "g", "bad"), dep(run, "g", "good")]

    async def scenario(router: Router) -> tuple[int, list[str]]:
        first = await served(router, 10)
        return first.count("good") + first.count("InternalServerError"), await served(router, 10)

    plain, attached = await side_by_side(spec, scenario, num_retries=0, allowed_fails=0, cooldown_time=60)
    assert plain == (10, ["good"] * 10)
    assert attached == plain


async def test_fallbacks_to_another_group() -> None:
    def spec(run: str) -> list[dict[str, Any]]:
        return [failing(run, "g", "down"), dep(run, "backup", "backup")]

    plain, attached = await side_by_side(
        spec, lambda r: served(r, 10), num_retries=0, fallbacks=[{"g": ["backup"]}]
    )
    assert plain == ["backup"] * 10
    assert attached == plain


async def test_usage_based_v2_rpm_limits_then_no_deployments() -> None:
    def spec(run: str) -> list[dict[str, Any]]:
        return [dep(run, "g", "a", rpm=5), dep(run, "g", "b", rpm=2), dep(run, "g", "c", rpm=1)]

    async def scenario(router: Router) -> Counter[str]:
        return Counter(await served(router, 12))

    plain, attached = await side_by_side(
        spec, scenario, routing_strategy="usage-based-routing-v2", num_retries=0
    )
    # Each deployment within its rpm, then LiteLLM's "no deployments". Exact counts are not compared:
    # a lone Router counts a call in its pre-call check and again in its success callback, which
    # LiteLLM logs in the background, so how many fit under the limit varies by a call or two
    # between any two runs, with or without the canary.
    for result in (plain, attached):
        assert all(0 < result[name] <= rpm for name, rpm in {"a": 5, "b": 2, "c": 1}.items()), result
        assert result["RateLimitError"] + result["RouterRateLimitError"] >= 4, result
        assert set(result) <= {"a", "b", "c", "RateLimitError", "RouterRateLimitError"}, result


async def test_cost_based_routing() -> None:
    def spec(run: str) -> list[dict[str, Any]]:
        return [
            dep(run, "g", "cheap", input_cost_per_token=0.000001, output_cost_per_token=0.000001),
            dep(run, "g", "dear", input_cost_per_token=0.001, output_cost_per_token=0.001),
        ]

    plain, attached = await side_by_side(spec, lambda r: served(r, 20), routing_strategy="cost-based-routing")
    assert plain == ["cheap"] * 20
    assert attached == plain


@pytest.fixture(scope="module")
def latency_upstreams() -> Iterator[dict[str, FakeUpstream]]:
    servers = {
        "fast": FakeUpstream("fast", answer="fast").start(),
        "slow": FakeUpstream("slow", answer="slow").start(),
    }
    servers["slow"].set_faults(latency_s=0.15)
    yield servers
    for server in servers.values():
        server.stop()


async def test_latency_based_routing(latency_upstreams: dict[str, FakeUpstream]) -> None:
    def spec(run: str) -> list[dict[str, Any]]:
        return [server.deployment("g", f"{run}-{name}") for name, server in latency_upstreams.items()]

    async def scenario(router: Router) -> Counter[str]:
        return Counter(answer.split()[0] for answer in await served(router, 30))

    plain, attached = await side_by_side(spec, scenario, routing_strategy="latency-based-routing")
    # After one call to each, LiteLLM keeps to the fast deployment (ties at the start are random).
    assert plain["fast"] >= 24 and attached["fast"] >= 24


async def test_least_busy_prefers_the_idle_deployment(latency_upstreams: dict[str, FakeUpstream]) -> None:
    def spec(run: str) -> list[dict[str, Any]]:
        return [server.deployment("g", f"{run}-{name}") for name, server in latency_upstreams.items()]

    async def scenario(router: Router) -> Counter[str]:
        async def one() -> str:
            response = await router.acompletion(model="g", messages=MESSAGES)
            return str(response.choices[0].message.content).split()[0]

        answers: Counter[str] = Counter()
        for _ in range(5):
            answers.update(await asyncio.gather(*(one() for _ in range(8))))
        return answers

    plain, attached = await side_by_side(spec, scenario, routing_strategy="least-busy")
    # The slow deployment stays busy, so least-busy sends most concurrent calls to the fast one.
    assert plain["fast"] > plain["slow"] and attached["fast"] > attached["slow"]


def test_sync_completion_order_failover_and_fallbacks() -> None:
    def spec(run: str) -> list[dict[str, Any]]:
        return [
            failing(run, "g", "first", order=1),
            dep(run, "g", "second", order=2),
            failing(run, "down", "down"),
            dep(run, "backup", "backup"),
        ]

    results = []
    for with_canary in (False, True):
        router, _ = build(spec, with_canary=with_canary, num_retries=0, fallbacks=[{"down": ["backup"]}])
        results.append((served_sync(router, 10), served_sync(router, 5, model="down")))
    assert results[0] == (["second"] * 10, ["backup"] * 5)
    assert results[1] == results[0]


# -- managed groups: LiteLLM chooses within the side -------------------------------------------------


def managed(
    run: str, stable: list[tuple[str, dict[str, Any]]], canary: list[tuple[str, dict[str, Any]]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    model_list = [
        failing(run, "chat", name, **params)
        if params.pop("fails", False)
        else dep(run, "chat", name, **params)
        for name, params in (*stable, *canary)
    ]
    rollout = {
        "model_group": "chat",
        "stable": [f"{run}-{name}" for name, _ in stable],
        "canary": [f"{run}-{name}" for name, _ in canary],
        "flag_key": "chat",
    }
    return model_list, rollout


def attach_managed(
    stable: list[tuple[str, dict[str, Any]]],
    canary: list[tuple[str, dict[str, Any]]],
    side: str,
    **kwargs: Any,
) -> tuple[Router, litellm_canary.Canary]:
    model_list, rollout = managed(f"m{next(_runs)}", stable, canary)
    router = Router(model_list=model_list, **kwargs)
    attached = litellm_canary.attach(router, {"rollouts": [rollout], "flag_store": {"kind": "memory"}})
    attached.set_side("chat", side)
    return router, attached


async def test_order_within_the_stable_side() -> None:
    router, _ = attach_managed([("s1", {"order": 1}), ("s2", {"order": 2})], [("c1", {})], "stable")
    assert await served(router, 30, model="chat") == ["s1"] * 30


async def test_order_failover_within_the_stable_side_never_reaches_the_canary() -> None:
    router, _ = attach_managed(
        [("s1", {"order": 1, "fails": True}), ("s2", {"order": 2})], [("c1", {})], "stable", num_retries=0
    )
    assert await served(router, 20, model="chat") == ["s2"] * 20


async def test_weighted_failover_within_the_canary_side() -> None:
    router, _ = attach_managed(
        [("s1", {})],
        [("c-bad", {"weight": 1, "fails": True}), ("c-good", {"weight": 0})],
        "canary",
        num_retries=0,
        enable_weighted_failover=True,
    )
    assert await served(router, 20, model="chat") == ["c-good"] * 20


async def test_tag_filtering_within_the_stable_side() -> None:
    router, _ = attach_managed(
        [("s-free", {"tags": ["free"]}), ("s-paid", {"tags": ["paid"]})],
        [("c-paid", {"tags": ["paid"]})],
        "stable",
        enable_tag_filtering=True,
    )
    assert await served(router, 20, model="chat", metadata={"tags": ["paid"]}) == ["s-paid"] * 20


async def test_a_canary_side_outside_the_requested_tags_is_not_serving() -> None:
    router, canary = attach_managed(
        [("s-paid", {"tags": ["paid"]})],
        [("c-free", {"tags": ["free"]})],
        "canary",
        enable_tag_filtering=True,
    )
    assert await served(router, 5, model="chat", metadata={"tags": ["paid"]}) == ["s-paid"] * 5
    assert canary.status()["canary_not_serving"] == {"chat": 5}


async def test_a_canary_side_whose_context_window_is_too_small_is_not_serving() -> None:
    router, canary = _context_window_router()
    assert await served(router, 5, model="chat", messages=LONG) == ["s-big"] * 5
    assert await served(router, 5, model="chat") == ["c-small"] * 5
    assert canary.status()["canary_not_serving"] == {"chat": 5}


def _context_window_router() -> tuple[Router, litellm_canary.Canary]:
    run = f"m{next(_runs)}"
    big = dep(run, "chat", "s-big", model="gpt-3.5-turbo")
    big["model_info"]["max_input_tokens"] = 100_000
    small = dep(run, "chat", "c-small", model="gpt-3.5-turbo")
    small["model_info"]["max_input_tokens"] = 20
    router = Router(model_list=[big, small], enable_pre_call_checks=True)
    rollout = {
        "model_group": "chat",
        "stable": [f"{run}-s-big"],
        "canary": [f"{run}-c-small"],
        "flag_key": "chat",
    }
    canary = litellm_canary.attach(router, {"rollouts": [rollout], "flag_store": {"kind": "memory"}})
    canary.set_side("chat", "canary")
    return router, canary


async def test_usage_based_v2_exhausted_canary_side_goes_to_stable() -> None:
    router, canary = attach_managed(
        [("s1", {"rpm": 100})],
        [("c1", {"rpm": 2})],
        "canary",
        routing_strategy="usage-based-routing-v2",
        num_retries=1,
        retry_after=0,
    )
    answers = await served(router, 6, model="chat")
    # The canary serves up to its limit; after that every request goes to stable, none fails.
    assert answers[0] == "c1" and answers.count("c1") <= 2
    assert answers[answers.count("c1") :] == ["s1"] * (6 - answers.count("c1"))
    assert canary.status()["canary_not_serving"]["chat"] >= 6 - answers.count("c1")


async def test_usage_based_v2_exhausted_stable_side_is_no_deployments_as_in_litellm() -> None:
    router, _ = attach_managed(
        [("s1", {"rpm": 2})],
        [("c1", {"rpm": 100})],
        "stable",
        routing_strategy="usage-based-routing-v2",
        num_retries=0,
    )
    answers = await served(router, 4, model="chat")
    # LiteLLM's own answer once the side's limit is spent (its class depends on whether the pick or
    # the cooldown check notices first, as in a plain Router).
    assert answers[0] == "s1" and answers.count("s1") <= 2  # never the canary
    assert set(answers[answers.count("s1") :]) <= {"RateLimitError", "RouterRateLimitError"}


async def test_a_rollback_wins_over_tags_and_order() -> None:
    router, canary = attach_managed(
        [("s1", {"order": 2, "tags": ["free"]})],
        [("c1", {"order": 1, "tags": ["paid"]})],
        "canary",
        enable_tag_filtering=True,
    )
    assert await served(router, 3, model="chat", metadata={"tags": ["paid"]}) == ["c1"] * 3
    canary.rollback("chat", reason="test")
    # The request asks for a tag only the canary has: stable serves it, its tags dropped and counted.
    assert await served(router, 5, model="chat", metadata={"tags": ["paid"]}) == ["s1"] * 5
    assert canary.status()["tags_ignored"] == {"chat": 5}
    assert await served(router, 5, model="chat") == ["s1"] * 5


# -- distributions within a side ---------------------------------------------------------------------


async def test_simple_shuffle_weights_within_the_stable_side() -> None:
    router, _ = attach_managed(
        [("s-heavy", {"weight": 3}), ("s-light", {"weight": 1})], [("c1", {})], "stable"
    )
    answers = Counter(await served(router, 400, model="chat"))
    assert set(answers) == {"s-heavy", "s-light"}
    assert 0.65 <= answers["s-heavy"] / 400 <= 0.85  # weight 3:1 -> 75 %


async def test_latency_based_within_the_canary_side(latency_upstreams: dict[str, FakeUpstream]) -> None:
    run = f"m{next(_runs)}"
    model_list = [dep(run, "chat", "s1")] + [
        server.deployment("chat", f"{run}-{name}") for name, server in latency_upstreams.items()
    ]
    router = Router(model_list=model_list, routing_strategy="latency-based-routing")
    rollout = {
        "model_group": "chat",
        "stable": [f"{run}-s1"],
        "canary": [f"{run}-fast", f"{run}-slow"],
        "flag_key": "chat",
    }
    canary = litellm_canary.attach(router, {"rollouts": [rollout], "flag_store": {"kind": "memory"}})
    canary.set_side("chat", "canary")
    answers = Counter(answer.split()[0] for answer in await served(router, 30, model="chat"))
    assert answers["fast"] >= 24 and answers["s1"] == 0


async def test_cost_based_within_the_stable_side() -> None:
    router, _ = attach_managed(
        [
            ("s-cheap", {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000001}),
            ("s-dear", {"input_cost_per_token": 0.001, "output_cost_per_token": 0.001}),
        ],
        [("c1", {"input_cost_per_token": 0.0000001, "output_cost_per_token": 0.0000001})],
        "stable",
        routing_strategy="cost-based-routing",
    )
    assert await served(router, 20, model="chat") == ["s-cheap"] * 20


async def test_max_parallel_requests(latency_upstreams: dict[str, FakeUpstream]) -> None:
    def spec(run: str) -> list[dict[str, Any]]:
        return [latency_upstreams["slow"].deployment("g", f"{run}-slow", max_parallel_requests=1)]

    async def scenario(router: Router) -> list[str]:
        async def one() -> str:
            try:
                response = await router.acompletion(model="g", messages=MESSAGES)
                return str(response.choices[0].message.content).split()[0]
            except Exception as error:
                return type(error).__name__

        return sorted(await asyncio.gather(*(one() for _ in range(4))))

    plain, attached = await side_by_side(spec, scenario, num_retries=0)
    assert attached == plain
    assert plain.count("slow") >= 1 and "RateLimitError" in plain  # the limit bites, alike in both


async def test_another_routers_group_of_the_same_name_is_not_touched() -> None:
    # The deployment filter is process-global: it must leave other Routers' requests alone.
    router, canary = attach_managed([("s1", {})], [("c1", {})], "canary")
    other = Router(model_list=[dep(f"o{next(_runs)}", "chat", name) for name in ("x", "y")])
    assert await served(router, 3, model="chat") == ["c1"] * 3
    answers = Counter(await served(other, 60, model="chat"))
    assert set(answers) == {"x", "y"}
    assert sum(canary.status()["groups"]["chat"]["attempts"].values()) <= 3  # none of the other Router's

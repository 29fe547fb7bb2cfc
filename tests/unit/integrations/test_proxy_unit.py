"""litellm_canary.proxy without a proxy process: override neutralisation, config lookup, forced sides."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from litellm.router import Router

from litellm_canary import attach
from litellm_canary.core.config import ConfigError, load_config_file
from litellm_canary.core.decision import Decision, Pin, PinKind, Reason, Side, decide
from litellm_canary.core.request_stamps import FORCED_SIDE_KEY, STAMP_KEY
from litellm_canary.integrations.proxy import CONFIG_ENV, ProxyCanary, SideOverrideRefused, neutralise
from tests.support import REPO
from tests.support.helpers import chat_rollout, deployment

EXAMPLE = REPO / "examples" / "proxy" / "config.yaml"


@pytest.fixture
def canary() -> Any:
    router = Router(
        model_list=[
            deployment("chat", "chat-stable", "from stable", model="openai/same-model"),
            deployment("chat", "chat-canary", "from canary", model="openai/same-model"),
            deployment("other", "other-1", "other", model="openai/other-model"),
        ]
    )
    config = {"rollouts": [chat_rollout()], "proxy": {"side_override_keys": ["tester"]}}
    handle = attach(router, config, background=False)
    yield handle
    handle.detach()


def body(model: str, headers: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "proxy_server_request": {"headers": headers or {}},
        **extra,
    }


def _never_asked() -> set[str]:
    raise AssertionError("the caller's key ids were computed without a side header")


@pytest.mark.parametrize("model", ["chat", "chat-canary", "chat-stable", "openai/same-model"])
def test_every_name_of_a_managed_deployment_becomes_the_group(canary: Any, model: str) -> None:
    data = body(model)
    assert neutralise(data, canary, canary._router, _never_asked) == ("chat", None)
    assert data["model"] == "chat"


def test_unmanaged_models_are_left_alone(canary: Any) -> None:
    for model in ("other", "other-1", "openai/other-model", "unknown"):
        data = body(model, {"x-litellm-canary-side": "canary"})
        assert neutralise(data, canary, canary._router, _never_asked) == (None, None)
        assert data["model"] == model


def test_client_copies_of_our_metadata_keys_are_dropped(canary: Any) -> None:
    data = body("chat", metadata={FORCED_SIDE_KEY: "canary", STAMP_KEY: {"chat": {}}, "tags": ["canary"]})
    data["litellm_metadata"] = {FORCED_SIDE_KEY: "canary"}
    neutralise(data, canary, canary._router, _never_asked)
    assert data["metadata"] == {"tags": ["canary"]}
    assert data["litellm_metadata"] == {}


def test_the_side_header_needs_an_allow_listed_key(canary: Any) -> None:
    data = body("chat-canary", {"X-LiteLLM-Canary-Side": "canary"})
    with pytest.raises(SideOverrideRefused) as refused:
        neutralise(data, canary, canary._router, lambda: {"somebody"})
    assert refused.value.status == 403 and "side_override_keys" in refused.value.message
    assert data["model"] == "chat-canary"  # refused: nothing applied

    assert neutralise(data, canary, canary._router, lambda: {"tester"}) == ("chat", Side.CANARY)
    assert data["metadata"][FORCED_SIDE_KEY] is Side.CANARY


def test_a_bad_side_value_is_named(canary: Any) -> None:
    with pytest.raises(SideOverrideRefused, match="must be 'stable' or 'canary', got 'blue'") as refused:
        neutralise(body("chat", {"x-litellm-canary-side": "blue"}), canary, canary._router, _never_asked)
    assert refused.value.status == 400


def test_the_forced_side_goes_into_the_responses_metadata_bucket(canary: Any) -> None:
    data = {
        "model": "chat",
        "input": "hi",
        "litellm_metadata": {},
        "proxy_server_request": {"headers": {"x-litellm-canary-side": "stable"}},
    }
    neutralise(data, canary, canary._router, lambda: {"tester"})
    assert data["litellm_metadata"][FORCED_SIDE_KEY] is Side.STABLE
    assert "metadata" not in data


async def test_a_forced_side_routes_through_the_real_router(canary: Any) -> None:
    router = canary._router
    forced = await router.acompletion(
        model="chat", messages=[{"role": "user", "content": "hi"}], metadata={FORCED_SIDE_KEY: Side.CANARY}
    )
    assert forced.choices[0].message.content == "from canary"
    forged = await router.acompletion(
        model="chat", messages=[{"role": "user", "content": "hi"}], metadata={FORCED_SIDE_KEY: "canary"}
    )
    assert forged.choices[0].message.content == "from stable"  # a plain string is not our marker
    canary.rollback("chat", "test")
    latched = await router.acompletion(
        model="chat", messages=[{"role": "user", "content": "hi"}], metadata={FORCED_SIDE_KEY: Side.CANARY}
    )
    assert latched.choices[0].message.content == "from stable"


def test_decide_with_a_forced_side() -> None:
    canary_pin = Pin(Side.CANARY, PinKind.REQUEST, "c1")
    assert decide(rolled_back=False, flag_side=Side.STABLE, forced=Side.CANARY) == Decision(
        Side.CANARY, Reason.FORCED
    )
    assert decide(rolled_back=False, flag_side=Side.STABLE, pin=canary_pin, forced=Side.CANARY) == Decision(
        Side.CANARY, Reason.FORCED, "c1"
    )
    assert decide(rolled_back=False, flag_side=Side.CANARY, pin=canary_pin, forced=Side.STABLE) == Decision(
        Side.STABLE, Reason.FORCED
    )
    assert decide(rolled_back=True, flag_side=None, forced=Side.CANARY) == Decision(
        Side.STABLE, Reason.ROLLED_BACK
    )
    assert decide(rolled_back=True, flag_side=None, forced=Side.STABLE).reason is Reason.FORCED


def test_the_example_config_is_a_valid_canary_config() -> None:
    config = load_config_file(EXAMPLE)
    assert [r.model_group for r in config.rollouts] == ["chat", "embed"]
    assert config.flag_store is not None and config.flag_store.kind == "flagd_file"
    assert yaml.safe_load(EXAMPLE.read_text())["litellm_settings"]["callbacks"] == [
        "litellm_canary.proxy.canary"
    ]


def test_config_comes_from_the_env_file_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "canary.yaml"
    own.write_text(yaml.safe_dump({"rollouts": [chat_rollout(flag_key="from-env")]}))
    monkeypatch.setenv(CONFIG_ENV, str(own))
    assert ProxyCanary().load_config().rollouts[0].flag_key == "from-env"


def test_config_errors_name_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv("CONFIG_FILE_PATH", raising=False)
    with pytest.raises(ConfigError, match="LITELLM_CANARY_CONFIG"):
        ProxyCanary().load_config()
    proxy_yaml = tmp_path / "config.yaml"
    proxy_yaml.write_text(yaml.safe_dump({"model_list": []}))
    monkeypatch.setenv("CONFIG_FILE_PATH", str(proxy_yaml))
    with pytest.raises(ConfigError, match="no 'litellm_canary' key"):
        ProxyCanary().load_config()
    proxy_yaml.write_text(yaml.safe_dump({"litellm_canary": {"rollouts": [], "proxy": {"mount_path": "x"}}}))
    with pytest.raises(ConfigError, match=r"proxy\.mount_path"):
        ProxyCanary().load_config()


def test_no_router_yet_means_not_attached() -> None:
    assert ProxyCanary().ensure_attached() is None  # no proxy server module in this process


def test_the_readmes_flag_command_sends_the_group_to_the_canary(tmp_path: Path) -> None:
    import json
    import re
    import subprocess
    import sys

    readme = (EXAMPLE.parent / "README.md").read_text()
    snippet = re.search(r'python -c "(.*?)"\n', readme.replace("\\\n", ""), re.S)
    assert snippet is not None
    flags = tmp_path / "flags.json"
    code = snippet.group(1).replace("examples/proxy/.state/flags.json", str(flags))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert json.loads(flags.read_text())["flags"]["chat-canary"]["defaultVariant"] == "canary"


class _BrokenRegistry:
    """A Router whose deployment registry fails (a LiteLLM upgrade, a bug of ours)."""

    def __init__(self, router: Any) -> None:
        self._router = router

    def registry(self) -> Any:
        raise RuntimeError("registry unavailable")


async def test_a_fault_in_the_pre_call_guard_never_fails_the_request(
    canary: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = _BrokenRegistry(canary._router)
    monkeypatch.setattr(
        "litellm_canary.integrations.proxy._proxy_server", lambda: SimpleNamespace(llm_router=router)
    )
    entry = ProxyCanary()
    entry.current, entry._router = canary, router
    data = body("openai/not-a-group")
    assert await entry.async_pre_call_hook(None, None, data, "acompletion") is data
    assert data["model"] == "openai/not-a-group"  # passed on unchanged
    assert canary.status()["integration_errors"] == {"proxy_pre_call": 1}

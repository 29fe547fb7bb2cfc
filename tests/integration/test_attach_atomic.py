"""Issue 10 item 4: attach() validates everything before touching global state, and undoes what it
did when a later step fails.

A Hypothesis test draws configs with any mix of faults (paths under a file or with a NUL byte, a
broken flag file, a typo'd group or deployment id, an unimportable scorer, a bad number) on a real
Router, the real OpenFeature SDK and the real flagd provider: either attach() raises a ConfigError
naming a field that was broken, or it works. After a failed attach the Router routes, the
application's OpenFeature provider answers, litellm's callback lists, the threads and the files are
exactly as before.
"""

from __future__ import annotations

import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import litellm
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litellm import Router
from openfeature import api
from openfeature.provider._registry import provider_registry
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

import litellm_canary
from litellm_canary import ConfigError
from tests.support.helpers import chat_rollout, deployment

MESSAGES = [{"role": "user", "content": "hi"}]

# fault -> the field its error must name
FAULTS = {
    "incidents_under_file": "incidents.dir",
    "incidents_nul": "incidents.dir",
    "flag_under_file": "flag_store",
    "flag_nul": "flag_store",
    "flag_is_dir": "flag_store",
    "flag_bad_json": "flag_store",
    "group_typo": "rollouts[0].model_group",
    "id_typo": "rollouts[0].canary",
    "scorer": "rollouts[0].evals.scorer",
    "golden_nul": "rollouts[0].evals.golden_set",
    "window_h": "rollouts[0].window_h",
}
_FLAG_FAULTS = [name for name in FAULTS if name.startswith("flag_")]


def _router() -> Router:
    return Router(
        model_list=[deployment("chat", "chat-stable", "stable"), deployment("chat", "chat-canary", "canary")]
    )


def _config(
    root: Path, faults: set[str], store: str | None, incidents: bool, domain: str | None
) -> dict[str, Any]:
    blocker = root / "a-file"
    blocker.write_text("not a directory")
    rollout = chat_rollout()
    if "group_typo" in faults:
        rollout["model_group"] = "chatt"
    if "id_typo" in faults:
        rollout["canary"] = ["chat-canry"]
    if "scorer" in faults:
        rollout.setdefault("evals", {})["scorer"] = "no_such_module_xyz:score"
    if "golden_nul" in faults:
        rollout.setdefault("evals", {})["golden_set"] = str(root / "gol\x00den.jsonl")
    if "window_h" in faults:
        rollout["window_h"] = -1
    config: dict[str, Any] = {"rollouts": [rollout], "openfeature_domain": domain}
    if "incidents_under_file" in faults:
        config["incidents"] = {"dir": str(blocker / "incidents")}
    elif "incidents_nul" in faults:
        config["incidents"] = {"dir": str(root / "inci\x00dents")}
    elif incidents:
        config["incidents"] = {"dir": str(root / "new" / "incidents")}
    flag_fault = next((name for name in _FLAG_FAULTS if name in faults), None)
    path = root / "store" / "flags.json"
    if flag_fault == "flag_under_file":
        path = blocker / "flags.json"
    elif flag_fault == "flag_nul":
        path = root / "fl\x00ags.json"
    elif flag_fault == "flag_is_dir":
        path = root / "dir.json"
        path.mkdir()
    elif flag_fault == "flag_bad_json":
        path = root / "bad.json"
        path.write_text('{"flags": {')
    if flag_fault is not None or store == "flagd_file":
        config["flag_store"] = {"kind": "flagd_file", "path": str(path), "poll_ms": 20}
    elif store == "memory":
        config["flag_store"] = {"kind": "memory"}
    return config


def _callback_lists() -> list[list[Any]]:
    return [
        list(callbacks)
        for callbacks in (
            litellm.callbacks,
            litellm.success_callback,
            litellm.failure_callback,
            litellm._async_success_callback,
            litellm._async_failure_callback,
        )
    ]


def _sides(router: Router, requests: int = 24) -> Counter[str]:
    answers: Counter[str] = Counter()
    for index in range(requests):
        response = router.completion(model="chat", messages=MESSAGES, user=f"u{index}")
        answers[str(response.choices[0].message.content)] += 1
    return answers


def _app_flag(domain: str | None) -> str:
    return api.get_client(domain).get_string_value("app-flag", "default")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    faults=st.sets(st.sampled_from(sorted(FAULTS)), max_size=3),
    store=st.sampled_from([None, "memory", "flagd_file"]),
    incidents=st.booleans(),
    domain=st.sampled_from([None, "gateway"]),
)
def test_attach_is_all_or_nothing(
    faults: set[str], store: str | None, incidents: bool, domain: str | None
) -> None:
    api.clear_providers()
    app_provider = InMemoryProvider({"app-flag": InMemoryFlag("on", {"on": "on", "off": "off"})})
    api.set_provider_and_wait(app_provider)
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        config = _config(root, faults, store, incidents, domain)
        router = _router()
        assert set(_sides(router)) == {"stable", "canary"}  # LiteLLM's own shuffle over both
        callbacks = _callback_lists()
        threads = set(threading.enumerate())
        files = sorted(root.rglob("*"))
        providers = (provider_registry.get_provider(None), provider_registry.get_provider(domain))
        try:
            canary = litellm_canary.attach(router, config)
        except ConfigError as error:
            assert faults, f"a valid config was refused: {error}"
            assert any(FAULTS[fault] in str(error) for fault in faults), (faults, str(error))
            # Nothing changed.
            assert (provider_registry.get_provider(None), provider_registry.get_provider(domain)) == providers
            assert _app_flag(None) == "on" and _app_flag(domain) == "on"
            assert _callback_lists() == callbacks
            assert set(threading.enumerate()) <= threads
            assert sorted(root.rglob("*")) == files
            assert set(_sides(router)) == {"stable", "canary"}
            return
        assert not faults, f"attach accepted faults {faults}"
        canary.route_sync_calls()  # _sides() calls the Router synchronously: steer those calls too
        try:
            assert _sides(router) == Counter(stable=24)  # managed: the new flag serves stable
            if store is None:
                assert _app_flag(domain) == "on"  # the application's provider is the flag source
        finally:
            canary.detach()


def test_a_late_failure_undoes_every_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last step of attach (adding the outcome callbacks to LiteLLM) fails: a fault injected by
    the test, after the flag file is written, the provider installed and the routing filter added."""
    manager = litellm.logging_callback_manager
    add = manager.add_litellm_callback

    def failing_add(callback: Any) -> None:
        if type(callback).__name__ == "CanaryCallbacks":
            raise ConfigError("litellm: cannot add the canary's callbacks (test fault)")
        add(callback)

    monkeypatch.setattr(manager, "add_litellm_callback", failing_add)
    app_provider = InMemoryProvider({"app-flag": InMemoryFlag("on", {"on": "on", "off": "off"})})
    api.set_provider_and_wait(app_provider)
    router = _router()
    callbacks = _callback_lists()
    threads = set(threading.enumerate())
    flags = tmp_path / "store" / "flags.json"
    config = {
        "rollouts": [chat_rollout()],
        "flag_store": {"kind": "flagd_file", "path": str(flags), "poll_ms": 20},
        "incidents": {"dir": str(tmp_path / "incidents")},
    }
    with pytest.raises(ConfigError, match="test fault"):
        litellm_canary.attach(router, config)
    assert not (tmp_path / "store").exists()  # flags.json, its lock and the directory: removed
    assert not (tmp_path / "incidents").exists()
    assert provider_registry.get_provider(None) is app_provider
    assert _app_flag(None) == "on"
    assert _callback_lists() == callbacks

    # The flagd provider's watcher and the canary's own threads are gone (stopping is asynchronous
    # in the OpenFeature SDK: wait for it, never longer than needed).
    # The SDK's own event-handler pool (module-level, lives with the process) is not ours.
    def ours() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if not t.name.startswith("openfeature-event-handler")}

    deadline = threading.Event()
    for _ in range(200):
        if ours() <= threads:
            break
        deadline.wait(0.05)
    assert ours() <= threads, ours() - threads
    assert set(_sides(router)) == {"stable", "canary"}


def test_the_openfeature_registry_internal_used_to_unbind_a_domain() -> None:
    """Contract test for the one private OpenFeature piece attach's undo uses (a domain's binding)."""
    provider = InMemoryProvider({})
    api.set_provider_and_wait(provider, "contract")
    assert provider_registry._providers["contract"] is provider
    with provider_registry._lock:
        provider_registry._providers.pop("contract")
    assert provider_registry.get_provider("contract") is provider_registry.get_default_provider()

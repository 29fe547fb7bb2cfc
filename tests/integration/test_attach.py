"""attach(): configuration errors name the field and value, and change nothing on the Router."""

from __future__ import annotations

from typing import Any

import litellm
import pytest
from litellm import Router

import litellm_canary
from litellm_canary import ConfigError
from tests.support.helpers import chat_rollout, deployment


def _router() -> Router:
    return Router(
        model_list=[
            deployment("chat", "chat-stable", "stable"),
            deployment("chat", "chat-canary", "canary"),
            deployment("other", "other-1", "other"),
        ]
    )


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"model_group": "nope"}, r"rollouts\[0\]\.model_group: unknown model group 'nope'"),
        ({"stable": ["ghost"]}, r"rollouts\[0\]\.stable: deployment id 'ghost' is not in model group 'chat'"),
        (
            {"canary": ["other-1"]},
            r"rollouts\[0\]\.canary: deployment id 'other-1' is not in model group 'chat'",
        ),
        ({"canary": ["chat-stable"]}, r"\['chat-stable'\] are on both the stable and the canary side"),
        ({"canary": []}, r"rollouts\[0\]\.canary: .*at least 1 item"),
        ({"flag_key": ""}, r"rollouts\[0\]\.flag_key: .*at least 1 character"),
        ({"flag_key": None}, r"rollouts\[0\]\.flag_key: Input should be a valid string"),
        (
            {"triggers": {"error_rate": {"ratio": "high"}}},
            r"triggers\.error_rate\.ratio: .*valid number.*'high'",
        ),
    ],
)
def test_invalid_config_fails_at_attach(rollout: dict[str, Any], message: str) -> None:
    router = _router()
    callbacks = list(litellm.callbacks)
    with pytest.raises(ConfigError, match=message):
        litellm_canary.attach(router, {"rollouts": [chat_rollout(**rollout)]})
    assert litellm.callbacks == callbacks  # nothing half-applied


def test_missing_flag_key_is_named() -> None:
    rollout = chat_rollout()
    del rollout["flag_key"]
    with pytest.raises(ConfigError, match=r"rollouts\[0\]\.flag_key: Field required"):
        litellm_canary.attach(_router(), {"rollouts": [rollout]})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "must be a mapping"),
        ({"rollouts": []}, "rollouts: .*at least 1 item"),
        ({"rollouts": [chat_rollout(), chat_rollout()]}, "model_group 'chat' has more than one rollout"),
        ({"rollouts": [chat_rollout()], "flag_store": {"kind": "redis"}}, r"flag_store\.kind"),
        ({"rollouts": [chat_rollout()], "flag_store": {"kind": "flagd_file"}}, "needs a 'path'"),
        (
            {"rollouts": [chat_rollout()], "flag_store": {"kind": "flagd_file", "path": "f.yml"}},
            "must end in .json",
        ),
        ({"rollouts": [chat_rollout()], "surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_invalid_top_level_config(config: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        litellm_canary.attach(_router(), config)


def test_typed_config_is_accepted() -> None:
    config = litellm_canary.parse_config({"rollouts": [chat_rollout()]})
    canary = litellm_canary.attach(_router(), config)
    assert canary.config is config
    canary.detach()


def test_operations_on_unknown_groups_are_refused() -> None:
    canary = litellm_canary.attach(
        _router(), {"rollouts": [chat_rollout()], "flag_store": {"kind": "memory"}}
    )
    with pytest.raises(litellm_canary.UnknownModelGroup, match="no rollout manages model group 'other'"):
        canary.rollback("other", "x")
    with pytest.raises(litellm_canary.UnknownModelGroup):
        canary.rearm("other")
    with pytest.raises(ValueError, match=r"percent must be a number within 0\.\.100"):
        canary.set_canary_percent("chat", 150)
    with pytest.raises(ValueError, match="rollback kind"):
        canary.rollback("chat", "x", kind="whim")  # type: ignore[arg-type]
    assert canary.status()["groups"]["chat"]["state"] == "armed"
    canary.detach()

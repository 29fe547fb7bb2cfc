"""``bench switch --url``'s admin side: the webhook payload it sends is one the webhook accepts, and
a status without the group or its deployment ids is refused with a line naming the problem."""

from __future__ import annotations

import pytest

from litellm_canary.bench.remote_admin import BenchInputError, GroupState, Target, alertmanager_payload
from litellm_canary.integrations.admin_api import AlertmanagerPayload

TARGET = Target("http://gw:4000", "http://gw:4000")


def test_the_webhook_payload_validates_and_each_flip_has_its_own_fingerprint() -> None:
    first, second = alertmanager_payload("chat", 0), alertmanager_payload("chat", 1)
    alert = AlertmanagerPayload.model_validate(first).alerts[0]
    assert alert.status == "firing"
    assert alert.labels["action"] == "rollback" and alert.labels["model_group"] == "chat"
    assert first["alerts"][0]["fingerprint"] != second["alerts"][0]["fingerprint"]


def test_a_group_state_classifies_the_served_deployment() -> None:
    status = {
        "groups": {
            "chat": {
                "state": "armed",
                "stable": ["s1"],
                "canary": ["c1"],
                "canary_percent": 30.0,
                "flag_store": {"kind": "flagd_file:/x"},
            }
        }
    }
    state = GroupState.from_status(TARGET, "chat", status)
    assert (state.rolled_back, state.canary_percent) == (False, 30.0)
    assert [state.side_of(i) for i in ("s1", "c1", "other", None)] == [
        "stable",
        "canary",
        "unknown",
        "unknown",
    ]


def test_an_unmanaged_group_or_an_older_gateway_is_refused() -> None:
    with pytest.raises(BenchInputError, match=r"'embed' is not managed .* \['chat'\]"):
        GroupState.from_status(TARGET, "embed", {"groups": {"chat": {}}})
    with pytest.raises(BenchInputError, match="names no deployment ids"):
        GroupState.from_status(TARGET, "chat", {"groups": {"chat": {"state": "armed"}}})

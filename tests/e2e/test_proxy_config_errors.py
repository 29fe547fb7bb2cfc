"""Issue 10 item 7: a canary config the proxy's model list cannot satisfy, against real proxies.

Where the model list is in the proxy's own file, the proxy refuses to start and names the problem.
Where it cannot be checked at start-up (``store_model_in_db``: models may come from the database), a
canary config error never fails a request: LiteLLM routes as without the canary, and the status
route, the log and ``litellm_canary_config_error`` show the error. ``litellm-canary status`` and
``rules`` on such a file exit 2 with the same message.
"""

from __future__ import annotations

import copy
import re
import secrets
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from litellm_canary.cli import main
from litellm_canary.testing.fake_upstream import FakeUpstream
from tests.support import REPO
from tests.support.proxy_process import ProxyProcess

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

EXAMPLE = REPO / "examples" / "proxy" / "config.yaml"
TYPO = "rollouts[0].model_group: unknown model group 'chatt'"


def _typo_config(tmp_path: Path) -> dict[str, Any]:
    config = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    config["litellm_canary"]["rollouts"][0]["model_group"] = "chatt"
    config["litellm_canary"]["flag_store"]["path"] = str(tmp_path / "flags.json")
    return config


def test_status_and_rules_refuse_a_group_missing_from_the_model_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_typo_config(tmp_path)))
    for command in (["status", "--config", str(path)], ["rules", "--config", str(path)]):
        assert main(command) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and TYPO in captured.err

    # A deployment id that is not in the group is named too; ids LiteLLM will generate are not checked.
    config = yaml.safe_load(EXAMPLE.read_text())
    config["litellm_canary"]["rollouts"][0]["canary"] = ["chat-canry"]
    path.write_text(yaml.safe_dump(config))
    assert main(["rules", "--config", str(path)]) == 2
    assert (
        "rollouts[0].canary: deployment id 'chat-canry' is not in model group 'chat'"
        in capsys.readouterr().err
    )
    del config["model_list"][1]["model_info"]
    path.write_text(yaml.safe_dump(config))
    assert main(["rules", "--config", str(path)]) == 0
    capsys.readouterr()

    # The example itself is fine.
    assert main(["rules", "--config", str(EXAMPLE)]) == 0


def test_a_proxy_whose_file_lacks_the_group_refuses_to_start(tmp_path: Path) -> None:
    proxy = ProxyProcess(tmp_path, _typo_config(tmp_path), token=secrets.token_urlsafe(16), name="typo")
    try:
        proxy.start()
        with pytest.raises(RuntimeError, match=re.escape(TYPO)):
            proxy.wait_ready()
    finally:
        proxy.stop()
    assert not (tmp_path / "flags.json").exists()  # refused before anything was written
    assert "Traceback" not in proxy.log_path.read_text()  # one line names the problem


def test_an_unverifiable_config_error_never_fails_a_request(tmp_path: Path) -> None:
    stable = FakeUpstream("stable", answer="from stable").start()
    canary = FakeUpstream("canary", answer="from canary").start()
    config = {
        "model_list": [
            stable.deployment("chat", "chat-stable", model="openai/gpt-4o-mini"),
            canary.deployment("chat", "chat-canary", model="openai/gpt-4o-mini"),
        ],
        "general_settings": {"store_model_in_db": True},  # the file is not the whole model list
        "litellm_settings": {"callbacks": ["litellm_canary.proxy.canary"]},
        "litellm_canary": {
            "flag_store": {"kind": "flagd_file", "path": str(tmp_path / "flags.json")},
            "rollouts": [
                {
                    "model_group": "chatt",
                    "stable": ["chat-stable"],
                    "canary": ["chat-canary"],
                    "flag_key": "f",
                }
            ],
        },
    }
    proxy = ProxyProcess(tmp_path, config, token=secrets.token_urlsafe(16), name="db")
    try:
        proxy.start().wait_ready()
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=proxy.master_key, max_retries=0)
        answers = {
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
            .choices[0]
            .message.content
            for _ in range(6)
        }
        assert answers <= {"from stable", "from canary"} and answers  # every request answered (200)

        status = proxy.admin("GET", "/canary/status")
        assert status.status_code == 503
        assert status.json()["state"] == "config_error" and TYPO in status.json()["error"]
        metrics = proxy.admin("GET", "/metrics", token=None).text
        assert re.search(r"^litellm_canary_config_error 1\.0$", metrics, re.M)
        bypassed = re.search(r"^litellm_canary_config_error_requests_total (\S+)$", metrics, re.M)
        assert bypassed is not None and float(bypassed.group(1)) >= 6
        assert "litellm-canary is NOT attached" in proxy.log_tail(400)
        assert TYPO in proxy.log_tail(400)
    finally:
        proxy.stop()
        stable.stop()
        canary.stop()

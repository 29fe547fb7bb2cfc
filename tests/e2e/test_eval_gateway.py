"""The eval pipeline inside a real ``litellm-canary serve`` gateway process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai

from litellm_canary.testing.fake_upstream import FakeUpstream
from litellm_canary.testing.gateway_process import GatewayProcess, chat_gateway_config, wait_until

TOKEN = "test-token-evals-0123456789"


def test_a_gateway_rolls_back_a_canary_that_fails_its_golden_set(tmp_path: Path) -> None:
    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        "\n".join(json.dumps({"prompt": f"q{i}", "expect": {"regex": "answer is 4"}}) for i in range(4))
        + "\n"
    )
    stable = FakeUpstream("stable", answer="The answer is 4.").start()
    canary = FakeUpstream("canary", answer="The answer is 4.").start()
    canary.set_faults(bad_answer="no idea")
    rollout = {
        "flag_key": "chat",
        "triggers": {"eval_score": {"min_samples": 5}},
        "evals": {
            "scorer": {"builtin": "regex", "pattern": "answer is 4"},
            "sample_rate": 1.0,
            "golden_set": str(golden),
            "golden_interval_s": 0.2,
        },
    }
    config = chat_gateway_config(
        stable,
        canary,
        rollout,
        flag_store={"kind": "flagd_file", "path": str(tmp_path / "flags.json")},
        evaluation_step_s=0.05,
    )
    try:
        with GatewayProcess(tmp_path, config, TOKEN) as gateway:
            client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused")
            for _ in range(5):  # user traffic (all on stable) is sampled and scored in the process
                reply = client.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "2+2?"}]
                )
                assert reply.choices[0].message.content == "The answer is 4."

            def status() -> dict[str, Any]:
                response = httpx.get(f"{gateway.url}/canary/status", headers=gateway.headers)
                return dict(response.json()["groups"]["chat"])

            rolled_back = wait_until(
                lambda: (s := status())["state"] == "rolled_back" and s, 30, what="the rollback"
            )
            cause = rolled_back["last_rollback"]["cause"]
            assert (cause["rule"], cause["source"], cause["reject"]) == ("eval_score", "golden", True)
            evals = wait_until(
                lambda: (s := status()["evals"])["scored"]["traffic"]["stable"]["ok"] == 5 and s,
                30,
                what="5 scores",
            )
            assert evals["golden"]["baseline_mean"] == 1.0
            metrics = httpx.get(f"{gateway.url}/metrics/").text
            assert (
                'litellm_canary_eval_score_mean{model_group="chat",side="canary",source="golden"} 0.0'
                in metrics
            )
    finally:
        stable.stop()
        canary.stop()

"""End-to-end: litellm-canary inside real ``litellm --config`` proxy processes, driven by ``openai``.

Three proxies start once for the module (concurrently: start-up takes seconds each): ``main`` with
in-process fake upstreams (fault injection, counters) and an allow-listed key, and two replicas
of ``examples/proxy/config.yaml`` sharing one flagd flag file, whose upstreams are started with the
README's ``python -m litellm_canary.fake_upstream`` command. Each test sets the flag and latch state
it needs first.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from litellm_canary.core.decision import Side
from litellm_canary.core.flags import FlagdFileStore
from litellm_canary.testing.fake_upstream import FakeUpstream
from litellm_canary.testing.gateway_process import wait_until
from litellm_canary.testing.litellm_proxy import UpstreamProcess
from tests.support import REPO
from tests.support.proxy_process import ProxyProcess

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

EXAMPLE = REPO / "examples" / "proxy" / "config.yaml"
STABLE_ANSWER = "from stable side"
CANARY_ANSWER = "from canary side"
FOLLOW_S = 30.0  # generous deadline for a flag-file change to reach a proxy on a loaded 2-core box


class Proxies:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.token = secrets.token_urlsafe(24)
        self.stable = FakeUpstream("stable", answer=STABLE_ANSWER).start()
        self.canary = FakeUpstream("canary", answer=CANARY_ANSWER).start()
        self.flags_path = directory / "main-flags.json"
        master_key = "sk-" + secrets.token_hex(16)
        self.main = ProxyProcess(directory, self._main_config(master_key), self.token, "main", master_key)
        # the replicas: the example config, only ports and the flag file path changed
        self.served = [UpstreamProcess("stable", STABLE_ANSWER), UpstreamProcess("canary", CANARY_ANSWER)]
        self.shared_flags = directory / "shared-flags.json"
        example = yaml.safe_load(EXAMPLE.read_text())
        self.replicas = [
            ProxyProcess(directory, self._replica_config(example), self.token, f"replica{i}") for i in (1, 2)
        ]

    def _main_config(self, master_key: str) -> dict[str, Any]:
        def deployment(upstream: FakeUpstream, side: str, group: str, model: str) -> dict[str, Any]:
            entry = upstream.deployment(group, f"{group}-{side}", model=model, tags=[side])
            return entry

        return {
            "model_list": [
                deployment(self.stable, "stable", "chat", "openai/gpt-4o-mini"),
                deployment(self.canary, "canary", "chat", "openai/gpt-4o-mini"),
                deployment(self.stable, "stable", "embed", "openai/text-embedding-3-small"),
                deployment(self.canary, "canary", "embed", "openai/text-embedding-3-small"),
                # not managed by the canary: routed by LiteLLM as usual
                self.stable.deployment("plain", "plain-1", model="openai/plain-model"),
            ],
            "litellm_settings": {"callbacks": ["litellm_canary.proxy.canary"]},
            "router_settings": {"num_retries": 2, "enable_tag_filtering": True},
            "litellm_canary": {
                "flag_store": {"kind": "flagd_file", "path": str(self.flags_path), "poll_ms": 50},
                "rollouts": [
                    {"model_group": g, "stable": [f"{g}-stable"], "canary": [f"{g}-canary"], "flag_key": g}
                    for g in ("chat", "embed")
                ],
                # the proxy names its master key "litellm_proxy_master_key" to hooks (never the key)
                "proxy": {"side_override_keys": ["litellm_proxy_master_key"]},
            },
        }

    def _replica_config(self, example: dict[str, Any]) -> dict[str, Any]:
        config = copy.deepcopy(example)
        ports = {"8101": str(self.served[0].port), "8102": str(self.served[1].port)}
        for entry in config["model_list"]:
            base = entry["litellm_params"]["api_base"]
            for old, new in ports.items():
                base = base.replace(f":{old}/", f":{new}/")
            entry["litellm_params"]["api_base"] = base
        config["litellm_canary"]["flag_store"]["path"] = str(self.shared_flags)
        config["litellm_canary"]["flag_store"]["poll_ms"] = 50
        return config

    @property
    def all(self) -> list[ProxyProcess]:
        return [self.main, *self.replicas]

    def stop(self) -> None:
        for proxy in self.all:
            proxy.stop()
        for served in self.served:
            served.stop()
        self.stable.stop()
        self.canary.stop()


@pytest.fixture(scope="module")
def proxies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxies]:
    setup = Proxies(tmp_path_factory.mktemp("proxy"))
    try:
        for served in setup.served:
            served.wait_ready()
        for proxy in setup.all:
            proxy.start()
        for proxy in setup.all:
            proxy.wait_ready()
        yield setup
    finally:
        setup.stop()


def client(proxy: ProxyProcess, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{proxy.url}/v1", api_key=proxy.master_key, max_retries=0, default_headers=headers or None
    )


def chat_side(proxy: ProxyProcess, model: str = "chat", **kwargs: Any) -> str:
    headers = kwargs.pop("headers", {})
    answer = client(proxy, **headers).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], **kwargs
    )
    return side_of(answer.choices[0].message.content)


def side_of(text: str | None) -> str:
    return {STABLE_ANSWER: "stable", CANARY_ANSWER: "canary"}.get(text or "", f"unexpected answer {text!r}")


def reset(proxy: ProxyProcess, flags: Path, side: Side, *groups: str) -> None:
    """Re-arm ``groups`` on ``proxy``, write their flag, and wait until ``proxy`` follows it."""
    for group in groups or ("chat",):
        assert proxy.admin("POST", "/canary/rearm", json={"model_group": group}).status_code == 200
        FlagdFileStore(flags).set_side(group if proxy.name == "main" else f"{group}-canary", side)
    wait_until(lambda: chat_side(proxy) == side.value, FOLLOW_S, what=f"{proxy.name} to route chat to {side}")


# -- routing by flag -------------------------------------------------------------------------------


def test_chat_stream_responses_and_embeddings_follow_the_flag(proxies: Proxies) -> None:
    main = proxies.main
    for side in (Side.CANARY, Side.STABLE):
        reset(main, proxies.flags_path, side, "chat", "embed")
        api = client(main)
        assert chat_side(main) == side.value
        stream = api.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert side_of("".join(c.choices[0].delta.content or "" for c in stream if c.choices)) == side.value
        assert side_of(api.responses.create(model="chat", input="hi").output_text) == side.value
        raw = api.embeddings.with_raw_response.create(model="embed", input="hello")
        assert raw.headers["x-litellm-model-id"] == f"embed-{side.value}"
        assert len(raw.parse().data[0].embedding) > 0
    # an unmanaged group is routed by LiteLLM as before
    assert chat_side(main, model="plain") == "stable"


def test_stream_on_the_canary_completes_across_a_rollback(proxies: Proxies) -> None:
    main, canary = proxies.main, proxies.canary
    reset(main, proxies.flags_path, Side.CANARY)
    canary.set_faults(hold_stream=True, hold_after_chunks=1)
    try:
        stream = client(main).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert canary.wait_until(lambda stats: stats["streams_held"] == 1, timeout_s=30)
        rolled = main.admin("POST", "/canary/rollback", json={"model_group": "chat", "reason": "test"})
        assert rolled.status_code == 200 and rolled.json()["model_group"] == "chat"
        assert chat_side(main) == "stable"  # the next request, while the canary stream is still open
        canary.release_streams()
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == CANARY_ANSWER
    finally:
        canary.clear_faults()
    status = main.admin("GET", "/canary/status").json()["groups"]["chat"]
    assert status["state"] == "rolled_back"
    assert json.loads(proxies.flags_path.read_text())["flags"]["chat"]["defaultVariant"] == "stable"


def test_retries_stay_on_their_side(proxies: Proxies) -> None:
    main, stable, canary = proxies.main, proxies.stable, proxies.canary
    reset(main, proxies.flags_path, Side.CANARY)
    before_stable, before_canary = stable.stats()["requests"], canary.stats()["requests"]
    canary.set_faults(fail_nth={before_canary + 1}, error_status=500)
    try:
        assert chat_side(main) == "canary"  # the first attempt failed; the retry stayed on the canary
    finally:
        canary.clear_faults()
    assert canary.stats()["requests"] == before_canary + 2
    assert stable.stats()["requests"] == before_stable
    # and on stable: a failing stable attempt is retried on stable even with the flag on canary...
    reset(main, proxies.flags_path, Side.STABLE)
    before_stable, before_canary = stable.stats()["requests"], canary.stats()["requests"]
    stable.set_faults(fail_nth={before_stable + 1}, error_status=500)
    try:
        assert chat_side(main) == "stable"
    finally:
        stable.clear_faults()
    assert stable.stats()["requests"] == before_stable + 2
    assert canary.stats()["requests"] == before_canary


def test_a_responses_continuation_stays_on_its_side(proxies: Proxies) -> None:
    main = proxies.main
    reset(main, proxies.flags_path, Side.CANARY)
    api = client(main)
    first = api.responses.create(model="chat", input="hi")
    assert side_of(first.output_text) == "canary"
    assert "chat-canary" not in first.id  # the proxy hands out encrypted ids
    # Send new conversations to stable: the continuation of a stable conversation stays on stable...
    reset(main, proxies.flags_path, Side.STABLE)
    stable_first = api.responses.create(model="chat", input="hi")
    assert side_of(stable_first.output_text) == "stable"
    FlagdFileStore(proxies.flags_path).set_side("chat", Side.CANARY)
    wait_until(lambda: chat_side(main) == "canary", FOLLOW_S, what="main to route chat to canary")
    follow_up = api.responses.create(model="chat", input="more", previous_response_id=stable_first.id)
    assert side_of(follow_up.output_text) == "stable"
    # ...and a canary conversation continues on the canary while the canary serves.
    follow_up = api.responses.create(model="chat", input="more", previous_response_id=first.id)
    assert side_of(follow_up.output_text) == "canary"
    # After a rollback (no drain window configured) it moves to stable.
    main.admin("POST", "/canary/rollback", json={"model_group": "chat", "reason": "test"})
    follow_up = api.responses.create(model="chat", input="more", previous_response_id=first.id)
    assert side_of(follow_up.output_text) == "stable"


# -- HTTP endpoints ----------------------------------------------------------------------------------


def test_admin_and_webhook_need_the_bearer_token(proxies: Proxies) -> None:
    main = proxies.main
    reset(main, proxies.flags_path, Side.CANARY)
    for token in (None, "wrong-token", main.master_key):
        assert main.admin("GET", "/canary/status", token=token).status_code == 401
        refused = main.admin("POST", "/canary/rollback", token=token, json={"model_group": "chat"})
        assert refused.status_code == 401
    firing = json.loads(Path("/work/shared/data/alertmanager-webhook-firing.json").read_text())
    firing["alerts"][0]["labels"]["model_group"] = "chat"
    assert main.admin("POST", "/alertmanager", token=None, json=firing).status_code == 401
    assert main.admin("GET", "/canary/status").json()["groups"]["chat"]["state"] == "armed"
    assert chat_side(main) == "canary"  # nothing above changed routing

    answer = main.admin("POST", "/alertmanager", json=firing)
    assert answer.status_code == 200
    assert answer.json()["alerts"][0]["result"] == "rolled_back"
    assert chat_side(main) == "stable"
    assert (
        main.admin("POST", "/canary/rollback", json={"model_group": "nope", "reason": "x"}).status_code == 404
    )
    assert main.admin("POST", "/canary/rearm", json={"model_group": "chat"}).json()["rearmed"] is True


def test_the_console_page_is_served_under_the_mount_path(proxies: Proxies) -> None:
    page = proxies.main.admin("GET", "/console", token=None)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/litellm-canary/console/console.js"' in page.text
    assert proxies.main.admin("GET", "/console/console.js", token=None).status_code == 200
    assert proxies.main.admin("GET", "/canary/incidents", token=None).status_code == 401
    assert proxies.main.admin("GET", "/canary/series?model_group=chat").json()["model_group"] == "chat"


def test_metrics_are_served_apart_from_litellms(proxies: Proxies) -> None:
    main = proxies.main
    reset(main, proxies.flags_path, Side.STABLE)
    scrape = httpx.get(f"{main.url}/litellm-canary/metrics", timeout=10)
    assert scrape.status_code == 200
    assert 'litellm_canary_decisions_total{model_group="chat",reason="flag",side="stable"}' in scrape.text
    # outcomes arrive from LiteLLM's logging after the response: every attempt is closed, as a success
    pattern = re.compile(
        r'litellm_canary_attempts_total\{deployment="chat-stable",model_group="chat",'
        r'outcome="success",side="stable"\} (\d+)'
    )

    def successes() -> int:
        found = pattern.search(httpx.get(f"{main.url}/litellm-canary/metrics", timeout=10).text)
        return int(float(found.group(1))) if found else -1

    before = successes()
    assert chat_side(main) == "stable"
    wait_until(lambda: successes() == before + 1, FOLLOW_S, what="the attempt's outcome")
    in_flight = main.admin("GET", "/canary/status").json()["groups"]["chat"]["in_flight"]
    assert in_flight == {"stable": 0, "canary": 0}
    litellm_own = httpx.get(f"{main.url}/metrics", timeout=10)
    assert "litellm_canary_" not in litellm_own.text


# -- client overrides --------------------------------------------------------------------------------


def test_client_overrides_cannot_reach_the_canary(proxies: Proxies) -> None:
    main = proxies.main
    reset(main, proxies.flags_path, Side.STABLE)
    assert chat_side(main, model="chat-canary") == "stable"  # a deployment id
    assert chat_side(main, model="openai/gpt-4o-mini") == "stable"  # the deployments' litellm model
    assert chat_side(main, headers={"x-litellm-tags": "canary"}) == "stable"
    assert chat_side(main, extra_body={"metadata": {"tags": ["canary"]}}) == "stable"
    assert chat_side(main, extra_body={"tags": ["canary"]}) == "stable"
    forged = {"metadata": {"litellm_canary_forced_side": "canary", "litellm_canary": {"chat": {}}}}
    assert chat_side(main, extra_body=forged) == "stable"
    raw = client(main).embeddings.with_raw_response.create(model="embed-canary", input="x")
    assert raw.headers["x-litellm-model-id"] == "embed-stable"


def test_the_side_header_works_for_allow_listed_keys_only(proxies: Proxies) -> None:
    main, replica = proxies.main, proxies.replicas[0]
    reset(main, proxies.flags_path, Side.STABLE)
    assert chat_side(main, headers={"x-litellm-canary-side": "canary"}) == "canary"
    api = client(main, **{"x-litellm-canary-side": "canary"})
    assert side_of(api.responses.create(model="chat", input="hi").output_text) == "canary"
    with pytest.raises(openai.BadRequestError, match="must be 'stable' or 'canary'"):
        chat_side(main, headers={"x-litellm-canary-side": "blue"})
    FlagdFileStore(proxies.flags_path).set_side("chat", Side.CANARY)
    wait_until(lambda: chat_side(main) == "canary", FOLLOW_S, what="main to route chat to canary")
    assert chat_side(main, headers={"x-litellm-canary-side": "stable"}) == "stable"
    main.admin("POST", "/canary/rollback", json={"model_group": "chat", "reason": "test"})
    assert chat_side(main, headers={"x-litellm-canary-side": "canary"}) == "stable"  # the latch wins

    # the replicas' key is not on their (empty) allow list
    reset(replica, proxies.shared_flags, Side.STABLE)
    with pytest.raises(openai.PermissionDeniedError, match="not allowed to force a side"):
        chat_side(replica, headers={"x-litellm-canary-side": "canary"})


# -- several replicas ---------------------------------------------------------------------------------


def test_two_replicas_follow_one_rollback(proxies: Proxies) -> None:
    first, second = proxies.replicas
    for replica in (first, second):
        reset(replica, proxies.shared_flags, Side.CANARY)
    for replica in (first, second):
        assert chat_side(replica) == "canary"
    rolled = first.admin("POST", "/canary/rollback", json={"model_group": "chat", "reason": "test"})
    assert rolled.status_code == 200
    assert chat_side(first) == "stable"  # the latch: immediately
    wait_until(
        lambda: chat_side(second) == "stable", FOLLOW_S, what="the second replica to follow the flag file"
    )
    # ... and latches too, from the rollback mark that came with the flag (so it also says so)
    wait_until(
        lambda: second.admin("GET", "/canary/status").json()["groups"]["chat"]["state"] == "rolled_back",
        FOLLOW_S,
        what="the second replica to latch",
    )
    for replica in (first, second):
        reset(replica, proxies.shared_flags, Side.STABLE)


def test_a_proxy_without_the_admin_token_refuses_to_start(tmp_path: Path) -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    config["litellm_canary"]["flag_store"]["path"] = str(tmp_path / "flags.json")
    proxy = ProxyProcess(tmp_path, config, token="", name="no-token")
    try:
        proxy.start()
        with pytest.raises(RuntimeError, match=r"set \$LITELLM_CANARY_TOKEN"):
            proxy.wait_ready()
    finally:
        proxy.stop()
    # One line says why, instead of ~400 lines of chained tracebacks.
    log = proxy.log_path.read_text()
    assert "Traceback" not in log
    (line,) = [line for line in log.splitlines() if "LITELLM_CANARY_TOKEN" in line]
    assert line.startswith("litellm-canary: the proxy cannot start: set $LITELLM_CANARY_TOKEN")

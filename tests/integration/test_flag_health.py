"""A broken or slow flag source routes to stable, is counted and visible, and heals by itself.

Issue 10, items 1 and 6: the real flagd provider in file mode with its file broken four ways; the
provider's ERROR/STALE status; the flag-file check at attach/serve; the read-time breaker with an
injected clock; its background probe.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from litellm import Router
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent, ProviderEventDetails
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

import litellm_canary
from litellm_canary import cli
from litellm_canary.core.config import ConfigError, FlagReadConfig, parse_config
from litellm_canary.core.decision import Side
from litellm_canary.core.flags import (
    BREAKER_OPEN,
    PROVIDER_ERROR,
    PROVIDER_STALE,
    FlagReader,
    RateLimitedLogFilter,
    provider_log_filter,
    validate_flagd_file,
)
from litellm_canary.integrations.metrics import CanaryMetrics
from litellm_canary.testing.gateway_process import wait_until
from tests.support.helpers import chat_rollout, deployment

MESSAGES = [{"role": "user", "content": "hi"}]
CANARY_FLAGS = {
    "flags": {
        "chat-canary": {
            "state": "ENABLED",
            "variants": {"stable": "stable", "canary": "canary"},
            "defaultVariant": "canary",
        }
    }
}


def _router() -> Router:
    return Router(
        model_list=[deployment("chat", "chat-stable", "stable"), deployment("chat", "chat-canary", "canary")]
    )


class _Events:
    """Counts a domain's provider events; a test awaits a count instead of sleeping."""

    def __init__(self, domain: str | None) -> None:
        self.counts: Counter[ProviderEvent] = Counter()
        self._changed = threading.Condition()
        client = api.get_client(domain)
        for event in (
            ProviderEvent.PROVIDER_ERROR,
            ProviderEvent.PROVIDER_READY,
            ProviderEvent.PROVIDER_STALE,
        ):
            client.add_handler(event, self._handler(event))

    def _handler(self, event: ProviderEvent) -> Callable[[EventDetails], None]:
        def handle(_: EventDetails) -> None:
            with self._changed:
                self.counts[event] += 1
                self._changed.notify_all()

        return handle

    def wait_for(self, event: ProviderEvent, count: int, timeout: float = 10) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.counts[event] >= count, timeout), (
                f"no {event.value} #{count} within {timeout} s"
            )


async def _answers(router: Router, n: int = 20) -> Counter[str]:
    answers: Counter[str] = Counter()
    for i in range(n):
        response = await router.acompletion(model="chat", messages=MESSAGES, user=f"user-{i}")
        answers[response.choices[0].message.content] += 1
    return answers


def _break_invalid_json(path: Path) -> None:
    path.write_text('{"flags": {"chat-canary": \n')


def _break_deleted(path: Path) -> None:
    path.unlink()


def _break_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _break_symlink_loop(path: Path) -> None:
    path.unlink()
    os.symlink(path, path)


def _restore(path: Path, text: str) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        path.rmdir()
    path.write_text(text)


async def test_a_broken_flagd_file_routes_stable_counts_and_heals(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    good = json.dumps(CANARY_FLAGS)
    flags.write_text(good)
    router = _router()
    canary = litellm_canary.attach(
        router,
        {
            "rollouts": [chat_rollout()],
            "openfeature_domain": "gw",
            "flag_store": {"kind": "flagd_file", "path": str(flags), "poll_ms": 20},
        },
    )
    events = _Events("gw")
    events.wait_for(ProviderEvent.PROVIDER_READY, 1)  # fires at once: the provider is READY
    assert await _answers(router) == {"canary": 20}  # 100 % canary while the file is good

    suppressed_before = provider_log_filter.suppressed
    phases = [_break_invalid_json, _break_deleted, _break_directory, _break_symlink_loop]
    for number, breaking in enumerate(phases, start=1):
        errors_before = canary.status()["flag_errors"].get(PROVIDER_ERROR, 0)
        seen = events.counts[ProviderEvent.PROVIDER_ERROR]
        breaking(flags)
        events.wait_for(ProviderEvent.PROVIDER_ERROR, seen + 2)  # flagd re-reports on every poll

        assert await _answers(router) == {"stable": 20}, breaking.__name__
        status = canary.status()
        assert status["flag_errors"][PROVIDER_ERROR] == errors_before + 20
        assert status["flag_source"]["provider_status"] == "ERROR"
        assert status["flag_source"]["last_error"]
        assert status["groups"]["chat"]["last_flag_value"] == PROVIDER_ERROR

        ready = events.counts[ProviderEvent.PROVIDER_READY]
        _restore(flags, good)
        events.wait_for(ProviderEvent.PROVIDER_READY, ready + 1)
        assert await _answers(router) == {"canary": 20}, f"not healed after {breaking.__name__}"
        assert canary.status()["flag_source"]["provider_status"] == "READY"
        assert canary.status()["flag_source"]["last_error"] is None
        assert number == len(phases) or canary.status()["flag_errors"][PROVIDER_ERROR] == errors_before + 20

    # flagd logs a traceback on every poll while broken; the rate limit let few through.
    assert provider_log_filter.suppressed > suppressed_before
    exposition = CanaryMetrics(canary).exposition().decode()
    assert f'litellm_canary_flag_errors_total{{cause="{PROVIDER_ERROR}"}} 80.0' in exposition
    assert "litellm_canary_flag_provider_ready 1.0" in exposition
    canary.detach()


async def test_the_flag_error_is_logged_once_per_minute_not_per_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flags = tmp_path / "flags.json"
    flags.write_text(json.dumps(CANARY_FLAGS))
    router = _router()
    canary = litellm_canary.attach(
        router,
        {
            "rollouts": [chat_rollout()],
            "flag_store": {"kind": "flagd_file", "path": str(flags), "poll_ms": 20},
        },
    )
    events = _Events(None)
    caplog.set_level(logging.WARNING)
    _break_invalid_json(flags)
    events.wait_for(ProviderEvent.PROVIDER_ERROR, 5)
    assert await _answers(router, 30) == {"stable": 30}
    ours = [r for r in caplog.records if r.name == "litellm_canary.flags" and "unreadable" in r.getMessage()]
    assert len(ours) == 1 and PROVIDER_ERROR in ours[0].getMessage()
    flagd = [r for r in caplog.records if r.name == "openfeature.contrib"]
    assert len(flagd) <= 1  # five polls failed, at most one traceback went through
    canary.detach()


class _StaleableProvider(InMemoryProvider):
    pass


def test_a_stale_provider_routes_stable_until_ready() -> None:
    provider = _StaleableProvider({"f": InMemoryFlag("c", {"c": "canary"})})
    api.set_provider_and_wait(provider)
    events = _Events(None)
    reader = FlagReader()
    context = EvaluationContext("k")
    assert reader.read("f", context).side is Side.CANARY

    provider.emit_provider_stale(ProviderEventDetails(message="cache older than 5 min"))
    events.wait_for(ProviderEvent.PROVIDER_STALE, 1)
    read = reader.read("f", context)
    assert read.side is None and read.error == PROVIDER_STALE
    assert reader.errors[PROVIDER_STALE] == 1
    assert reader.source_status()["provider_status"] == "STALE"

    provider.emit_provider_error(ProviderEventDetails(message="backend unreachable"))
    events.wait_for(ProviderEvent.PROVIDER_ERROR, 1)
    assert reader.read("f", context).error == PROVIDER_ERROR

    provider.emit_provider_ready(ProviderEventDetails())
    events.wait_for(ProviderEvent.PROVIDER_READY, 2)  # once when added, once now
    assert reader.read("f", context).side is Side.CANARY
    reader.close()


# -- the flag file at attach / serve ---------------------------------------------------------------


def _bad_flag_files(tmp_path: Path) -> list[tuple[str, Callable[[Path], None], str]]:
    return [
        ("invalid-json", lambda p: p.write_text('{\n  "flags": {,\n}'), r"invalid JSON at line 2 column 13"),
        ("directory", lambda p: p.mkdir(), "is a directory"),
        ("symlink-loop", lambda p: os.symlink(p, p), "Too many levels of symbolic links"),
        (
            "dangling-symlink",
            lambda p: os.symlink(tmp_path / "gone.json", p),
            "symbolic link to a missing file",
        ),
        ("not-flagd", lambda p: p.write_text('{"flags": [1, 2]}'), "no 'flags' object"),
        (
            "bad-flag",
            lambda p: p.write_text('{"flags": {"chat-canary": {"state": "ON"}}}'),
            "flagd rejects it",
        ),
    ]


@pytest.mark.parametrize("case", range(6))
def test_attach_on_a_broken_flag_file_is_a_config_error_naming_it(tmp_path: Path, case: int) -> None:
    name, breaking, problem = _bad_flag_files(tmp_path)[case]
    flags = tmp_path / f"{name}.json"
    breaking(flags)
    before = api.get_client().provider
    with pytest.raises(ConfigError, match=problem) as raised:
        litellm_canary.attach(
            _router(),
            {"rollouts": [chat_rollout()], "flag_store": {"kind": "flagd_file", "path": str(flags)}},
        )
    assert str(flags) in str(raised.value)
    assert api.get_client().provider is before  # the check runs before the provider is replaced
    with pytest.raises(ConfigError, match=problem):
        validate_flagd_file(flags)


def test_a_missing_flag_file_is_fine_and_created(tmp_path: Path) -> None:
    flags = tmp_path / "flags.json"
    validate_flagd_file(flags)
    canary = litellm_canary.attach(
        _router(), {"rollouts": [chat_rollout()], "flag_store": {"kind": "flagd_file", "path": str(flags)}}
    )
    assert json.loads(flags.read_text())["flags"]["chat-canary"]["defaultVariant"] == "stable"
    canary.detach()


def test_serve_on_a_broken_flag_file_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = tmp_path / "flags.json"
    flags.write_text('{"flags": {\n  "chat-canary": }\n}')
    gateway = tmp_path / "gateway.yaml"
    gateway.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    deployment("chat", "chat-stable", "s"),
                    deployment("chat", "chat-canary", "c"),
                ],
                "litellm_canary": {
                    "rollouts": [chat_rollout()],
                    "flag_store": {"kind": "flagd_file", "path": str(flags)},
                },
            }
        )
    )
    assert cli.main(["serve", "--config", str(gateway)]) == 2
    error = capsys.readouterr().err
    assert str(flags) in error and "invalid JSON at line 2 column 18" in error
    assert "Traceback" not in error


# -- the read-time breaker -------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _TimedProvider(InMemoryProvider):
    """Serves the canary; each evaluation advances the injected clock by ``cost_s``."""

    def __init__(self, clock: _Clock, cost_s: float) -> None:
        super().__init__({"f": InMemoryFlag("c", {"c": "canary"})})
        self.clock = clock
        self.cost_s = cost_s
        self.calls: list[str | None] = []

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        self.calls.append(evaluation_context.targeting_key if evaluation_context else None)
        self.clock.now += self.cost_s
        return super().resolve_string_details(flag_key, default_value, evaluation_context)


def _timed_reader(cost_s: float, **config: Any) -> tuple[FlagReader, _TimedProvider, _Clock]:
    clock = _Clock()
    provider = _TimedProvider(clock, cost_s)
    api.set_provider_and_wait(provider)
    settings = {
        "budget_ms": 50,
        "trip_after": 3,
        "of_last": 10,
        "backoff_s": 10,
        "max_backoff_s": 40,
        **config,
    }
    reader = FlagReader(clock=clock, budgets={"f": FlagReadConfig(**settings)}, probe_in_background=False)
    return reader, provider, clock


def test_slow_reads_trip_the_breaker_and_skip_the_provider() -> None:
    reader, provider, _ = _timed_reader(0.2)
    context = EvaluationContext("user")
    for _ in range(2):
        assert reader.read("f", context).side is Side.CANARY  # slow, but an answer
    assert reader.breaker_status("f")["state"] == "closed"  # type: ignore[index]
    assert reader.read("f", context).side is Side.CANARY  # the third over-budget read trips it
    view = reader.breaker_status("f")
    assert view is not None and view["state"] == "open" and view["trips"] == 1
    assert view["over_budget_reads"] == 3 and view["last_read_ms"] == pytest.approx(200)

    calls = len(provider.calls)
    for _ in range(100):
        read = reader.read("f", context)
        assert read.side is None and read.error == BREAKER_OPEN
    assert len(provider.calls) == calls  # not read at all while open
    assert reader.errors[BREAKER_OPEN] == 100


def test_fast_reads_between_slow_ones_keep_it_closed() -> None:
    reader, provider, _ = _timed_reader(0.0)
    context = EvaluationContext("user")
    for _ in range(10):
        provider.cost_s = 0.2
        reader.read("f", context)
        reader.read("f", context)
        provider.cost_s = 0.001
        for _ in range(9):  # two slow reads in every ten: below trip_after=3 of the last 10
            assert reader.read("f", context).side is Side.CANARY
    view = reader.breaker_status("f")
    assert view is not None and view["state"] == "closed" and view["over_budget_reads"] == 20


def test_the_probe_reopens_with_a_doubling_backoff_then_closes() -> None:
    reader, provider, clock = _timed_reader(0.2)
    context = EvaluationContext("user")
    for _ in range(3):
        reader.read("f", context)
    assert reader.run_due_probes() == pytest.approx(10)  # not due yet: nothing read
    assert provider.calls.count("litellm-canary-probe") == 0

    for backoff in (20, 40, 40):  # each failed probe doubles the back-off, up to max_backoff_s
        clock.now += 1000
        assert reader.run_due_probes() == pytest.approx(backoff)
        view = reader.breaker_status("f")
        assert view is not None and view["state"] == "open" and view["backoff_s"] == backoff
    assert provider.calls.count("litellm-canary-probe") == 3
    assert reader.read("f", context).error == BREAKER_OPEN

    provider.cost_s = 0.001  # the provider is fast again
    clock.now += 40
    assert reader.run_due_probes() is None
    view = reader.breaker_status("f")
    assert (
        view is not None
        and view["state"] == "closed"
        and view["backoff_s"] == 10
        and view["failed_probes"] == 3
    )
    assert reader.read("f", context).side is Side.CANARY
    # A new trip starts from the first back-off again, with a fresh window of reads.
    provider.cost_s = 0.2
    for _ in range(2):
        reader.read("f", context)
    assert reader.breaker_status("f")["state"] == "closed"  # type: ignore[index]


def test_probes_run_on_the_reader_thread_not_a_request() -> None:
    probed = threading.Event()

    class _SlowThenFast(InMemoryProvider):
        cost_s = 0.06  # real time: over the 10 ms budget

        def resolve_string_details(
            self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
        ) -> FlagResolutionDetails[str]:
            if evaluation_context is not None and evaluation_context.targeting_key == "litellm-canary-probe":
                assert threading.current_thread().name == "litellm-canary-flag-probe"
                probed.set()
            else:
                threading.Event().wait(self.cost_s)  # a provider that blocks for 60 ms
            return super().resolve_string_details(flag_key, default_value, evaluation_context)

    api.set_provider_and_wait(_SlowThenFast({"f": InMemoryFlag("c", {"c": "canary"})}))
    config = FlagReadConfig(budget_ms=10, trip_after=2, of_last=2, backoff_s=0.05)
    reader = FlagReader(budgets={"f": config})
    context = EvaluationContext("user")
    reader.read("f", context)
    reader.read("f", context)
    assert reader.read("f", context).error == BREAKER_OPEN
    assert probed.wait(10)  # the probe thread re-probes by itself
    wait_until(lambda: reader.breaker_status("f")["state"] == "closed", 10, what="breaker closed")  # type: ignore[index]
    assert reader.read("f", context).side is Side.CANARY
    reader.close()
    assert reader._probe_thread is not None and not reader._probe_thread.is_alive()


async def test_the_breaker_shows_in_status_and_metrics() -> None:
    clock = _Clock()
    provider = _TimedProvider(clock, 0.2)
    api.set_provider_and_wait(provider)
    router = _router()
    canary = litellm_canary.attach(
        router,
        {
            "rollouts": [
                chat_rollout(flag_key="f", flag_read={"budget_ms": 20, "trip_after": 2, "of_last": 4})
            ]
        },
        clock=clock,
        background=False,
    )
    assert await _answers(router, 2) == {"canary": 2}
    assert await _answers(router, 5) == {"stable": 5}
    status = canary.status()
    assert status["groups"]["chat"]["flag_read"]["state"] == "open"
    assert status["groups"]["chat"]["flag_read"]["budget_ms"] == 20
    assert status["flag_errors"] == {BREAKER_OPEN: 5}
    exposition = CanaryMetrics(canary).exposition().decode()
    assert 'litellm_canary_flag_read_breaker_open{model_group="chat"} 1.0' in exposition
    assert 'litellm_canary_flag_read_breaker_trips_total{model_group="chat"} 1.0' in exposition
    assert f'litellm_canary_flag_errors_total{{cause="{BREAKER_OPEN}"}} 5.0' in exposition
    canary.detach()


@pytest.mark.parametrize(
    ("flag_read", "message"),
    [
        ({"budget_ms": 0}, "budget_ms"),
        ({"trip_after": 5, "of_last": 3}, "trip_after"),
        ({"backoff_s": 60, "max_backoff_s": 10}, "max_backoff_s"),
        ({"budget": 10}, "budget"),
    ],
)
def test_flag_read_config_is_validated(flag_read: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"rollouts": [chat_rollout(flag_read=flag_read)]})


def test_the_log_filter_passes_each_message_once_per_minute() -> None:
    clock = _Clock()
    log_filter = RateLimitedLogFilter(60, clock)
    record = logging.LogRecord(
        "openfeature.contrib", logging.ERROR, __file__, 1, "Could not read", None, None
    )
    other = logging.LogRecord("openfeature.contrib", logging.ERROR, __file__, 1, "File gone", None, None)
    assert log_filter.filter(record)
    assert not any(log_filter.filter(record) for _ in range(99))
    assert log_filter.filter(other)
    assert log_filter.suppressed == 99
    clock.now += 60
    again = logging.LogRecord("openfeature.contrib", logging.ERROR, __file__, 1, "Could not read", None, None)
    assert log_filter.filter(again) and "suppressed so far: 99" in again.getMessage()


@pytest.mark.e2e  # runs the benchmark script as a process
def test_slow_flag_provider_benchmark_trips_and_recovers() -> None:
    from tests.e2e.test_benchmarks import run_benchmark

    result = run_benchmark("slow_flag_provider")
    for key in ("fast_request_ms_median", "unprotected_added_ms", "tripped_added_ms", "tripped_ratio"):
        assert isinstance(result[key], float), key
    assert result["reads_before_trip"] == FlagReadConfig().trip_after  # then no request reads it
    assert result["tripped_provider_reads"] == 0
    answers = result["answers"]
    assert set(answers["fast"]) == set(answers["unprotected"]) == set(answers["before_trip"]) == {"canary"}
    assert set(answers["tripped"]) == {"stable"} and set(answers["recovered"]) == {"canary"}
    assert result["breaker_when_tripped"]["state"] == "open" and result["recovery_s"] is not None
    assert result["flag_errors"] == {BREAKER_OPEN: sum(answers["tripped"].values())}


@pytest.mark.e2e  # runs the benchmark script as a process
def test_broken_flag_source_benchmark_never_serves_the_canary_while_broken() -> None:
    from tests.e2e.test_benchmarks import run_benchmark

    result = run_benchmark("broken_flag_source")
    assert set(result["kinds"]) == {"invalid_json", "deleted", "directory", "symlink_loop"}
    for kind, figures in result["kinds"].items():
        assert figures["canary_while_broken"] == 0, kind
        assert figures["break_to_stable_ms_median"] > 0 and figures["restore_to_canary_ms_median"] > 0
    assert result["decisions"]["stable"] == result["flag_errors"][PROVIDER_ERROR]
    assert result["decisions"]["canary"] > 0

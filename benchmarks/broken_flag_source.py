"""How fast a broken flagd flag file sends a 100 % canary group to stable, and back once repaired.

What is measured
----------------
A real ``litellm.Router`` (group ``chat``, two mocked deployments) with ``litellm_canary.attach``
and ``flag_store: flagd_file`` (the real flagd provider in in-process file mode, ``--poll-ms``,
default 100 as in the config) serving the canary to everybody. A client sends requests one after
another the whole time; every routing decision is recorded with its time (``canary.on_decision``).
For each way of breaking the file (invalid JSON, deleted, replaced by a directory, a symlink loop),
``--repeat`` times: the file is broken, we wait for the provider's ERROR event and keep sending for
``--hold-s``, then restore the file and wait for its READY event. Reported per kind (median and max
over the repeats):

* ``break_to_stable_ms``: from the break to the first decision for stable (the flagd poll finds the
  file broken: bounded by the poll interval plus one request);
* ``canary_while_broken``: canary decisions after that first stable one and before the restore
  (target 0);
* ``restore_to_canary_ms``: from the restore to the first canary decision again;
* the flagd provider's log records that went through and that the rate limit suppressed.

    python benchmarks/broken_flag_source.py [--json] [--quick] [--repeat N] [--poll-ms MS] [--hold-s S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm.router import Router
from openfeature import api
from openfeature.event import EventDetails, ProviderEvent

import litellm_canary
from litellm_canary.core.decision import Side
from litellm_canary.core.flags import provider_log_filter

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
GOOD = json.dumps(
    {
        "flags": {
            "chat-canary": {
                "state": "ENABLED",
                "variants": {"stable": "stable", "canary": "canary"},
                "defaultVariant": "canary",
            }
        }
    }
)


def _invalid_json(path: Path) -> None:
    path.write_text('{"flags": {"chat-canary": \n')


def _deleted(path: Path) -> None:
    path.unlink()


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _symlink_loop(path: Path) -> None:
    path.unlink()
    os.symlink(path, path)


BREAKS: dict[str, Callable[[Path], None]] = {
    "invalid_json": _invalid_json,
    "deleted": _deleted,
    "directory": _directory,
    "symlink_loop": _symlink_loop,
}


def _restore(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        path.rmdir()
    path.write_text(GOOD)


class _Counting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1


async def run(repeat: int, poll_ms: int, hold_s: float) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="broken-flag-source-"))
    flags = directory / "flags.json"
    flags.write_text(GOOD)
    router = Router(
        model_list=[
            {
                "model_name": "chat",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_key": "sk-test",
                    "mock_response": side,
                },
                "model_info": {"id": f"chat-{side}"},
            }
            for side in ("stable", "canary")
        ]
    )
    canary = litellm_canary.attach(
        router,
        {
            "rollouts": [
                {
                    "model_group": "chat",
                    "stable": ["chat-stable"],
                    "canary": ["chat-canary"],
                    "flag_key": "chat-canary",
                }
            ],
            "flag_store": {"kind": "flagd_file", "path": str(flags), "poll_ms": poll_ms},
        },
    )
    decisions: list[tuple[float, Side]] = []
    canary.on_decision(lambda _group, decision, _id: decisions.append((time.perf_counter(), decision.side)))
    passed = _Counting()
    logging.getLogger("openfeature.contrib").addHandler(passed)
    suppressed_before = provider_log_filter.suppressed

    loop = asyncio.get_running_loop()
    events: dict[ProviderEvent, asyncio.Event] = {
        ProviderEvent.PROVIDER_ERROR: asyncio.Event(),
        ProviderEvent.PROVIDER_READY: asyncio.Event(),
    }

    def handler(event: ProviderEvent) -> Callable[[EventDetails], None]:
        return lambda _details: loop.call_soon_threadsafe(events[event].set)

    client = api.get_client()
    for event in events:
        client.add_handler(event, handler(event))

    stop = asyncio.Event()

    async def traffic() -> int:
        sent = 0
        while not stop.is_set():
            await router.acompletion(model="chat", messages=MESSAGES, user=f"user-{sent}")
            sent += 1
        return sent

    sender = asyncio.create_task(traffic())
    results: dict[str, dict[str, list[float]]] = {}
    try:
        await asyncio.wait_for(events[ProviderEvent.PROVIDER_READY].wait(), 10)
        for kind, breaking in BREAKS.items():
            figures: dict[str, list[float]] = {
                "break_to_stable_ms": [],
                "canary_while_broken": [],
                "restore": [],
            }
            for _ in range(repeat):
                events[ProviderEvent.PROVIDER_ERROR].clear()
                broken_at = time.perf_counter()
                breaking(flags)
                await asyncio.wait_for(events[ProviderEvent.PROVIDER_ERROR].wait(), 10)
                await asyncio.sleep(hold_s)  # traffic keeps flowing while the file stays broken
                events[ProviderEvent.PROVIDER_READY].clear()
                restored_at = time.perf_counter()
                _restore(flags)
                await asyncio.wait_for(events[ProviderEvent.PROVIDER_READY].wait(), 10)
                deadline = time.perf_counter() + 5
                while not any(t > restored_at and side is Side.CANARY for t, side in decisions[-50:]):
                    if time.perf_counter() > deadline:
                        break
                    await asyncio.sleep(0.005)  # the next request after READY, in a benchmark only
                window = [(t, side) for t, side in decisions if t > broken_at]
                first_stable = next((t for t, side in window if side is Side.STABLE), None)
                first_canary_again = next(
                    (t for t, side in window if t > restored_at and side is Side.CANARY), None
                )
                if first_stable is None or first_canary_again is None:
                    raise RuntimeError(
                        f"{kind}: no stable decision after the break, or no canary after the restore"
                    )
                figures["break_to_stable_ms"].append((first_stable - broken_at) * 1000)
                figures["canary_while_broken"].append(
                    sum(1 for t, side in window if first_stable < t < restored_at and side is Side.CANARY)
                )
                figures["restore"].append((first_canary_again - restored_at) * 1000)
            results[kind] = figures
    finally:
        stop.set()
        sent = await sender
        canary.detach()
    status = canary.status()
    summary = {
        kind: {
            "break_to_stable_ms_median": round(statistics.median(f["break_to_stable_ms"]), 1),
            "break_to_stable_ms_max": round(max(f["break_to_stable_ms"]), 1),
            "canary_while_broken": int(sum(f["canary_while_broken"])),
            "restore_to_canary_ms_median": round(statistics.median(f["restore"]), 1),
            "restore_to_canary_ms_max": round(max(f["restore"]), 1),
        }
        for kind, f in results.items()
    }
    return {
        "poll_ms": poll_ms,
        "repeat": repeat,
        "hold_s": hold_s,
        "requests": sent,
        "decisions": {side.value: sum(1 for _, s in decisions if s is side) for side in Side},
        "kinds": summary,
        "flag_errors": status["flag_errors"],
        "flagd_log_records_passed": passed.records,
        "flagd_log_records_suppressed": provider_log_filter.suppressed - suppressed_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--quick", action="store_true", help="one repeat per kind (smoke test)")
    parser.add_argument("--repeat", type=int, default=None, help="breaks per kind")
    parser.add_argument("--poll-ms", type=int, default=100, help="flag_store.poll_ms")
    parser.add_argument("--hold-s", type=float, default=None, help="how long the file stays broken")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.poll_ms < 10:
        parser.error(f"--poll-ms must be at least 10, got {args.poll_ms}")
    repeat = args.repeat or (1 if args.quick else 5)
    hold_s = args.hold_s if args.hold_s is not None else (0.3 if args.quick else 1.0)
    if hold_s < 0:
        parser.error("--hold-s must not be negative")
    result = asyncio.run(run(repeat, args.poll_ms, hold_s))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

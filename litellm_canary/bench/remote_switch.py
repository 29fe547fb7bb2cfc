"""``bench switch --url``: how fast a rollback reaches every running gateway, and what happens to
the streams in flight, measured from the outside (the load in :mod:`.remote_load`, the admin calls
in :mod:`.remote_admin`, the figures in :mod:`.remote_report`).

Before the load: every gateway must manage the group and answer chat requests with the
``x-litellm-model-id`` header; a group rolled back anywhere is refused unless ``rearm_first``. The
state found (rolled back or not, the flag's canary share) is recorded, then the flag is set to
``canary_percent`` (100 by default: every request goes to the canary until the rollback, so the
first stable answer marks the switch). Each flip:

1. wait until every gateway's last 3 answers (10 before the first flip) came from the canary;
2. ``t0``; roll back on the first gateway (``rollback_to="all"``: on every one at once; admin API, or
   ``via="webhook"``: an Alertmanager payload);
3. wait until every gateway has answered a request from stable (``restored``) and every canary
   stream in flight at ``t0`` has ended (``drain``);
4. re-arm every gateway and set the flag back (``rearm``).

:func:`restore` puts back the state found; the caller runs it in ``finally`` (Ctrl-C included).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from litellm_canary.bench.remote_admin import AdminClient, BenchFailed, BenchInputError, GroupState, Target
from litellm_canary.bench.remote_load import Load, RequestRecord, send_one

__all__ = ["Flip", "RemoteSettings", "Session", "prepare", "restore", "run_flips"]

# Answers from the canary in a row on every gateway before a flip. The first flip asks for more: a
# gateway whose flag source has not yet seen the canary share set at the start still serves the
# share found (say 30 %), and answers from the canary ten times in a row with a chance of 0.3^10.
# After a flip it is exact: a gateway that saw the rollback's "stable" answers from the canary
# only once it has seen the re-arm's share.
CANARY_IN_A_ROW = 3
CANARY_IN_A_ROW_FIRST = 10


@dataclass(frozen=True)
class RemoteSettings:
    urls: tuple[str, ...]
    group: str
    model: str
    token: str
    api_key: str
    clients: int = 8
    flips: int = 10
    via: str = "admin"  # or "webhook"
    rollback_to: str = "first"  # or "all": for gateways that share neither a flag store nor a broadcast
    # the canary share during the run: 100, so that the first stable answer marks the switch
    canary_percent: float = 100.0
    rearm_first: bool = False
    admin_path: str | None = None
    step_timeout_s: float = 30.0
    progress: bool = True


@dataclass
class Flip:
    index: int
    t0: float
    returned: list[float | None]  # per gateway: when its rollback call returned (None: not called)
    call_ms: list[float] = field(default_factory=list)
    latch_us: list[float] = field(default_factory=list)
    restored: list[float | None] = field(default_factory=list)  # per gateway: first stable answer
    in_flight: list[RequestRecord] = field(default_factory=list)
    drained_at: float | None = None
    rearm_started: float | None = None
    rearm_ms: float | None = None
    canary_back_ms: float | None = None


@dataclass
class Session:
    """The gateways, the state found on each, and what the run did."""

    settings: RemoteSettings
    admin: AdminClient
    targets: list[Target]
    found: list[GroupState]
    flips: list[Flip] = field(default_factory=list)
    load: Load | None = None
    started: float = 0.0
    ended: float = 0.0
    restored: dict[str, str] = field(default_factory=dict)


def prepare(settings: RemoteSettings) -> Session:
    """Find every gateway's admin API and the group's state; refuse what cannot be measured."""
    admin = AdminClient(settings.token, settings.step_timeout_s)
    try:
        targets = [admin.find(url, settings.admin_path) for url in settings.urls]
        found = [admin.state(target, settings.group) for target in targets]
    except Exception:
        admin.close()
        raise
    rolled_back = [t.url for t, s in zip(targets, found, strict=True) if s.rolled_back]
    for target, state in zip(targets, found, strict=True):
        if state.canary_percent is None and not state.rolled_back:
            admin.close()
            raise BenchInputError(
                f"{target.url}: cannot read the canary share of {settings.group!r} "
                f"(flag store {state.flag_store or 'none'}), so it could not be restored afterwards; "
                "bench switch --url needs a memory or flagd_file flag store"
            )
    if rolled_back and not settings.rearm_first:
        admin.close()
        raise BenchInputError(
            f"{settings.group!r} is rolled back on {rolled_back}: re-arm it first, or pass --rearm-first "
            "(it is rolled back again at the end)"
        )
    return Session(settings, admin, targets, found)


def preflight(session: Session) -> None:
    """One request through each gateway: it answers, and says which deployment served."""
    settings = session.settings

    async def check() -> None:
        load = Load(session.targets, session.found, settings.model, settings.api_key, 1)
        sdks = load.openai_clients()
        try:
            for index, sdk in enumerate(sdks):
                record = RequestRecord(index, stream=True, start=time.perf_counter())
                seen = await send_one(
                    sdk, settings.model, record, session.found[index].side_of, lambda: None, user="preflight"
                )
                _check_preflight(session.targets[index], settings, seen, record)
        finally:
            for sdk in sdks:
                await sdk.close()

    asyncio.run(check())


def _check_preflight(
    target: Target, settings: RemoteSettings, seen: dict[str, Any], record: RequestRecord
) -> None:
    error = seen["error"]
    if error is not None and record.answered is None:
        status = getattr(error, "status_code", None)
        if status == 401:
            raise BenchInputError(f"{target.chat_base}: the API key was refused (401); check --api-key-env")
        if status in (400, 404):
            raise BenchInputError(f"{target.chat_base}: model {settings.model!r} refused ({status}): {error}")
        raise BenchFailed(f"{target.chat_base}: a chat request failed: {error}")
    if seen["model_id"] is None:
        raise BenchInputError(
            f"{target.chat_base}: the answer has no x-litellm-model-id header, so the serving side "
            "cannot be told"
        )
    if record.side == "unknown":
        raise BenchInputError(
            f"{target.chat_base}: model {settings.model!r} was served by {seen['model_id']!r}, not a "
            f"deployment of {settings.group!r}; pass --model with a name that routes to the group"
        )


def _each(session: Session, call: Callable[[Target], Any]) -> None:
    for target in session.targets:
        call(target)


def arm_for_canary(session: Session) -> float:
    """Re-arm every gateway and point the flag at the canary share; the calls' time in ms."""
    settings, admin = session.settings, session.admin
    started = time.perf_counter()
    _each(session, lambda t: admin.rearm(t, settings.group))
    _each(session, lambda t: admin.set_percent(t, settings.group, settings.canary_percent))
    return (time.perf_counter() - started) * 1e3


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """A second Ctrl-C must not stop the restore half-way."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def restore(session: Session) -> bool:
    """Put back the state found on every gateway (re-arm with the share found, or roll back again);
    True when every gateway took it. Ignores Ctrl-C while it runs."""
    settings, admin = session.settings, session.admin
    ok = True
    with _sigint_ignored():
        for target, state in zip(session.targets, session.found, strict=True):
            try:
                if state.rolled_back:
                    admin.rollback(
                        target, settings.group, "bench switch: restoring the rolled-back state found"
                    )
                    session.restored[target.url] = "rolled back, as found"
                else:
                    admin.rearm(target, settings.group)
                    assert state.canary_percent is not None
                    admin.set_percent(target, settings.group, state.canary_percent)
                    session.restored[target.url] = f"armed, {state.canary_percent:g} % canary, as found"
            except (BenchFailed, BenchInputError) as error:
                session.restored[target.url] = f"FAILED: {error}"
                ok = False
    admin.close()
    return ok


# -- the run -------------------------------------------------------------------------------------


async def _until(load: Load, condition: Callable[[], bool], timeout_s: float) -> bool:
    """Wait until ``condition()`` holds, re-checked whenever a request is answered or ends."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while True:
                load.changed.clear()  # before the check: a change during the check is not missed
                if condition():
                    return True
                await load.changed.wait()
    return condition()


def _answered_everywhere(load: Load, side: str, since: float, in_a_row: int = 1) -> Callable[[], bool]:
    """Every gateway's last ``in_a_row`` answers to requests started after ``since`` came from
    ``side``. Several in a row before a flip: a gateway that still serves the share found at the
    start (its flag source not yet polled) rarely answers from the canary that many times in a row."""

    def check() -> bool:
        counts = [0] * len(load.targets)
        done: set[int] = set()
        for record in reversed(load.records):
            if record.start <= since or len(done) == len(counts):
                break
            if record.side is None or record.target in done:
                continue
            if record.side != side:
                done.add(record.target)
            else:
                counts[record.target] += 1
                if counts[record.target] >= in_a_row:
                    done.add(record.target)
        return all(count >= in_a_row for count in counts)

    return check


def _first_stable(load: Load, target: int, t0: float, scan_from: int) -> float | None:
    """When ``target`` first answered from stable after ``t0`` (records before ``scan_from`` had
    all ended by ``t0``)."""
    times = [
        r.answered
        for r in load.records[scan_from:]
        if r.target == target and r.side == "stable" and r.answered is not None and r.answered >= t0
    ]
    return min(times, default=None)


async def _flip(session: Session, index: int, last_armed: float) -> Flip:
    settings, load = session.settings, session.load
    assert load is not None
    timeout = settings.step_timeout_s
    in_a_row = CANARY_IN_A_ROW_FIRST if index == 0 else CANARY_IN_A_ROW
    if not await _until(load, _answered_everywhere(load, "canary", last_armed, in_a_row), timeout):
        raise BenchFailed(f"flip {index}: not every gateway answered from the canary within {timeout:g} s")
    called = session.targets if settings.rollback_to == "all" else session.targets[:1]
    t0 = time.perf_counter()
    answers = await asyncio.gather(*(asyncio.to_thread(_roll_back, session, t, index) for t in called))
    flip = Flip(index, t0, returned=[returned for _, _, returned in answers])
    flip.returned += [None] * (len(session.targets) - len(called))
    flip.call_ms = [call_ms for _, call_ms, _ in answers]
    flip.latch_us = [r["latch_us"] for r, _, _ in answers if isinstance(r.get("latch_us"), int | float)]
    running = [i for i, r in enumerate(load.records) if r.start < t0 and (r.end is None or r.end > t0)]
    scan_from = min(running, default=len(load.records))
    flip.in_flight = [
        load.records[i] for i in running if load.records[i].stream and load.records[i].side == "canary"
    ]
    gateways = range(len(session.targets))
    await _until(
        load, lambda: all(_first_stable(load, g, t0, scan_from) is not None for g in gateways), timeout
    )
    flip.restored = [_first_stable(load, g, t0, scan_from) for g in gateways]
    if None in flip.restored and index == 0:
        late = [t.url for t, r in zip(session.targets, flip.restored, strict=True) if r is None]
        raise BenchFailed(
            f"flip 0: {late} answered nothing from stable within {timeout:g} s of the rollback on "
            f"{called[0].url}; if they share neither its flag store nor a broadcast, pass --rollback-to all"
        )
    if await _until(load, lambda: all(r.end is not None for r in flip.in_flight), timeout):
        flip.drained_at = max((r.end or t0 for r in flip.in_flight), default=t0)
    flip.rearm_started = time.perf_counter()
    flip.rearm_ms = await asyncio.to_thread(arm_for_canary, session)
    armed = time.perf_counter()
    if await _until(load, _answered_everywhere(load, "canary", armed), timeout):
        flip.canary_back_ms = _canary_back_ms(load, armed, flip.rearm_started)
    return flip


def _roll_back(session: Session, target: Target, index: int) -> tuple[dict[str, Any], float, float]:
    """Roll the group back on ``target`` (admin API or webhook): the rollback record, the call's
    time in ms, and when it returned. With ``--rollback-to all`` a gateway other than the first may
    already have followed the first one's rollback (shared flag store, broadcast) when its own call
    arrives: that answer is accepted; the first gateway's must be a fresh rollback."""
    settings, admin = session.settings, session.admin
    follower = target is not session.targets[0]
    if settings.via == "webhook":
        answer, call_ms = admin.webhook(target, settings.group, index)
        outcome = (answer.get("alerts") or [{}])[0]
        if outcome.get("result") != "rolled_back" and not (
            follower and outcome.get("result") == "already_rolled_back"
        ):
            raise BenchFailed(
                f"flip {index}: {target.url}'s webhook answered {outcome.get('result')!r}, not rolled_back"
            )
        record = outcome.get("rollback") or {}
    else:
        reason = f"litellm-canary bench switch, flip {index}"
        record, call_ms = admin.rollback(target, settings.group, reason)
        if record.get("repeated") and not follower:
            raise BenchFailed(f"flip {index}: {target.url} was already rolled back (by someone else?)")
    return record, call_ms, time.perf_counter()


def _canary_back_ms(load: Load, armed: float, rearm_started: float) -> float:
    """From the re-arm call until the last gateway answered a request from the canary again."""
    firsts: dict[int, float] = {}
    for record in reversed(load.records):
        if record.start <= armed:
            break
        if record.side == "canary" and record.answered is not None:
            firsts[record.target] = min(firsts.get(record.target, record.answered), record.answered)
    return (max(firsts.values()) - rearm_started) * 1e3


async def _run(session: Session, progress: Callable[[int], None]) -> None:
    settings = session.settings
    session.load = load = Load(
        session.targets, session.found, settings.model, settings.api_key, settings.clients
    )
    clients = asyncio.create_task(load.run())
    session.started = last_armed = time.perf_counter()
    try:
        for index in range(settings.flips):
            flip = await _flip(session, index, last_armed)
            session.flips.append(flip)
            last_armed = flip.rearm_started or time.perf_counter()
            progress(index + 1)
    except BaseException:  # Ctrl-C (the run is cancelled) or a failed step: no waiting for streams
        clients.cancel()
        raise
    finally:
        session.ended = time.perf_counter()
        load.stop.set()
    with contextlib.suppress(TimeoutError):  # the last requests finish; none is started any more
        async with asyncio.timeout(settings.step_timeout_s):
            await asyncio.shield(clients)
    clients.cancel()


def run_flips(session: Session) -> None:
    """Point the flag at the canary, then run the load and the flips (progress on stderr)."""
    settings = session.settings
    preflight(session)
    arm_for_canary(session)
    show = settings.progress and settings.flips >= 5 and sys.stderr.isatty()

    def progress(done: int) -> None:
        if show:
            filled = round(30 * done / settings.flips)
            bar = "#" * filled + "." * (30 - filled)
            end = "\n" if done == settings.flips else ""
            print(
                f"\rbench switch [{bar}] {done}/{settings.flips} flips", end=end, file=sys.stderr, flush=True
            )

    asyncio.run(_run(session, progress))

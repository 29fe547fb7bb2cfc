"""``bench switch --url``'s figures (the ``--json`` keys) and its human summary.

Per flip, ``t0`` is just before the rollback call:

* ``restored_ms``: until **every** gateway has answered a request from stable (the response
  headers of its first stable answer; the fleet's figure is the last gateway's). ``rollback_call_ms``
  is the admin (or webhook) call alone.
* ``canary_after_latch``: requests to a gateway that got the rollback (the first, or every one with
  ``--rollback-to all``), started after its call returned, still served by the canary. Target 0
  (the latch is exact).
* ``canary_after_switch``: the same on the other gateways, which follow through the flag store or
  the broadcast, counted from their first stable answer (a gateway going back to the canary after
  switching). Target 0; ``canary_after_switch_detail`` lists the first 20.
* ``inflight_*``: canary streams running at ``t0`` and how they ended (completed, failed, cut, or
  still pending at the step timeout); ``drain_ms`` until the last of them ended. Target: 0 failed.
* ``rearm_ms``: re-arming every gateway and setting the flag back; ``canary_back_ms``: from the
  re-arm until every gateway answered from the canary again.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any

from litellm_canary.bench.remote_load import RequestRecord
from litellm_canary.bench.remote_switch import Flip, Session
from litellm_canary.bench.report import quantile, rounded, table

__all__ = ["summarize", "summary_lines"]


def _figures(prefix: str, samples: list[float]) -> dict[str, float | None]:
    return {
        f"{prefix}_p50": rounded(quantile(samples, 0.5), 2),
        f"{prefix}_p99": rounded(quantile(samples, 0.99), 2),
        f"{prefix}_max": rounded(max(samples, default=None), 2),
    }


def _canary_after_switch(session: Session, flip: Flip, starts: list[float]) -> list[list[float]]:
    """Per gateway: the canary answers to requests started after that gateway had switched, as ms
    after the switch (``starts``: the records' start times, in order)."""
    assert session.load is not None
    records = session.load.records
    late: list[list[float]] = [[] for _ in session.targets]
    end = flip.rearm_started if flip.rearm_started is not None else session.ended
    for gateway, restored in enumerate(flip.restored):
        switched = min((t for t in (flip.returned[gateway], restored) if t is not None), default=None)
        if switched is None:
            continue
        window = records[bisect.bisect_right(starts, switched) : bisect.bisect_left(starts, end)]
        late[gateway] = [
            round((r.start - switched) * 1e3, 2) for r in window if r.target == gateway and r.side == "canary"
        ]
    return late


def _inflight(flips: list[Flip]) -> dict[str, Any]:
    ends: Counter[str] = Counter()
    for flip in flips:
        ends.update((r.outcome or "pending") if r.end is not None else "pending" for r in flip.in_flight)
    drains = [(f.drained_at - f.t0) * 1e3 for f in flips if f.drained_at is not None and f.in_flight]
    return {
        "inflight_at_flip": sum(len(f.in_flight) for f in flips),
        "inflight_completed": ends["completed"],
        "inflight_failed": ends["failed"] + ends["error"],
        "inflight_cut": ends["cut"],
        "inflight_pending": ends["pending"],
        **_figures("drain_ms", drains),
    }


def _requests(records: list[RequestRecord], urls: list[str]) -> dict[str, Any]:
    def tally(subset: list[RequestRecord]) -> dict[str, int]:
        counts = Counter(r.side or "no_answer" for r in subset)
        outcomes = Counter(r.outcome or "running" for r in subset)
        return {
            "total": len(subset),
            "streaming": sum(r.stream for r in subset),
            "stable": counts["stable"],
            "canary": counts["canary"],
            "unknown_deployment": counts["unknown"],
            "no_answer": counts["no_answer"],
            "failed": outcomes["failed"] + outcomes["error"],
            "cut": outcomes["cut"],
        }

    return {
        "requests": tally(records),
        "requests_per_gateway": {
            url: tally([r for r in records if r.target == i]) for i, url in enumerate(urls)
        },
    }


def summarize(session: Session) -> dict[str, Any]:
    """The run's figures: one JSON object."""
    settings, flips = session.settings, session.flips
    urls = [t.url for t in session.targets]
    records = session.load.records if session.load is not None else []
    restored_ms = [
        (max(times) - f.t0) * 1e3
        for f in flips
        if (times := [t for t in f.restored if t is not None]) and len(times) == len(f.restored)
    ]
    per_gateway = [
        [(t - f.t0) * 1e3 for f in flips if len(f.restored) > g and (t := f.restored[g]) is not None]
        for g in range(len(urls))
    ]
    starts = [r.start for r in records]
    late = [_canary_after_switch(session, f, starts) for f in flips]
    canary_after = [[len(g) for g in flip] for flip in late]
    result: dict[str, Any] = {
        "mode": "url",
        "urls": urls,
        "admin_urls": [t.admin for t in session.targets],
        "model_group": settings.group,
        "model": settings.model,
        "via": settings.via,
        "rollback_to": settings.rollback_to,
        "clients": settings.clients,
        "flips_requested": settings.flips,
        "flips": len(flips),
        "canary_percent_during_run": settings.canary_percent,
        **_figures("restored_ms", restored_ms),
        **_figures("rollback_call_ms", [ms for f in flips for ms in f.call_ms]),
        **_figures("latch_us", [us for f in flips for us in f.latch_us]),
        **_figures("rearm_ms", [f.rearm_ms for f in flips if f.rearm_ms is not None]),
        **_figures("canary_back_ms", [f.canary_back_ms for f in flips if f.canary_back_ms is not None]),
        "restore_timeouts": len(flips) - len(restored_ms),
        "canary_back_timeouts": sum(f.canary_back_ms is None for f in flips),
        "canary_after_latch": sum(
            n
            for f, c in zip(flips, canary_after, strict=True)
            for n, r in zip(c, f.returned, strict=True)
            if r is not None
        ),
        "canary_after_switch": sum(
            n
            for f, c in zip(flips, canary_after, strict=True)
            for n, r in zip(c, f.returned, strict=True)
            if r is None
        ),
        "canary_after_switch_detail": [
            {"flip": f.index, "url": urls[g], "started_after_switch_ms": ms}
            for f, flip_late in zip(flips, late, strict=True)
            for g, gateway_late in enumerate(flip_late)
            for ms in gateway_late
        ][:20],
        **_inflight(flips),
        "gateways": [
            {
                "url": url,
                "admin_url": session.targets[g].admin,
                "got_the_rollback": g == 0 or settings.rollback_to == "all",
                **_figures("restored_ms", per_gateway[g]),
                "canary_after_switch": sum(c[g] for c in canary_after),
            }
            for g, url in enumerate(urls)
        ],
        **_requests(records, urls),
        "state_found": [
            {"url": url, "rolled_back": s.rolled_back, "canary_percent": s.canary_percent}
            for url, s in zip(urls, session.found, strict=True)
        ],
        "elapsed_s": round(session.ended - session.started, 2),
    }
    result["meets_targets"] = {
        "canary_after_latch": result["canary_after_latch"] == 0,
        "canary_after_switch": result["canary_after_switch"] == 0,
        "inflight_failed": result["inflight_failed"] == 0,
        "every_gateway_restored": result["restore_timeouts"] == 0 and len(flips) > 0,
    }
    return result


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The human summary: what was measured, the verdicts, and the p50/p99/max table."""

    def verdict(key: str) -> str:
        return "met" if result["meets_targets"][key] else "MISSED"

    requests = result["requests"]
    lines = [
        f"rollback of {result['model_group']!r} across {len(result['urls'])} gateway(s) via {result['via']}: "
        f"{result['flips']} flips, {result['clients']} clients, {requests['total']} requests "
        f"({requests['streaming']} streaming) in {result['elapsed_s']} s",
        f"  every gateway on stable  p50 {result['restored_ms_p50']} ms, p99 {result['restored_ms_p99']} ms, "
        f"max {result['restored_ms_max']} ms ({result['restore_timeouts']} flips timed out: "
        f"{verdict('every_gateway_restored')})",
        f"  canary after the latch   {result['canary_after_latch']} requests on the gateway rolled back "
        f"({verdict('canary_after_latch')}), {result['canary_after_switch']} on the others after they "
        f"switched ({verdict('canary_after_switch')})",
        f"  in flight at the flips   {result['inflight_at_flip']} canary streams: "
        f"{result['inflight_completed']} completed, {result['inflight_failed']} failed, "
        f"{result['inflight_cut']} cut, {result['inflight_pending']} pending ({verdict('inflight_failed')})",
        f"  requests                 stable {requests['stable']}, canary {requests['canary']}, "
        f"failed {requests['failed']}, no answer {requests['no_answer']}",
    ]
    for gateway in result["gateways"]:
        lines.append(
            f"  {gateway['url']}: on stable p50 {gateway['restored_ms_p50']} ms, max "
            f"{gateway['restored_ms_max']} ms, canary after the switch {gateway['canary_after_switch']}"
            + (" (got the rollback)" if gateway["got_the_rollback"] else "")
        )
    lines += table(
        result,
        {
            "every gateway on stable (ms)": "restored_ms",
            "rollback call (ms)": "rollback_call_ms",
            "latch (µs)": "latch_us",
            "in-flight drain (ms)": "drain_ms",
            "re-arm calls (ms)": "rearm_ms",
            "canary back (ms)": "canary_back_ms",
        },
    )
    if result.get("restored"):
        lines.append("state restored: " + "; ".join(f"{u}: {s}" for u, s in result["restored"].items()))
    return lines

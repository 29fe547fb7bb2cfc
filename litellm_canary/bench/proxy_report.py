"""``bench proxy``'s figures: each configuration's, their comparison with 95 % intervals and a
verdict per target, the workers phase's, and the readable table.

What the figures mean is documented with the run, in :mod:`litellm_canary.bench.proxy_overhead`;
the intervals and verdicts come from :mod:`litellm_canary.bench.round_stats` (a percentile bootstrap
over rounds).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from litellm_canary.bench.proxy_load import PAIRED, RoundRun
from litellm_canary.bench.proxy_setup import FLAG_POLL_MS
from litellm_canary.bench.report import quantile, rounded
from litellm_canary.bench.round_stats import (
    MIN_ROUNDS,
    RESAMPLES,
    SEED,
    RatioRound,
    Verdict,
    bootstrap_interval,
    pooled_ratio,
    verdict,
)

__all__ = [
    "NAMES",
    "TARGET_CPU_RATIO",
    "TARGET_P99_ADDED_MS",
    "TARGET_PROPAGATION_MS_P99",
    "TARGET_THROUGHPUT_RATIO",
    "comparison",
    "figures",
    "summary_lines",
    "workers_figures",
]

TARGET_THROUGHPUT_RATIO = 0.97
TARGET_CPU_RATIO = 1.03  # the canary proxy may spend at most 3 % more CPU per request
TARGET_P99_ADDED_MS = 1.0
# workers phase: a rollback reaching the other workers (issue 14's propagation targets, per path)
TARGET_PROPAGATION_MS_P99 = {"file": FLAG_POLL_MS + 50.0, "redis": 50.0}
NAMES = ("baseline", "canary")
ROUND_KEYS = ("requests_per_s", "latency_ms_p50", "latency_ms_p99", "ttft_ms_p50", "cpu_ms_per_request")
FEW_ROUNDS = 8  # below this a percentile bootstrap over rounds is narrower than a true 95 % interval


def _intervals_note(rounds: int) -> str:
    """How the intervals were made, for the JSON and the table."""
    if rounds < MIN_ROUNDS:
        return f"no intervals: {rounds} round(s), at least {MIN_ROUNDS} needed"
    note = f"95 % percentile bootstrap over {rounds} rounds ({RESAMPLES} resamples, seed {SEED})"
    return note + (f"; rough with fewer than {FEW_ROUNDS} rounds (too narrow)" if rounds < FEW_ROUNDS else "")


def figures(runs: list[RoundRun]) -> dict[str, Any]:
    """requests/s, latency and TTFT quantiles, CPU per request, failures and served deployments of
    some rounds."""
    requests = [r for run in runs for r in run.requests]
    latencies = [r.latency_ms for r in requests if r.ok]
    ttfts = [r.ttft_ms for r in requests if r.ok and r.ttft_ms is not None]
    elapsed = sum(run.elapsed_s for run in runs)
    served: Counter[str] = Counter()
    for run in runs:
        served.update(run.served)
    no_cpu = [run for run in runs if run.cpu_s is None]
    cpu_s = sum(run.cpu_s or 0.0 for run in runs)
    return {
        "requests": len(requests),
        "failed": sum(run.failed for run in runs),
        "served_by": dict(sorted(served.items())),
        "requests_per_s": round(len(requests) / elapsed, 1) if elapsed else None,
        "latency_ms_p50": rounded(quantile(latencies, 0.5), 2),
        "latency_ms_p99": rounded(quantile(latencies, 0.99), 2),
        "latency_ms_max": rounded(max(latencies, default=None), 2),
        "ttft_ms_p50": rounded(quantile(ttfts, 0.5), 2),
        "ttft_ms_p99": rounded(quantile(ttfts, 0.99), 2),
        "cpu_ms_per_request": None if no_cpu or not requests else round(cpu_s / len(requests) * 1e3, 3),
        "cpu_unavailable": (no_cpu[0].cpu_unavailable or "not measured") if no_cpu else None,
    }


def _added(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def _rounded_interval(interval: tuple[float, float] | None, digits: int) -> list[float] | None:
    return None if interval is None else [round(interval[0], digits), round(interval[1], digits)]


def _throughput(b: RoundRun, c: RoundRun) -> RatioRound:
    return RatioRound(len(c.requests), c.elapsed_s, len(b.requests), b.elapsed_s)


def _cpu(b: RoundRun, c: RoundRun) -> RatioRound | None:
    if b.cpu_s is None or c.cpu_s is None:
        return None
    return RatioRound(c.cpu_s, len(c.requests), b.cpu_s, len(b.requests))


def _p99_added(pairs: Sequence[tuple[list[float], list[float]]]) -> float | None:
    """Canary p99 minus baseline p99 of the pooled successful latencies of some rounds."""
    base = quantile([ms for b, _ in pairs for ms in b], 0.99)
    canary = quantile([ms for _, c in pairs for ms in c], 0.99)
    return None if base is None or canary is None else canary - base


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 4) if known else None


def _ratio_of(rounds: Sequence[RatioRound | None]) -> float | None:
    known = [r for r in rounds if r is not None]
    return None if len(known) < len(rounds) else pooled_ratio(known)


def comparison(runs: dict[str, list[RoundRun]], schedule: str = PAIRED) -> dict[str, Any]:
    """Both configurations' figures, per round and over all rounds, their ratios and differences
    with 95 % intervals, and the verdict per target."""
    both = {name: figures(runs[name]) for name in NAMES}
    base, canary = both["baseline"], both["canary"]
    pairs = list(zip(runs["baseline"], runs["canary"], strict=True))
    throughput = [_throughput(b, c) for b, c in pairs]
    cpu = [_cpu(b, c) for b, c in pairs]
    latencies = [
        ([r.latency_ms for r in b.requests if r.ok], [r.latency_ms for r in c.requests if r.ok])
        for b, c in pairs
    ]
    rounds: list[dict[str, Any]] = []
    for index, (b_run, c_run) in enumerate(pairs):
        b, c = figures([b_run]), figures([c_run])
        rounds.append(
            {
                "round": index + 1,
                "first": None if schedule == PAIRED else NAMES[index % 2],  # None: both at once
                "baseline": {k: b[k] for k in ROUND_KEYS},
                "canary": {k: c[k] for k in ROUND_KEYS},
                "throughput_ratio": rounded(pooled_ratio([throughput[index]]), 4),
                "cpu_ratio": rounded(_ratio_of([cpu[index]]), 4),
                "p99_added_ms": _added(c["latency_ms_p99"], b["latency_ms_p99"]),
            }
        )
    ratio, cpu_ratio, p99_added = pooled_ratio(throughput), _ratio_of(cpu), _p99_added(latencies)
    intervals = {
        "throughput_ratio": bootstrap_interval(throughput, pooled_ratio),
        "cpu_ratio": None if cpu_ratio is None else bootstrap_interval(cpu, _ratio_of),
        "p99_added_ms": bootstrap_interval(latencies, _p99_added),
    }
    targets = {
        "throughput_ratio": TARGET_THROUGHPUT_RATIO,
        "cpu_ratio": TARGET_CPU_RATIO,
        "p99_added_ms": TARGET_P99_ADDED_MS,
    }
    verdicts: dict[str, Verdict] = {
        "throughput_ratio": verdict(intervals["throughput_ratio"], TARGET_THROUGHPUT_RATIO, at_least=True),
        "cpu_ratio": verdict(intervals["cpu_ratio"], TARGET_CPU_RATIO, at_least=False),
        "p99_added_ms": verdict(intervals["p99_added_ms"], TARGET_P99_ADDED_MS, at_least=False),
    }
    return {
        **both,
        "schedule": schedule,
        "cpu_ratio": rounded(cpu_ratio, 4),
        "cpu_ratio_round_median": _median([r["cpu_ratio"] for r in rounds]),
        "cpu_ratio_interval": _rounded_interval(intervals["cpu_ratio"], 4),
        "throughput_ratio": rounded(ratio, 4),
        "throughput_ratio_round_median": _median([r["throughput_ratio"] for r in rounds]),
        "throughput_ratio_interval": _rounded_interval(intervals["throughput_ratio"], 4),
        "p50_added_ms": _added(canary["latency_ms_p50"], base["latency_ms_p50"]),
        "p99_added_ms": rounded(p99_added, 2),
        "p99_added_ms_interval": _rounded_interval(intervals["p99_added_ms"], 2),
        "ttft_p50_added_ms": _added(canary["ttft_ms_p50"], base["ttft_ms_p50"]),
        "ttft_p99_added_ms": _added(canary["ttft_ms_p99"], base["ttft_ms_p99"]),
        "intervals": _intervals_note(len(pairs)),
        "rounds": rounds,
        "targets": targets,
        "meets_targets": {  # the point estimates against the targets; the verdicts weigh the intervals
            "throughput_ratio": ratio is not None and ratio >= TARGET_THROUGHPUT_RATIO,
            "cpu_ratio": cpu_ratio is not None and cpu_ratio <= TARGET_CPU_RATIO,
            "p99_added_ms": p99_added is not None and p99_added <= TARGET_P99_ADDED_MS,
        },
        "verdicts": verdicts,
    }


def workers_figures(result: dict[str, Any], workers: int, via: str = "file") -> dict[str, Any]:
    """The workers phase's per-flip rows summed up: quantiles, the target of the path the rollback
    took to the other workers (``via``: the flag file or Redis) and the verdicts: on the followers'
    own latch time (the propagation) and on the probes' end-to-end confirmation."""
    target = TARGET_PROPAGATION_MS_P99[via]
    rows = result["flips"]
    latches = [row["follower_latch_ms"] for row in rows if row.get("follower_latch_ms") is not None]
    figures: dict[str, Any] = {
        "workers": workers,
        "via": via,
        **result,
        "followers_not_latched": len(rows) - len(latches),
        "probe_rtt_ms_p50": rounded(quantile([row["probe_rtt_ms"] for row in rows], 0.5)),
        "targets": {"follower_latch_ms_p99": target, "confirmed_ms_p99": target},
        "verdicts": {},  # no interval over a handful of flips: the p99 itself, met or missed
    }
    for key, values in (
        ("propagation_ms", [row["propagation_ms"] for row in rows]),
        ("follower_latch_ms", latches),
        ("confirmed_ms", [row["confirmed_ms"] for row in rows]),
    ):
        p99 = rounded(quantile(values, 0.99))
        figures[f"{key}_p50"] = rounded(quantile(values, 0.5))
        figures[f"{key}_p99"] = p99
        figures[f"{key}_max"] = rounded(max(values, default=None))
        if key != "propagation_ms":
            figures["verdicts"][f"{key}_p99"] = verdict(
                None if p99 is None else (p99, p99), target, at_least=False
            )
    return figures


VERDICT_TEXT = {"met": "met", "missed": "MISSED", "not_resolved": "not resolved (the interval straddles it)"}


def _row(label: str, f: dict[str, Any]) -> str:
    def cell(value: float | None, digits: int = 2) -> str:
        return f"{'-' if value is None else f'{value:.{digits}f}':>9}"

    keys = ("latency_ms_p50", "latency_ms_p99", "ttft_ms_p50", "ttft_ms_p99")
    return (
        f"  {label:<10} {cell(f.get('requests_per_s'), 1)}  "
        + "  ".join(cell(f.get(k)) for k in keys)
        + f"  {cell(f.get('cpu_ms_per_request'), 3)}"
    )


def _judged(result: dict[str, Any], key: str, label: str, target: str) -> str:
    """``label VALUE [LOW, HIGH] ..., target ...: VERDICT`` for one targeted figure."""
    interval = result.get(f"{key}_interval")
    within = "" if interval is None else f" [{interval[0]}, {interval[1]}]"
    return f"  {label} {result[key]}{within}, target {target}: {VERDICT_TEXT[result['verdicts'][key]]}"


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The readable table of a ``bench proxy`` result."""
    settings, base, canary = result["settings"], result["baseline"], result["canary"]
    paired = result["schedule"] == PAIRED
    how = "both proxies at once" if paired else "one proxy after the other"
    cpu_line = _judged(result, "cpu_ratio", "CPU per request ratio", f"<= {TARGET_CPU_RATIO}")
    if result["cpu_ratio"] is None:
        why = base["cpu_unavailable"] or canary["cpu_unavailable"]
        cpu_line = f"  CPU per request: not measured ({why})"
    lines = [
        f"a LiteLLM proxy with and without the canary callback: {settings['clients']} streaming clients, "
        f"{settings['rounds']} {result['schedule']} rounds ({how}) of {settings['requests']} requests each",
        f"  {'':<10} {'req/s':>9}  {'p50 ms':>9}  {'p99 ms':>9}  {'TTFT p50':>9}  {'TTFT p99':>9}  "
        f"{'CPU ms/req':>9}",
        _row("baseline", base),
        _row("canary", canary),
        cpu_line + f" (round median {result['cpu_ratio_round_median']})",
        _judged(result, "throughput_ratio", "throughput ratio", f">= {TARGET_THROUGHPUT_RATIO}")
        + f" (round median {result['throughput_ratio_round_median']})",
        _judged(result, "p99_added_ms", "p99 added ms", f"<= {TARGET_P99_ADDED_MS:g}")
        + f" (p50 added {result['p50_added_ms']} ms)",
        f"  [intervals: {result['intervals']}]",
        f"  failed: baseline {base['failed']}, canary {canary['failed']}; served by: "
        f"baseline {base['served_by']}, canary {canary['served_by']}",
        "  per round (first, req/s baseline canary ratio, CPU ms/req baseline canary ratio, p99 added ms):",
    ]
    for r in result["rounds"]:
        b, c = r["baseline"], r["canary"]
        lines.append(
            f"    {r['round']:>2} {r['first'] or 'both':<8} "
            f"{b['requests_per_s']:>8} {c['requests_per_s']:>8} {r['throughput_ratio']!s:>7}  "
            f"{b['cpu_ms_per_request']!s:>7} {c['cpu_ms_per_request']!s:>7} {r['cpu_ratio']!s:>7}  "
            f"{r['p99_added_ms']}"
        )
    workers = result.get("workers_phase")
    if workers:
        target = workers["targets"]["confirmed_ms_p99"]
        verdicts = {key: VERDICT_TEXT[value] for key, value in workers["verdicts"].items()}
        lines += [
            f"  --num_workers {workers['workers']}: workers {workers['worker_pids']} attached; "
            f"{len(workers['flips'])} rollbacks (the other worker follows the {workers['via']}): "
            "last canary request "
            f"{workers['propagation_ms_p50']} ms p50 / {workers['propagation_ms_max']} ms max after the call",
            f"    the other worker latched {workers['follower_latch_ms_p50']} ms p50 / "
            f"{workers['follower_latch_ms_p99']} p99 / {workers['follower_latch_ms_max']} max after the "
            f"first ({workers['followers_not_latched']} flips without its latch), target p99 <= "
            f"{target:g} ms: {verdicts['follower_latch_ms_p99']}",
            f"    every worker's route probe answered stable {workers['confirmed_ms_p50']} ms p50 / "
            f"{workers['confirmed_ms_p99']} p99 / {workers['confirmed_ms_max']} max after the rollback "
            f"call began (end to end; probe round trip {workers['probe_rtt_ms_p50']} ms p50): "
            f"{verdicts['confirmed_ms_p99']}",
        ]
    return lines

"""Issue 13 §4: the incident Markdown's Verification section is readable.

Each check is its one-line summary plus a small table of rounded figures: no raw JSON objects in
cells, no 14-digit floats. The verification below is the one an offline ``drill --fault slow-ttft``
stored on landed main.
"""

from __future__ import annotations

import re
from typing import Any

from litellm_canary.response.incidents.figures import figure
from litellm_canary.response.incidents.model import Incident, Trigger
from litellm_canary.response.incidents.report import render_markdown

VERIFICATION: dict[str, Any] = {
    "baseline": {
        "error_rate": 0.0,
        "error_rate_source": "stable",
        "golden_mean": 1.0,
        "stable_failures": 0,
        "stable_requests": 26,
        "ttft_p99_ms": 93.72879369195829,
        "ttft_samples": 9,
        "ttft_slo_ms": 500.0,
    },
    "elapsed_s": 1.538,
    "error_rate": {
        "baseline_error_rate": 0.0,
        "baseline_source": "stable",
        "error_rate": 0.0,
        "failures": 0,
        "requests": 13,
        "state": "passed",
        "summary": "stable error rate 0.00% since the flip is back at baseline 0.00% "
        "(limit 5.00%; 13 requests)",
        "threshold": 0.05,
        "z_score": 0.0,
    },
    "failed_checks": [],
    "restored_service": True,
    "ttft_p99": {
        "baseline_limit_ms": 117.16099211494786,
        "baseline_p99_ms": 93.72879369195829,
        "p99_ms": 287.307999072711,
        "samples": 13,
        "slo_ms": 500.0,
        "state": "passed",
        "summary": "stable p99 TTFT 287 ms is within the SLO 500 ms",
    },
    "user_feedback": {"canary_count": 0, "canary_mean": None, "stable_count": 0, "stable_mean": None},
    "verdict": "recovered",
    "within_s": 15,
}


def _incident(verification: dict[str, Any] | None) -> Incident:
    return Incident(
        id="20261206T031416490Z-dd3866",
        model_group="drill",
        kind="automatic",
        decided_at="2026-12-06T03:14:16.490+00:00",
        trigger=Trigger(
            rule="ttft_p99",
            reason="canary TTFT p99 2040 ms > 1000 ms",
            threshold=1000.0,
            window_s=1.5,
            observed={"canary_ttft_p99_ms": 2040.2266913983715, "stable_ttft_p99_ms": 93.72879369195829},
        ),
        timeline=[],
        restored_after_ms=0.268,
        verification=verification,
        drill={"detect_s": 4.435123456789, "missed": [], "passed": True},
    )


def _section(markdown: str, heading: str) -> str:
    return markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_each_check_is_its_summary_and_a_table_of_rounded_figures() -> None:
    section = _section(render_markdown(_incident(VERIFICATION)), "Verification")
    assert "**Verdict: recovered**; service restored (checked 1.538 s after the flip, limit 15 s)." in section
    assert "### ttft_p99 — passed\n\nstable p99 TTFT 287 ms is within the SLO 500 ms\n" in section
    assert "| p99_ms | 287.3 |" in section and "| baseline_limit_ms | 117.2 |" in section
    assert "### error_rate — passed" in section and "| threshold | 0.05 |" in section
    assert "| ttft_p99_ms | 93.73 |" in section  # the baseline, a check without a summary
    assert "| canary_mean | — |" in section
    assert "{" not in section and '"' not in section  # no raw JSON
    assert "| summary |" not in section and "| state |" not in section


def test_no_long_floats_anywhere_in_the_report() -> None:
    markdown = render_markdown(_incident(VERIFICATION))
    assert not re.findall(r"\d+\.\d{5,}", markdown)
    assert "| canary_ttft_p99_ms | 2040 |" in markdown  # trigger's observed figures rounded too
    assert "| detect_s | 4.435 |" in markdown and "| passed | yes |" in markdown


def test_a_failed_verification_says_so_first() -> None:
    failed = {
        **VERIFICATION,
        "restored_service": False,
        "verdict": "not_recovered",
        "failed_checks": ["ttft_p99"],
        "note": "stable is slow too: the fault is not the canary's",
    }
    section = _section(render_markdown(_incident(failed)), "Verification")
    assert section.lstrip().startswith("**stable is slow too: the fault is not the canary's**")
    assert "service NOT restored" in section and "Failed checks: ttft_p99." in section


def test_not_verified_yet() -> None:
    assert "_Not verified yet._" in _section(render_markdown(_incident(None)), "Verification")


def test_figures_are_rounded_for_a_reader() -> None:
    assert figure(55.71982948338139) == "55.72"
    assert figure(0.0412345) == "0.04123"
    assert figure(2040.2266913983715) == "2040"
    assert figure(500.0) == "500"
    assert figure(float("nan")) == "—"
    assert figure([]) == "none" and figure(["a", 1.23456]) == "a, 1.235"

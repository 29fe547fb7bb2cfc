"""The Verification section of an incident's Markdown, rendered for a reader.

The stored verification (:mod:`litellm_canary.response.verification`) is a mapping of plain figures
(``verdict``, ``restored_service``, ``elapsed_s``, ``within_s``, ``failed_checks``) and of checks,
each a mapping with a one-line ``summary`` and a ``state`` (``error_rate``, ``ttft_p99``,
``golden``) or a bare mapping of figures (``baseline``, ``user_feedback``). Each check is shown as
its summary plus a small table of its rounded figures; no raw JSON reaches the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litellm_canary.response.incidents.figures import markdown_cell

__all__ = ["render_verification"]

_HEADLINE = ("verdict", "restored_service", "elapsed_s", "within_s", "failed_checks", "note")
_TEXT_KEYS = ("summary", "state")


def _headline(verification: Mapping[str, Any]) -> list[str]:
    verdict = verification.get("verdict")
    line = f"**Verdict: {markdown_cell(verdict)}**" if verdict is not None else "**Verdict: —**"
    restored = verification.get("restored_service")
    if restored is not None:
        line += "; service restored" if restored else "; service NOT restored"
    elapsed, within = verification.get("elapsed_s"), verification.get("within_s")
    if elapsed is not None:
        line += f" (checked {markdown_cell(elapsed)} s after the flip"
        line += f", limit {markdown_cell(within)} s)" if within is not None else ")"
    line += "."
    lines = [line]
    failed = verification.get("failed_checks")
    if failed:
        lines += ["", f"Failed checks: {markdown_cell(failed)}."]
    return lines


def _figures_table(figures: Mapping[str, Any]) -> list[str]:
    rows = [(key, value) for key, value in sorted(figures.items()) if key not in _TEXT_KEYS]
    if not rows:
        return []
    return ["| figure | value |", "|---|---:|", *(f"| {k} | {markdown_cell(v)} |" for k, v in rows)]


def _check(name: str, check: Mapping[str, Any]) -> list[str]:
    state = check.get("state")
    lines = [f"### {name}" + (f" — {state}" if state else ""), ""]
    if check.get("summary"):
        lines += [markdown_cell(check["summary"]), ""]
    table = _figures_table(check)
    return lines + ([*table, ""] if table else [])


def render_verification(verification: Mapping[str, Any] | None) -> list[str]:
    """The Markdown lines under ``## Verification`` (without the heading)."""
    if not verification:
        return ["_Not verified yet._"]
    lines: list[str] = []
    if verification.get("restored_service") is False:
        note = verification.get("note") or "The rollback did not restore service."
        lines += [f"**{markdown_cell(note)}**", ""]
    lines += [*_headline(verification), ""]
    checks = {k: v for k, v in verification.items() if isinstance(v, Mapping)}
    others = {k: v for k, v in verification.items() if k not in checks and k not in _HEADLINE}
    for name in sorted(checks, key=lambda n: ("summary" not in checks[n], n)):
        lines += _check(name, checks[name])
    if others:
        lines += ["### other figures", "", *_figures_table(others), ""]
    while lines and lines[-1] == "":
        lines.pop()
    return lines

"""``litellm-canary incidents list|show|annotate`` with --dir or --config; unknown ids exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from litellm_canary import cli
from litellm_canary.core.pins import InFlightAtFlip
from litellm_canary.core.rollback_record import RollbackRecord
from litellm_canary.response.incidents import IncidentStore, incident_from_record


def _incident(directory: Path, group: str = "chat", at: str = "2026-11-27T01:00:00.000+00:00") -> str:
    record = RollbackRecord(
        model_group=group,
        kind="automatic",
        reason="canary error rate 40% above 2% (token=hunter2secret)",
        cause={"rule": "error_rate", "summary": "canary error rate 40% above 2%", "threshold": 0.02},
        decided_at=at,
        decided_mono=10.0,
        latched_mono=10.00001,
        in_flight_at_flip={"canary": 1, "stable": 2},
        canary_attempts=InFlightAtFlip({1}, completed=1),
        flag_store="memory",
    )
    return IncidentStore(directory).write(incident_from_record(record)).id


def test_list_show_annotate_with_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    older = _incident(tmp_path, at="2026-11-27T01:00:00.000+00:00")
    newer = _incident(tmp_path, group="embed", at="2026-11-27T02:00:00.000+00:00")
    assert cli.main(["incidents", "list", "--dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [newer, older]
    assert "error_rate" in lines[0] and "open" in lines[0]

    assert cli.main(["incidents", "show", older, "--dir", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"# Incident {older}") and "hunter2secret" not in shown

    assert (
        cli.main(
            [
                "incidents",
                "annotate",
                older,
                "--dir",
                str(tmp_path),
                "--cause",
                "bad build",
                "--change",
                "canary the tokenizer too",
            ]
        )
        == 0
    )
    assert f"annotated incident {older}" in capsys.readouterr().out
    incident = IncidentStore(tmp_path).get(older)
    assert (incident.actual_cause, incident.what_would_change) == ("bad build", "canary the tokenizer too")
    assert "canary the tokenizer too" in (tmp_path / f"{older}.md").read_text()

    assert cli.main(["incidents", "list", "--dir", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(i["id"], i["annotated"]) for i in listed] == [(newer, False), (older, True)]
    assert cli.main(["incidents", "show", newer, "--dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model_group"] == "embed"


def test_config_gives_the_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "incidents"
    directory.mkdir()
    incident_id = _incident(directory)
    config = tmp_path / "canary.json"
    rollout = {"model_group": "chat", "stable": ["s"], "canary": ["c"], "flag_key": "f"}
    config.write_text(json.dumps({"rollouts": [rollout], "incidents": {"dir": str(directory)}}))
    assert cli.main(["incidents", "list", "--config", str(config)]) == 0
    assert incident_id in capsys.readouterr().out
    no_incidents = tmp_path / "plain.json"
    no_incidents.write_text(json.dumps({"rollouts": [rollout]}))
    assert cli.main(["incidents", "list", "--config", str(no_incidents)]) == 2
    assert "no 'incidents: {dir: ...}' configured" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["incidents", "show", "20260101T000000000Z-abcdef"], "no incident '20260101T000000000Z-abcdef' in"),
        (["incidents", "show", "../etc/passwd"], "not an incident id"),
        (
            ["incidents", "annotate", "20260101T000000000Z-abcdef", "--cause", "x", "--change", "y"],
            "no incident",
        ),
        (["incidents", "annotate", "{id}", "--cause", " ", "--change", "y"], "must not be blank"),
    ],
)
def test_unknown_ids_and_bad_input_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    incident_id = _incident(tmp_path)
    argv = [a.replace("{id}", incident_id) for a in argv] + ["--dir", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("litellm-canary: ") and message in err
    assert IncidentStore(tmp_path).get(incident_id).actual_cause == ""  # nothing half-applied


def test_where_the_incidents_are_must_be_given_and_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["incidents", "list"]) == 2
    assert "--dir DIR or --config FILE" in capsys.readouterr().err
    assert cli.main(["incidents", "list", "--dir", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err

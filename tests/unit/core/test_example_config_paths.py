"""Issue 13 §3 items 3 and 8: the proxy example has an incidents directory and no hard-coded /tmp.

Relative ``flag_store.path`` and ``incidents.dir`` in a config file mean "next to this file", so the
proxy and the CLI find the same files whatever directory each was started from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from litellm_canary import cli
from litellm_canary.core.config import load_config_file
from litellm_canary.integrations.gateway import load_gateway_config
from tests.support import REPO

EXAMPLE = REPO / "examples" / "proxy" / "config.yaml"


def test_the_example_keeps_its_state_next_to_it_not_in_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "/tmp" not in EXAMPLE.read_text()
    monkeypatch.chdir(tmp_path)  # another working directory: the same files
    config = load_config_file(EXAMPLE)
    assert (
        config.flag_store is not None and config.flag_store.path == EXAMPLE.parent / ".state" / "flags.json"
    )
    assert config.incidents is not None and config.incidents.dir == EXAMPLE.parent / ".state" / "incidents"
    assert load_gateway_config(EXAMPLE).canary.incidents == config.incidents


def test_incidents_list_works_on_a_config_before_the_first_rollback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "canary.yaml"
    config.write_text(
        "rollouts: [{model_group: chat, stable: [s], canary: [c], flag_key: chat}]\n"
        "incidents: {dir: incidents}\n"
    )
    assert cli.main(["incidents", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().err.startswith(f"no incidents yet: {tmp_path / 'incidents'}")
    assert cli.main(["incidents", "list", "--config", str(config), "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"
    assert cli.main(["incidents", "list", "--config", str(EXAMPLE)]) == 0  # the example has incidents


def test_relative_paths_resolve_next_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "canary.yaml"
    path.write_text(
        "rollouts: [{model_group: chat, stable: [s], canary: [c], flag_key: chat}]\n"
        "flag_store: {kind: flagd_file, path: state/flags.json}\n"
        "incidents: {dir: state/incidents}\n"
    )
    monkeypatch.chdir(tmp_path)
    config = load_config_file(path)
    assert config.flag_store is not None and config.flag_store.path == folder / "state" / "flags.json"
    assert config.incidents is not None and config.incidents.dir == folder / "state" / "incidents"
    absolute = tmp_path / "abs.json"
    path.write_text(
        "rollouts: [{model_group: chat, stable: [s], canary: [c], flag_key: chat}]\n"
        f"flag_store: {{kind: flagd_file, path: {absolute}}}\n"
    )
    config = load_config_file(path)
    assert config.flag_store is not None and config.flag_store.path == absolute

"""Issue 13 §3 item 5: a YAML syntax error names its line and column, not only the parser's context."""

from __future__ import annotations

from pathlib import Path

import pytest

from litellm_canary.core.config import ConfigError, load_config_file
from litellm_canary.integrations.gateway import load_gateway_config

BROKEN = "litellm_canary:\n  rollouts:\n    chat: {stable: [a], canary: [b]\n  other: 1\n"


def test_canary_config_yaml_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "canary.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError) as raised:
        load_config_file(path)
    message = str(raised.value)
    assert str(path) in message
    assert "is not valid YAML: line 4, column 3:" in message


def test_gateway_config_yaml_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError, match=r"is not valid YAML: line 4, column 3: "):
        load_gateway_config(path)


def test_json_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "canary.json"
    path.write_text('{\n  "rollouts": {,}\n}\n')
    with pytest.raises(ConfigError, match=r"is not valid JSON: line 2, column 16: "):
        load_config_file(path)

"""The config and flags packages: every re-exported name resolves, and they import nothing outside core."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import litellm_canary.core.config as config_package
import litellm_canary.core.flags as flags_package


@pytest.mark.parametrize("package", [config_package, flags_package])
def test_every_exported_name_resolves(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert names and all(getattr(package, name, None) is not None for name in names)


@pytest.mark.parametrize("package", [config_package, flags_package])
def test_the_modules_import_only_the_core_and_stay_small(package: object) -> None:
    folder = Path(package.__file__).parent  # type: ignore[attr-defined]
    for file in folder.glob("*.py"):
        source = file.read_text()
        assert len(source.splitlines()) <= 400, file.name
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("litellm_canary"):
                assert node.module.startswith("litellm_canary.core."), (file.name, node.module)
                importlib.import_module(node.module)

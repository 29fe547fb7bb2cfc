"""The package's shape, pinned: the public surface, layers that point inward, no import circles,
small modules. A change that breaks one of these is an architecture change: make it on purpose."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import litellm_canary

PACKAGE = Path(litellm_canary.__file__).parent
MAX_LINES = 420  # "about 400"

PUBLIC = [
    "Canary",
    "CanaryConfig",
    "ConfigError",
    "Decision",
    "Outcome",
    "RollbackRecord",
    "RolledBackError",
    "Side",
    "UnknownModelGroup",
    "attach",
    "load_config_file",
    "parse_config",
]

# Public paths that users name in config files, commands and imports (the README shows each).
PUBLIC_PATHS = [
    ("litellm_canary.proxy", "canary"),
    ("litellm_canary.webhook", "create_app"),
    ("litellm_canary.metrics", "CanaryMetrics"),
    ("litellm_canary.fake_upstream", "FakeUpstream"),
    ("litellm_canary.evals", "exact_match"),
    ("litellm_canary.cli", "main"),
]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every package module ``name`` imports, typing-only and function-level imports included."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                ).strip(".")
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_the_public_surface_is_pinned() -> None:
    assert sorted(litellm_canary.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(litellm_canary, name) is not None


@pytest.mark.parametrize(("module", "name"), PUBLIC_PATHS)
def test_public_paths_keep_working(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is not None


def test_python_m_fake_upstream_still_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "litellm_canary.fake_upstream", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_core_imports_no_outer_layer() -> None:
    modules = _modules()
    for name, path in modules.items():
        if name.startswith("litellm_canary.core"):
            outer = {m for m in _imports(name, path, modules) if not m.startswith("litellm_canary.core")}
            assert outer <= {"litellm_canary"}, (name, outer)


def test_no_import_circles_among_the_package_modules() -> None:
    modules = _modules()
    # The package root only re-exports (lazily for the Router glue); it is not a dependency edge.
    graph = {
        name: _imports(name, path, modules) - {"litellm_canary"}
        for name, path in modules.items()
        if name != "litellm_canary"
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_module_is_over_about_400_lines() -> None:
    big = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not big, big


def test_every_module_says_what_it_owns() -> None:
    for name, path in _modules().items():
        assert ast.get_docstring(ast.parse(path.read_text())), f"{name} has no docstring"

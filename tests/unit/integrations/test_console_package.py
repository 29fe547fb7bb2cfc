"""The console's static files are package data: a wheel install serves the same page."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest

from litellm_canary.integrations.console.routes import PUBLIC_PATHS

FILES = ("console.html", "console.js", "console.css")


@pytest.mark.parametrize("name", FILES)
def test_each_static_file_is_in_the_package_and_declared_as_package_data(name: str) -> None:
    assert resources.files("litellm_canary.integrations.console").joinpath(name).read_text().strip()
    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["litellm_canary.integrations.console"]
    assert f"*{Path(name).suffix}" in globs


def test_only_the_page_and_its_two_files_are_public() -> None:
    assert {"/console", "/console/", "/console/console.js", "/console/console.css"} == PUBLIC_PATHS


def test_the_page_loads_nothing_from_elsewhere() -> None:
    console = resources.files("litellm_canary.integrations.console")
    for name in FILES:
        text = console.joinpath(name).read_text().replace('"http://www.w3.org/2000/svg"', "")  # a name
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
    assert "innerHTML" not in console.joinpath("console.js").read_text()  # server text is never HTML

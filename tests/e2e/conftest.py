"""Every test under tests/e2e runs real processes (proxy, gateway, Prometheus, Alertmanager, Redis)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.e2e)

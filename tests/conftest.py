"""Shared fixtures: offline LiteLLM, a fresh OpenFeature API per test, Routers with mocked upstreams."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

from collections.abc import Iterator

import litellm
import pytest
from openfeature import api


@pytest.fixture(autouse=True)
def _clean_global_state() -> Iterator[None]:
    """OpenFeature providers and litellm callbacks are process-global: reset them around each test."""
    lists = [
        litellm.callbacks,
        litellm.success_callback,
        litellm.failure_callback,
        litellm._async_success_callback,
        litellm._async_failure_callback,
    ]
    saved = [list(callbacks) for callbacks in lists]
    yield
    for callbacks, before in zip(lists, saved, strict=True):
        callbacks[:] = before
    api.clear_providers()
    api.clear_hooks()

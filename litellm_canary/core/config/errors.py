"""The one error of the configuration: :class:`ConfigError`, raised for anything unusable."""

from __future__ import annotations


class ConfigError(ValueError):
    """A canary configuration that cannot be used; the message names the field and the value."""

"""litellm-canary: canary releases of LiteLLM deployments behind an OpenFeature flag.

    canary = litellm_canary.attach(router, config)
    canary.rollback("chat", reason="error rate")   # every new request goes to stable, now

The Router glue (and with it ``litellm``) is imported on first use, so the command line and the
config tools start fast and never load LiteLLM's model cost map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litellm_canary.core.config import CanaryConfig, ConfigError, load_config_file, parse_config
from litellm_canary.core.controller import RolledBackError, UnknownModelGroup
from litellm_canary.core.decision import Decision, Side
from litellm_canary.core.outcomes import Outcome
from litellm_canary.core.rollback_record import RollbackRecord

if TYPE_CHECKING:
    from litellm_canary.canary import Canary, attach

__all__ = [
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


def __getattr__(name: str) -> Any:
    if name in ("Canary", "attach"):
        from litellm_canary import canary

        return getattr(canary, name)
    raise AttributeError(f"module 'litellm_canary' has no attribute {name!r}")

"""litellm-canary: canary releases of LiteLLM deployments behind an OpenFeature flag.

canary = litellm_canary.attach(router, config)
canary.rollback("chat", reason="error rate")   # every new request goes to stable, now
"""

from litellm_canary.canary import Canary, attach
from litellm_canary.config import CanaryConfig, ConfigError, load_config_file, parse_config
from litellm_canary.controller import UnknownModelGroup
from litellm_canary.decision import Side

__all__ = [
    "Canary",
    "CanaryConfig",
    "ConfigError",
    "Side",
    "UnknownModelGroup",
    "attach",
    "load_config_file",
    "parse_config",
]

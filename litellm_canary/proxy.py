"""The LiteLLM proxy entry point (``litellm_settings.callbacks: ["litellm_canary.proxy.canary"]``).

The code lives in :mod:`litellm_canary.integrations.proxy`; this module keeps the public path.
"""

from litellm_canary.integrations.proxy import (
    ATTACH_RETRY_S as ATTACH_RETRY_S,
)
from litellm_canary.integrations.proxy import (
    CONFIG_ENV as CONFIG_ENV,
)
from litellm_canary.integrations.proxy import (
    ProxyCanary as ProxyCanary,
)
from litellm_canary.integrations.proxy import (
    SideOverrideRefused as SideOverrideRefused,
)
from litellm_canary.integrations.proxy import (
    canary as canary,
)
from litellm_canary.integrations.proxy import (
    key_digest as key_digest,
)
from litellm_canary.integrations.proxy import (
    managed_group_of as managed_group_of,
)
from litellm_canary.integrations.proxy import (
    neutralise as neutralise,
)

"""Public path of the admin API and Alertmanager webhook: ``litellm_canary.webhook.create_app``.

The code lives in :mod:`litellm_canary.integrations.admin_api`; this module keeps the public path.
"""

from litellm_canary.integrations.admin_api import (
    TOKEN_ENV as TOKEN_ENV,
)
from litellm_canary.integrations.admin_api import (
    AlertmanagerAlert as AlertmanagerAlert,
)
from litellm_canary.integrations.admin_api import (
    AlertmanagerPayload as AlertmanagerPayload,
)
from litellm_canary.integrations.admin_api import (
    AlertResult as AlertResult,
)
from litellm_canary.integrations.admin_api import (
    create_app as create_app,
)

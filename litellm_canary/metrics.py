"""Public path of the Prometheus metrics: ``litellm_canary.metrics.CanaryMetrics``.

The code lives in :mod:`litellm_canary.integrations.metrics`; this module keeps the public path.
"""

from litellm_canary.integrations.metrics import (
    LATENCY_BUCKETS as LATENCY_BUCKETS,
)
from litellm_canary.integrations.metrics import (
    OTHER as OTHER,
)
from litellm_canary.integrations.metrics import (
    OUTCOMES as OUTCOMES,
)
from litellm_canary.integrations.metrics import (
    ROLLBACK_BUCKETS as ROLLBACK_BUCKETS,
)
from litellm_canary.integrations.metrics import (
    ASGIApp as ASGIApp,
)
from litellm_canary.integrations.metrics import (
    CanaryMetrics as CanaryMetrics,
)
from litellm_canary.integrations.metrics import (
    serve_metrics as serve_metrics,
)

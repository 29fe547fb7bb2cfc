"""Public path of the fake upstream: ``python -m litellm_canary.fake_upstream``.

The code lives in :mod:`litellm_canary.testing.fake_upstream`; this module keeps the public path.
"""

from litellm_canary.testing.fake_upstream import (
    ENDPOINTS as ENDPOINTS,
)
from litellm_canary.testing.fake_upstream import (
    HOST as HOST,
)
from litellm_canary.testing.fake_upstream import (
    Endpoint as Endpoint,
)
from litellm_canary.testing.fake_upstream import (
    FakeUpstream as FakeUpstream,
)
from litellm_canary.testing.fake_upstream import (
    Faults as Faults,
)
from litellm_canary.testing.fake_upstream import (
    MidStreamMode as MidStreamMode,
)
from litellm_canary.testing.fake_upstream import (
    RecordedRequest as RecordedRequest,
)
from litellm_canary.testing.fake_upstream import (
    UpstreamStats as UpstreamStats,
)
from litellm_canary.testing.fake_upstream import (
    main as main,
)

if __name__ == "__main__":
    main()

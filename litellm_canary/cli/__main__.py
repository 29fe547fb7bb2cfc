"""``python -m litellm_canary.cli``: the ``litellm-canary`` command."""

from __future__ import annotations

import sys

from litellm_canary.cli.dispatch import main

sys.exit(main())

"""Reading the canary flag per request, and the flag stores that write it.

Modules: ``reader`` (the per-request read and the stickiness key), ``health`` (the provider's
events and status), ``breaker`` (the read-time breaker and its background probe), ``log_limit``
(rate-limited logging, the flagd log filter), ``definitions`` (flagd flag definitions and the
:class:`FlagStore` protocol), ``memory`` (the in-process provider and store), ``flagd_file`` (the
flagd file store and its provider), ``validation`` (checking a flagd file). Import the names from here.

The stores write the flag in flagd's flag-definition format, so a percentage rollout means the same
thing in the in-process memory store and in a flagd file shared by several processes.
"""

from litellm_canary.core.flags.breaker import BREAKER_OPEN, ReadBreaker, ReadBreakers
from litellm_canary.core.flags.definitions import FlagStore, flag_definition
from litellm_canary.core.flags.flagd_file import FlagdFileStore, flagd_file_provider
from litellm_canary.core.flags.health import PROVIDER_ERROR, PROVIDER_STALE, ProviderHealth
from litellm_canary.core.flags.log_limit import (
    RateLimitedLogFilter,
    provider_log_filter,
    quiet_flagd_logs,
)
from litellm_canary.core.flags.memory import MemoryFlagProvider, MemoryFlagStore
from litellm_canary.core.flags.reader import FlagRead, FlagReader, targeting_key
from litellm_canary.core.flags.validation import validate_flagd_file

__all__ = [
    "BREAKER_OPEN",
    "PROVIDER_ERROR",
    "PROVIDER_STALE",
    "FlagRead",
    "FlagReader",
    "FlagStore",
    "FlagdFileStore",
    "MemoryFlagProvider",
    "MemoryFlagStore",
    "ProviderHealth",
    "RateLimitedLogFilter",
    "ReadBreaker",
    "ReadBreakers",
    "flag_definition",
    "flagd_file_provider",
    "provider_log_filter",
    "quiet_flagd_logs",
    "targeting_key",
    "validate_flagd_file",
]

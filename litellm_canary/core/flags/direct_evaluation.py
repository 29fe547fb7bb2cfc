"""Evaluating a flag at the provider itself when the OpenFeature client would add nothing to it.

A flag read through ``OpenFeatureClient.evaluate_flag_details`` builds a hook context per hook,
merges four evaluation contexts, reads two metadata objects and runs four hook stages around the
provider's ``resolve_*_details``. With no hook anywhere (API, client, provider) and no API,
transaction or client evaluation context, all of that adds nothing to the answer, yet it was most
of the canary's flag read (measured inside a LiteLLM request: most of ~120 µs of CPU).
:func:`evaluate` then asks the provider directly and applies the same rules as the SDK: the
provider's status (NOT_READY, FATAL), its error codes and exceptions, the value's type check, and
the default value on any error. As soon as an application adds a hook or a context, every read
goes through the SDK again, so hooks always see every evaluation. ``tests/unit/core/
test_direct_evaluation.py`` checks the answers against the SDK's for the providers we ship.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode, OpenFeatureError
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagResolutionDetails, FlagType, Reason
from openfeature.provider import FeatureProvider, ProviderStatus

__all__ = ["evaluate"]

_TYPES: dict[FlagType, type | tuple[type, ...]] = {FlagType.STRING: str, FlagType.BOOLEAN: bool}
_STATUS_ERRORS = {
    ProviderStatus.NOT_READY: ErrorCode.PROVIDER_NOT_READY,
    ProviderStatus.FATAL: ErrorCode.PROVIDER_FATAL,
}


def evaluate(
    client: OpenFeatureClient,
    flag_type: FlagType,
    flag_key: str,
    default_value: Any,
    context: EvaluationContext,
) -> FlagEvaluationDetails[Any]:
    """What ``client.evaluate_flag_details`` answers (string and boolean flags), without its
    hook machinery when nothing could observe the difference."""
    provider = client.provider
    if flag_type not in _TYPES or _sdk_adds_something(client, provider):
        return client.evaluate_flag_details(flag_type, flag_key, default_value, context)
    status_error = _STATUS_ERRORS.get(client.get_provider_status())
    if status_error is not None:
        return _error(flag_key, default_value, status_error, None)
    try:
        resolution: FlagResolutionDetails[Any] = _resolver(provider, flag_type)(
            flag_key=flag_key, default_value=default_value, evaluation_context=context
        )
    except OpenFeatureError as error:
        return _error(flag_key, default_value, error.error_code, error.error_message)
    except Exception as error:  # the SDK answers GENERAL for anything a provider raises
        return _error(flag_key, default_value, ErrorCode.GENERAL, getattr(error, "error_message", str(error)))
    if resolution.error_code:
        details = resolution.to_flag_evaluation_details(flag_key)
        details.value = default_value
        return details
    if not isinstance(resolution.value, _TYPES[flag_type]):
        return _error(
            flag_key,
            default_value,
            ErrorCode.TYPE_MISMATCH,
            f"Expected type {_TYPES[flag_type]} but got {type(resolution.value)}",
        )
    return resolution.to_flag_evaluation_details(flag_key)


def _sdk_adds_something(client: OpenFeatureClient, provider: FeatureProvider) -> bool:
    return bool(
        api.get_hooks()
        or client.hooks
        or provider.get_provider_hooks()
        or _carries(client.context)
        or _carries(api.get_evaluation_context())
        or _carries(api.get_transaction_context())
    )


def _carries(context: EvaluationContext) -> bool:
    return context.targeting_key is not None or bool(context.attributes)


def _resolver(provider: FeatureProvider, flag_type: FlagType) -> Callable[..., FlagResolutionDetails[Any]]:
    if flag_type is FlagType.BOOLEAN:
        return provider.resolve_boolean_details
    return provider.resolve_string_details


def _error(
    flag_key: str, default_value: Any, code: ErrorCode, message: str | None
) -> FlagEvaluationDetails[Any]:
    return FlagEvaluationDetails(
        flag_key=flag_key, value=default_value, reason=Reason.ERROR, error_code=code, error_message=message
    )

"""A fault-injecting, OpenAI-compatible HTTP server on 127.0.0.1 for tests, benchmarks and drills.

This package owns :class:`FakeUpstream` (one Starlette app served by uvicorn in a background thread,
bound to ``127.0.0.1`` only), the :class:`Faults` it can inject, and the counters it keeps; one module
per concept: ``faults``, ``counters``, ``openai_payloads`` (what the endpoints answer), ``streaming``,
``server`` (the uvicorn thread), ``upstream`` (:class:`FakeUpstream`), ``command`` (``main``).
Starlette and uvicorn are the ``server`` extra: they are imported here, so only code that imports
this package needs them. It never configures logging; uvicorn's records go to the ``uvicorn.*``
loggers as usual, except the tracebacks of streams it cuts on purpose, which a filter on
``uvicorn.error`` drops.

Endpoints (all under ``/v1``)::

    POST /v1/chat/completions   JSON, or SSE when ``"stream": true`` (ends with ``data: [DONE]``)
    POST /v1/responses          Responses API JSON, or its SSE event stream when ``"stream": true``
    POST /v1/embeddings         deterministic small unit vectors (``float`` or ``base64`` encoding)
    GET  /v1/models             a one-entry model list

Control plane (not counted as requests, never faulted)::

    GET  /_control/stats        counters plus the current faults
    GET  /_control/faults       the current faults
    POST /_control/faults       replace the faults (JSON object of Faults fields; ``?merge=true`` merges)
    POST /_control/release      release held streams (see ``Faults.hold_stream``)
    POST /_control/reset        clear faults and counters

Faults apply to every ``/v1`` request. Each request takes a snapshot of the faults when it arrives, so
changing them affects the next requests, never ones already in flight. Requests are numbered from 1 in
arrival order (``Faults.fail_nth`` refers to those numbers). For a request the order is: ``hang`` ->
``latency_s`` -> injected error (``fail_nth`` / ``error_rate``) -> answer. For a stream, after the
headers: ``first_token_delay_s`` -> chunks separated by ``chunk_delay_s``, where the stream may be held
(``hold_stream``) or cut (``fail_mid_stream_after``) at a content-chunk boundary.

Waiting is event-driven: ``start()`` returns once uvicorn has started, ``wait_until`` /
``async_wait_until`` / ``wait_for_in_flight`` are woken by counter changes, and every injected delay is
cut short by ``stop()``, so ``stop()`` returns promptly even with hanging or held requests.
"""

from litellm_canary.testing.fake_upstream.command import main
from litellm_canary.testing.fake_upstream.counters import ENDPOINTS, Endpoint, RecordedRequest, UpstreamStats
from litellm_canary.testing.fake_upstream.faults import Faults, MidStreamMode
from litellm_canary.testing.fake_upstream.server import HOST
from litellm_canary.testing.fake_upstream.upstream import FakeUpstream

__all__ = [
    "ENDPOINTS",
    "HOST",
    "Endpoint",
    "FakeUpstream",
    "Faults",
    "MidStreamMode",
    "RecordedRequest",
    "UpstreamStats",
    "main",
]

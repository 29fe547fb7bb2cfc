"""``litellm-canary bench``'s measurements, shipped with the package so anyone can rerun them.

* :mod:`.switch`: how fast a rollback takes effect under streaming load and what happens to the
  streams in flight (setup in :mod:`.switch_setup`, figures in :mod:`.switch_report`)
* :mod:`.overhead`: what attaching a canary costs one request on the Router's hot path
* :mod:`.report`: quantiles, the p50/p99/max table and the one-line JSON output

The upstream LLMs are faked (bundled ``FakeUpstream`` servers or LiteLLM's ``mock_response``);
everything else (Router, canary, flag store) is the real thing.
"""

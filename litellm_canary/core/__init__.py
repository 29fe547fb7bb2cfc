"""The request path: configuration, the per-request decision, flags, pins, outcomes, the rollback
controller and the LiteLLM glue. It knows nothing of HTTP, Prometheus or the command line."""

"""The canary's faces to the outside: the admin API and Alertmanager webhook, Prometheus metrics and
alert rules, the standalone gateway, the Redis broadcast and the LiteLLM proxy glue."""

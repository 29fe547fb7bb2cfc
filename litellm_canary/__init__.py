"""litellm-canary: canary releases of LiteLLM deployments behind an OpenFeature flag."""

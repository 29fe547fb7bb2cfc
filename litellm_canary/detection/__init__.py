"""Detecting a bad canary: outcome windows, the trigger rules and the loop that evaluates them,
evals (scorers, the sequential test, sampling), golden sets and user feedback."""

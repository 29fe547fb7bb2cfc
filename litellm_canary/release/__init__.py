"""The release around the canary: the canary window (its start, end and promotion) and keeping
stable warm."""

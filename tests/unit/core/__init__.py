"""Tests: unit/core."""

"""Tests: unit/response."""

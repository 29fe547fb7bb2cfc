"""Tests: unit/testing."""

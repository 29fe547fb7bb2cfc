"""Tests: unit/release."""

"""Tests: unit/detection."""

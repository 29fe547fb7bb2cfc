"""Tests: unit/integrations."""

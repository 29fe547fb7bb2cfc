"""Test rigs and helpers shared by the unit, integration and e2e tests."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

"""Test and benchmark support shipped with the package: the fault-injecting fake upstream."""

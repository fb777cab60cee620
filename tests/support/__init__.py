"""Test support code shared by the test modules (not shipped with the package)."""

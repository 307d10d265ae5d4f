"""Test support shared by tests/localcloud, tests/e2e and bench/ (import as ``tests.support``)."""

"""User CLI: python -m cli --help."""

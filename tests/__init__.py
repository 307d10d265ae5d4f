"""The repository's tests. A regular package so that ``tests.support`` wins over any ``tests`` package a
third-party distribution leaves in site-packages (one does in .venv)."""

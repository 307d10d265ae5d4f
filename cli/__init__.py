"""User CLI: python -m cli --help.

Job-name patterns and artifact names come from ``dogclf.contract`` (standard library only), in the
repository's training/ directory.
"""

"""Fault injection: the typed spec and the S3 proxy that injects throttling and timeouts."""

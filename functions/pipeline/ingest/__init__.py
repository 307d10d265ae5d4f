"""Streaming ingest of a dataset zip from S3 into ``datasets/<dataset-id>/`` (see ingest.service)."""

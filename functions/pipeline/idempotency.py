"""Powertools Idempotency backed by the stack's DynamoDB table, shared by every function that starts
or changes something: a duplicate S3 or EventBridge delivery returns the first call's result."""

from __future__ import annotations

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

from pipeline.adapters.aws import client
from pipeline.settings import Settings

# Long enough to cover S3/EventBridge redeliveries and Lambda's async retries (up to 6 hours).
RECORD_TTL_SECONDS = 7 * 24 * 3600


def persistence_layer(settings: Settings) -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=client("dynamodb"))


def idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(raise_on_no_idempotency_key=True, expires_after_seconds=RECORD_TTL_SECONDS)

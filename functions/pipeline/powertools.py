"""What every function shares from Powertools: Logger, Tracer, Metrics and the idempotency store.

Created at import, i.e. in Lambda's init phase: that is the phase Lambda runs once per sandbox,
overlaps with nothing billed per request and, with SnapStart, snapshots. The service name comes from
POWERTOOLS_SERVICE_NAME, the metrics namespace from POWERTOOLS_METRICS_NAMESPACE (template.yaml).

Every handler has the same shape (pipeline/handlers/*.py):

    settings = IngestFunctionSettings.from_env()       # env -> this function's typed model, at init
    store = S3Store()                                  # adapters (module-level boto3 clients)
    persistence_store = idempotency_store(settings)
    config = idempotency_config()

    @idempotent_function(data_keyword_argument="x", persistence_store=persistence_store, config=config)
    def do_once(x: dict) -> dict: ...                  # one call into the logic

    @logger.inject_lambda_context
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    @event_source(data_class=S3Event)                  # or @event_parser(model=..., envelope=...)
    def handler(event, context):
        config.register_lambda_context(context)
        return do_once(x=...)
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

from pipeline.adapters.aws import client
from pipeline.settings import IdempotencySettings

# Long enough to cover S3/EventBridge redeliveries and Lambda's async retries (up to 6 hours).
RECORD_TTL_SECONDS = 7 * 24 * 3600
# The only library the functions call that X-Ray can trace: every AWS API call goes through botocore.
# (patch_all would also wrap http.client, sqlite3, ... for nothing.)
TRACED_MODULES = ("botocore",)

logger = Logger()
tracer = Tracer(patch_modules=TRACED_MODULES)
# The template sets POWERTOOLS_METRICS_NAMESPACE; the fallback keeps a bare import (tools, tests) working.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "DogBreedPipeline"))


def idempotency_store(settings: IdempotencySettings) -> DynamoDBPersistenceLayer:
    """The stack's idempotency table: a duplicate S3/EventBridge delivery returns the first result."""
    return DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=client("dynamodb"))


def idempotency_config() -> IdempotencyConfig:
    """One per handler module. The handler calls ``register_lambda_context(context)`` on it, so an
    in-progress record expires at the invocation's deadline: a crashed (killed) attempt does not
    block Lambda's retry for longer than it could have run."""
    return IdempotencyConfig(raise_on_no_idempotency_key=True, expires_after_seconds=RECORD_TTL_SECONDS)

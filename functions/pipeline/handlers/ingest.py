"""S3 ObjectCreated uploads/*.zip -> stream the dataset into datasets/<id>/ (pipeline.ingest.service)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.events import s3_objects
from pipeline.ingest.service import Upload, ingest_upload
from pipeline.powertools import idempotency_config, idempotency_store, logger, metrics, tracer
from pipeline.settings import IngestFunctionSettings

settings = IngestFunctionSettings.from_env()
store = S3Store()
notifier = Notifier(settings.notification_topic_arn)
config = idempotency_config()


@idempotent_function(
    data_keyword_argument="upload", persistence_store=idempotency_store(settings), config=config
)
def ingest_once(upload: dict[str, Any]) -> dict[str, Any]:
    report = ingest_upload(Upload(**upload), settings, store, notifier)
    metrics.add_metric(name=f"Datasets{report['status'].capitalize()}", unit=MetricUnit.Count, value=1)
    return report


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=S3Event)
def handler(event: S3Event, context: LambdaContext) -> list[dict[str, Any]]:
    config.register_lambda_context(context)
    return [ingest_once(upload=upload) for upload in s3_objects(event)]

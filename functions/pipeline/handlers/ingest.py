"""S3 ObjectCreated uploads/*.zip -> stream the dataset into datasets/<id>/ (pipeline.ingest.service)."""

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.idempotency import idempotency_config, persistence_layer
from pipeline.ingest.service import Upload, ingest_upload
from pipeline.observability import logger, metrics, tracer
from pipeline.settings import get_settings

settings = get_settings()
config = idempotency_config()


@idempotent_function(
    data_keyword_argument="upload", persistence_store=persistence_layer(settings), config=config
)
def ingest_once(upload: dict[str, Any]) -> dict[str, Any]:
    report = ingest_upload(Upload(**upload), settings, S3Store(), Notifier(settings.notification_topic_arn))
    metrics.add_metric(name=f"Datasets{report['status'].capitalize()}", unit=MetricUnit.Count, value=1)
    return report


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=S3Event)
def handler(event: S3Event, context: LambdaContext) -> list[dict[str, Any]]:
    config.register_lambda_context(context)
    return [
        ingest_once(
            upload={
                "bucket": record.s3.bucket.name,
                "key": unquote_plus(record.s3.get_object.key),  # S3 event keys are URL-encoded
                "etag": record.s3.get_object.etag or "",
                "version_id": record.s3.get_object.version_id,
            }
        )
        for record in event.records
    ]

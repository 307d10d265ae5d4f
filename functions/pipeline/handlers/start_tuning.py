"""S3 ObjectCreated datasets/<id>/manifest.json -> start the tuning job (pipeline.tuning)."""

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.idempotency import idempotency_config, persistence_layer
from pipeline.observability import logger, metrics, tracer
from pipeline.settings import get_settings
from pipeline.tuning import start_tuning

settings = get_settings()
config = idempotency_config()


@idempotent_function(
    data_keyword_argument="manifest", persistence_store=persistence_layer(settings), config=config
)
def start_once(manifest: dict[str, Any]) -> dict[str, Any]:
    result = start_tuning(
        manifest["bucket"],
        manifest["key"],
        settings,
        S3Store(),
        SageMakerJobs(),
        Notifier(settings.notification_topic_arn),
    )
    if result["created"]:
        metrics.add_metric(name="TuningJobsStarted", unit=MetricUnit.Count, value=1)
    return result


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=S3Event)
def handler(event: S3Event, context: LambdaContext) -> list[dict[str, Any]]:
    config.register_lambda_context(context)
    return [
        start_once(
            manifest={
                "bucket": record.s3.bucket.name,
                "key": unquote_plus(record.s3.get_object.key),
                "etag": record.s3.get_object.etag or "",
            }
        )
        for record in event.records
    ]

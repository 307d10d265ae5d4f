"""S3 ObjectCreated uploads/*.zip -> stream the dataset into datasets/<id>/ (pipeline.ingest.service).

Kept cheap to import (cold start): what the first call needs is created by prepare() (pipeline.runtime).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.idempotency import deferred_idempotent_function
from pipeline.ingest.service import Upload, ingest_upload
from pipeline.observability import logger, metrics, tracer
from pipeline.runtime import load_settings, prepare_common, s3_objects

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from pipeline.settings import Settings


@deferred_idempotent_function(data_keyword_argument="upload")
def ingest_once(upload: dict[str, Any]) -> dict[str, Any]:
    settings = load_settings()
    report = ingest_upload(Upload(**upload), settings, S3Store(), Notifier(settings.notification_topic_arn))
    metrics.add_metric(name=f"Datasets{report['status'].capitalize()}", unit=MetricUnit.Count, value=1)
    return report


def prepare() -> Settings:
    """Everything the first call creates before its work (later calls find it ready)."""
    settings = prepare_common("s3", "sns")
    from aws_lambda_powertools.utilities.data_classes import S3Event  # noqa: F401

    ingest_once.prepare()
    return settings


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> list[dict[str, Any]]:
    prepare()
    ingest_once.register_lambda_context(context)
    return [ingest_once(upload=upload) for upload in s3_objects(event)]

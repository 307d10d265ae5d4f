"""{"url": "https://...", "name": "<optional>"} -> stream the zip into uploads/<name>.zip
(pipeline.url_import); its one CompleteMultipartUpload S3 event then starts ingest.

Invoked directly (CLI ``import-url``, console, another service), synchronously or asynchronously.
A permanent failure (bad URL, HTTP 4xx, not a zip, too big) is notified and returned as
``{"status": "rejected"}``; a transient one raises so Lambda's async retries run. Not idempotent on
purpose: importing the same URL again is a legitimate re-import (the bytes, hence the multipart
ETag and the dataset id, are the same, so ingest's own idempotency returns the first result).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.adapters.aws import client
from pipeline.adapters.notify import Notifier
from pipeline.powertools import logger, metrics, tracer
from pipeline.settings import UrlImportSettings
from pipeline.url_import import run_import

settings = UrlImportSettings.from_env()
s3_client = client("s3")
notifier = Notifier(settings.notification_topic_arn)


@logger.inject_lambda_context(log_event=False)  # a presigned URL's query string is a secret
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = run_import(
        event,
        settings,
        s3_client,
        notifier,
        remaining_s=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    metrics.add_metric(name=f"UrlImports{result['status'].capitalize()}", unit=MetricUnit.Count, value=1)
    if result["status"] == "imported":
        metrics.add_metric(name="UrlImportBytes", unit=MetricUnit.Bytes, value=result["bytes"])
    return result

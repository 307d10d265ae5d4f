"""S3 ObjectCreated datasets/<id>/manifest.json -> start the tuning job (pipeline.tuning).

Kept cheap to import (cold start): what the first call needs is created by prepare() (pipeline.runtime).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.idempotency import deferred_idempotent_function
from pipeline.observability import logger, metrics, tracer
from pipeline.runtime import load_settings, prepare_common, s3_objects
from pipeline.tuning import start_tuning

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from pipeline.settings import Settings


@deferred_idempotent_function(data_keyword_argument="manifest")
def start_once(manifest: dict[str, Any]) -> dict[str, Any]:
    settings = load_settings()
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


def prepare() -> Settings:
    """Everything the first call creates before its work (later calls find it ready)."""
    settings = prepare_common("s3", "sagemaker", "sns")
    from aws_lambda_powertools.utilities.data_classes import S3Event  # noqa: F401

    start_once.prepare()
    return settings


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> list[dict[str, Any]]:
    prepare()
    start_once.register_lambda_context(context)
    return [start_once(manifest=manifest) for manifest in s3_objects(event)]

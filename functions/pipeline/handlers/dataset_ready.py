"""S3 ObjectCreated datasets/<id>/manifest.json -> start the features job, or the tuning job when the
features exist already or AugmentTrials is on (pipeline.features_stage.on_dataset_ready)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.events import s3_objects
from pipeline.features_stage import DatasetReadyResult, on_dataset_ready
from pipeline.powertools import idempotency_config, idempotency_store, logger, metrics, tracer
from pipeline.settings import FeaturesStageFunctionSettings

settings = FeaturesStageFunctionSettings.from_env()
store = S3Store()
jobs = SageMakerJobs()
notifier = Notifier(settings.notification_topic_arn)
config = idempotency_config()


@idempotent_function(
    data_keyword_argument="manifest", persistence_store=idempotency_store(settings), config=config
)
def start_once(manifest: dict[str, Any]) -> DatasetReadyResult:
    result = on_dataset_ready(manifest["bucket"], manifest["key"], settings, store, jobs, notifier)
    if result["action"] == "features-started":
        metrics.add_metric(name="FeaturesJobsStarted", unit=MetricUnit.Count, value=1)
    elif result.get("created"):
        metrics.add_metric(name="TuningJobsStarted", unit=MetricUnit.Count, value=1)
    return result


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=S3Event)
def handler(event: S3Event, context: LambdaContext) -> list[DatasetReadyResult]:
    config.register_lambda_context(context)
    return [start_once(manifest=manifest) for manifest in s3_objects(event)]

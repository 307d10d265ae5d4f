"""EventBridge features job state change -> start the tuning job on its features (pipeline.features_stage)."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.parser import envelopes, event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dogclf import contract
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.events import Ignored, TrainingJobStateChange
from pipeline.features_stage import FeaturesFinishedResult, on_features_finished
from pipeline.powertools import idempotency_config, idempotency_store, logger, metrics, tracer
from pipeline.settings import FeaturesStageFunctionSettings

settings = FeaturesStageFunctionSettings.from_env()
jobs = SageMakerJobs()
store = S3Store()  # the training code upload (sourcedir.tar.gz) of the tuning job
notifier = Notifier(settings.notification_topic_arn)
config = idempotency_config()


@idempotent_function(
    data_keyword_argument="job", persistence_store=idempotency_store(settings), config=config
)
def handle_once(job: dict[str, str]) -> FeaturesFinishedResult:
    result = on_features_finished(job["name"], job["status"], settings, store, jobs, notifier)
    if result.get("created"):
        metrics.add_metric(name="TuningJobsStarted", unit=MetricUnit.Count, value=1)
    return result


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=TrainingJobStateChange, envelope=envelopes.EventBridgeEnvelope)
def handler(event: TrainingJobStateChange, context: LambdaContext) -> FeaturesFinishedResult | Ignored:
    name = event.TrainingJobName
    if not contract.is_pipeline_features_job(name, settings.job_name_prefix):
        # Another pipeline's job, a trial or the profiled job: not ours, so no Describe, no record.
        logger.info("ignoring a training job that is not this pipeline's features job", extra={"job": name})
        return {"ignored": name, "reason": "not a features job of this pipeline"}
    config.register_lambda_context(context)
    return handle_once(job={"name": name, "status": event.TrainingJobStatus})

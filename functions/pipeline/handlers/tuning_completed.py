"""EventBridge tuning job state change -> start the profiled training job (pipeline.training_stage)."""

from __future__ import annotations

from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.parser import envelopes, event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dogclf import contract
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.events import Ignored, TuningJobStateChange
from pipeline.powertools import idempotency_config, idempotency_store, logger, metrics, tracer
from pipeline.settings import TuningCompletedFunctionSettings
from pipeline.training_stage import TuningFinishedResult, on_tuning_finished

settings = TuningCompletedFunctionSettings.from_env()
jobs = SageMakerJobs()
store = S3Store()  # the dataset's manifest sizes the debug hook config
notifier = Notifier(settings.notification_topic_arn)
config = idempotency_config()


@idempotent_function(
    data_keyword_argument="job", persistence_store=idempotency_store(settings), config=config
)
def handle_once(job: dict[str, str]) -> TuningFinishedResult:
    return on_tuning_finished(job["name"], job["status"], settings, jobs, store, notifier)


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=TuningJobStateChange, envelope=envelopes.EventBridgeEnvelope)
def handler(event: TuningJobStateChange, context: LambdaContext) -> TuningFinishedResult | Ignored:
    name = event.HyperParameterTuningJobName
    if not contract.is_pipeline_tuning_job(name, settings.job_name_prefix):
        # Another pipeline's job (or a tuning trial): not ours, so no Describe, no record, no error.
        logger.info("ignoring a tuning job this pipeline did not start", extra={"job": name})
        return {"ignored": name, "reason": "not a tuning job of this pipeline"}
    config.register_lambda_context(context)
    return handle_once(job={"name": name, "status": event.HyperParameterTuningJobStatus})

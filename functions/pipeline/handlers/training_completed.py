"""EventBridge training job state change -> quality gate and endpoint deploy (pipeline.deploy_stage)."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.parser import envelopes, event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from dogclf import contract
from pipeline.adapters.endpoint_state import EndpointStateStore
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.deploy_stage import TrainingFinishedResult, on_training_finished
from pipeline.endpoint_lifecycle import EndpointLifecycle
from pipeline.events import Ignored, TrainingJobStateChange
from pipeline.powertools import idempotency_config, idempotency_store, logger, metrics, tracer
from pipeline.settings import TrainingCompletedFunctionSettings

settings = TrainingCompletedFunctionSettings.from_env()
jobs = SageMakerJobs()
store = S3Store()
notifier = Notifier(settings.notification_topic_arn)
state_store = EndpointStateStore(settings.idempotency_table, settings.endpoint_name)
config = idempotency_config()


@idempotent_function(
    data_keyword_argument="job", persistence_store=idempotency_store(settings), config=config
)
def handle_once(job: dict[str, str]) -> TrainingFinishedResult:
    # Per invocation: the lifecycle records what this invocation did (its ``actions``).
    lifecycle = EndpointLifecycle(settings, jobs, state_store, store, notifier)
    decision = on_training_finished(job["name"], settings, jobs, store, notifier, lifecycle)
    if "deploy" in decision:
        metrics.add_metric(
            name="ModelsDeployed" if decision["deploy"] else "ModelsRejected", unit=MetricUnit.Count, value=1
        )
    return decision


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=TrainingJobStateChange, envelope=envelopes.EventBridgeEnvelope)
def handler(event: TrainingJobStateChange, context: LambdaContext) -> TrainingFinishedResult | Ignored:
    name = event.TrainingJobName
    if not contract.is_pipeline_training_job(name, settings.job_name_prefix):
        # Another pipeline's job (or a tuning trial): not ours, so no Describe, no record, no error.
        logger.info("ignoring a training job this pipeline did not start", extra={"job": name})
        return {"ignored": name, "reason": "not a training job of this pipeline"}
    config.register_lambda_context(context)
    return handle_once(job={"name": name, "status": event.TrainingJobStatus})

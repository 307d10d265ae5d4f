"""EventBridge training job state change -> quality gate and endpoint deploy (pipeline.deploy)."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.parser import envelopes, event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.deploy import on_training_finished
from pipeline.events import TrainingJobStateChange
from pipeline.idempotency import idempotency_config, persistence_layer
from pipeline.observability import logger, metrics, tracer
from pipeline.settings import get_settings

settings = get_settings()
config = idempotency_config()


@idempotent_function(
    data_keyword_argument="job", persistence_store=persistence_layer(settings), config=config
)
def handle_once(job: dict[str, str]) -> dict[str, Any]:
    decision = on_training_finished(
        job["name"], settings, SageMakerJobs(), S3Store(), Notifier(settings.notification_topic_arn)
    )
    if "deploy" in decision:
        metrics.add_metric(
            name="ModelsDeployed" if decision["deploy"] else "ModelsRejected", unit=MetricUnit.Count, value=1
        )
    return decision


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=TrainingJobStateChange, envelope=envelopes.EventBridgeEnvelope)
def handler(event: TrainingJobStateChange, context: LambdaContext) -> dict[str, Any]:
    config.register_lambda_context(context)
    return handle_once(job={"name": event.TrainingJobName, "status": event.TrainingJobStatus})

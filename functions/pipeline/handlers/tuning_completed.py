"""EventBridge tuning job state change -> start the profiled training job (pipeline.training)."""

from typing import Any

from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.parser import envelopes, event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.adapters.notify import Notifier
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.events import TuningJobStateChange
from pipeline.idempotency import idempotency_config, persistence_layer
from pipeline.observability import logger, metrics, tracer
from pipeline.settings import get_settings
from pipeline.training import on_tuning_finished

settings = get_settings()
config = idempotency_config()


@idempotent_function(
    data_keyword_argument="job", persistence_store=persistence_layer(settings), config=config
)
def handle_once(job: dict[str, str]) -> dict[str, Any]:
    return on_tuning_finished(
        job["name"], job["status"], settings, SageMakerJobs(), Notifier(settings.notification_topic_arn)
    )


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=TuningJobStateChange, envelope=envelopes.EventBridgeEnvelope)
def handler(event: TuningJobStateChange, context: LambdaContext) -> dict[str, Any]:
    config.register_lambda_context(context)
    return handle_once(
        job={"name": event.HyperParameterTuningJobName, "status": event.HyperParameterTuningJobStatus}
    )

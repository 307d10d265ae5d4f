"""EventBridge tuning job state change -> start the profiled training job (pipeline.training).

Kept cheap to import (cold start): what the first call needs is created by prepare() (pipeline.runtime).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.adapters.training_code import contract_module
from pipeline.idempotency import deferred_idempotent_function
from pipeline.observability import logger, metrics, tracer
from pipeline.runtime import eventbridge_detail, load_settings, prepare_common
from pipeline.training import on_tuning_finished

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from pipeline.settings import Settings


@deferred_idempotent_function(data_keyword_argument="job")
def handle_once(job: dict[str, str]) -> dict[str, Any]:
    settings = load_settings()
    return on_tuning_finished(
        job["name"],
        job["status"],
        settings,
        SageMakerJobs(),
        S3Store(),  # the dataset's manifest sizes the debug hook config
        Notifier(settings.notification_topic_arn),
    )


def prepare() -> Settings:
    """Everything the first call creates before its work (later calls find it ready)."""
    settings = prepare_common("sagemaker", "s3", "sns")
    import aws_lambda_powertools.utilities.parser  # noqa: F401

    import pipeline.events  # noqa: F401

    handle_once.prepare()
    return settings


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = prepare()
    from pipeline.events import TuningJobStateChange

    change = eventbridge_detail(event, TuningJobStateChange)
    if not contract_module(settings.training_code_dir).is_pipeline_tuning_job(
        change.HyperParameterTuningJobName, settings.job_name_prefix
    ):
        # Another pipeline's job (or a tuning trial): not ours, so no Describe, no record, no error.
        logger.info(
            "ignoring a tuning job this pipeline did not start",
            extra={"job": change.HyperParameterTuningJobName},
        )
        return {"ignored": change.HyperParameterTuningJobName, "reason": "not a tuning job of this pipeline"}
    handle_once.register_lambda_context(context)
    return handle_once(
        job={"name": change.HyperParameterTuningJobName, "status": change.HyperParameterTuningJobStatus}
    )

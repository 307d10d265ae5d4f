"""EventBridge endpoint state change, or the reconcile schedule's tick -> record the real outcome, take
the next step, clean up (pipeline.endpoint_lifecycle, pipeline.endpoint_schedule).

One function for both: the same permissions, and every step is decided from the endpoint's current
state and the lifecycle's compare-and-swap state item, so an event and a tick that arrive together
cannot both act, and a duplicate finds nothing left to do. No idempotency record for the same reason.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.adapters.endpoint_state import EndpointStateStore
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.endpoint_lifecycle import EndpointLifecycle, on_endpoint_state
from pipeline.endpoint_schedule import SCHEDULED_EVENT, on_schedule
from pipeline.events import EndpointStateChange
from pipeline.powertools import logger, metrics, tracer
from pipeline.settings import EndpointStateFunctionSettings

settings = EndpointStateFunctionSettings.from_env()
jobs = SageMakerJobs()
state_store = EndpointStateStore(settings.idempotency_table, settings.endpoint_name)
store = S3Store()
notifier = Notifier(settings.notification_topic_arn)


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Waits (for a delete to finish) stop 10 s before the function's timeout.
    deadline = time.time() + context.get_remaining_time_in_millis() / 1000 - 10
    if event.get("detail-type") == SCHEDULED_EVENT:
        # Per invocation: the lifecycle records what this invocation did (its ``actions``).
        return on_schedule(EndpointLifecycle(settings, jobs, state_store, store, notifier), deadline)
    # An endpoint state change (or a deployment state change: same fields): its detail.
    change = parse(event=event.get("detail") or {}, model=EndpointStateChange)
    if change.EndpointName != settings.endpoint_name:
        # Another endpoint: not ours, so no Describe, no state, no error.
        logger.info(
            "ignoring an endpoint this pipeline does not manage", extra={"endpoint": change.EndpointName}
        )
        return {"ignored": change.EndpointName, "reason": "not this pipeline's endpoint"}
    lifecycle = EndpointLifecycle(settings, jobs, state_store, store, notifier)
    return on_endpoint_state(change.EndpointName, change.EndpointStatus, lifecycle, deadline)

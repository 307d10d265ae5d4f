"""EventBridge endpoint state change -> record the real outcome, take the next step, clean up
(pipeline.endpoint_lifecycle).

No idempotency record: every step is decided from the endpoint's current state and the lifecycle's
compare-and-swap state item, so a duplicate event finds nothing left to do.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.parser import envelopes, event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline.adapters.endpoint_state import EndpointStateStore
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.endpoint_lifecycle import EndpointLifecycle, on_endpoint_state
from pipeline.events import EndpointStateChange
from pipeline.powertools import logger, metrics, tracer
from pipeline.settings import Settings

settings = Settings.from_env()
jobs = SageMakerJobs()
state_store = EndpointStateStore(settings.idempotency_table, settings.endpoint_name)
store = S3Store()
notifier = Notifier(settings.notification_topic_arn)


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=EndpointStateChange, envelope=envelopes.EventBridgeEnvelope)
def handler(event: EndpointStateChange, context: LambdaContext) -> dict[str, Any]:
    if event.EndpointName != settings.endpoint_name:
        # Another endpoint: not ours, so no Describe, no state, no error.
        logger.info(
            "ignoring an endpoint this pipeline does not manage", extra={"endpoint": event.EndpointName}
        )
        return {"ignored": event.EndpointName, "reason": "not this pipeline's endpoint"}
    # Per invocation: the lifecycle records what this invocation did (its ``actions``).
    lifecycle = EndpointLifecycle(settings, jobs, state_store, store, notifier)
    # Waits (for a delete to finish) stop 10 s before the function's timeout.
    deadline = time.time() + context.get_remaining_time_in_millis() / 1000 - 10
    return on_endpoint_state(event.EndpointName, event.EndpointStatus, lifecycle, deadline)

"""The endpoint's outcome without its state-change events: a scheduled reconcile (docs/deploy.md,
"Deployment").

AWS documents "SageMaker Endpoint State Change" events for hosted real-time endpoints
(https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html) and
nothing for serverless endpoints, the template's default. So the pipeline never waits on them alone:
an EventBridge schedule invokes the endpoint-state function every minute, and each tick runs the same
``reconcile`` as an event (DescribeEndpoint, record the outcome, take the next step, clean up) when
something is on its way: a pending model, a request in flight, or a deleted endpoint to recreate.
While nothing is, a tick is one consistent GetItem on the state item and nothing else (no
DescribeEndpoint, no write), so the schedule costs one short invocation a minute.

Why a fixed-rate rule rather than a one-off timer set when a deploy starts (EventBridge Scheduler,
or a delayed SQS message): it has no state of its own to lose. A tick that fails, or a state item
written by an invocation that died, is picked up by the next tick; a one-off timer lost with its
invocation would leave the outcome pending again. Events, when they come, still act at once; the
schedule only bounds how long an outcome can wait for them (a minute plus the reconcile).
"""

from __future__ import annotations

from typing import Any

from pipeline.endpoint_lifecycle import EndpointLifecycle
from pipeline.lifecycle_state import IN_SERVICE, LifecycleState
from pipeline.powertools import logger

# EventBridge's detail-type of a scheduled rule's event
# (https://docs.aws.amazon.com/eventbridge/latest/ref/event-reference.html#event-reference-scheduled).
SCHEDULED_EVENT = "Scheduled Event"


def needs_reconcile(state: LifecycleState) -> bool:
    """Something the endpoint still owes an outcome or a step for: a pending model, a request in
    flight, or a deleted endpoint to recreate from the last good model. (``recreate`` without one,
    after the only model failed, leaves nothing to do: the next passed model is pending again.)"""
    if state.pending is not None or state.inflight is not None:
        return True
    return state.recreate and state.serving is not None


def on_schedule(lifecycle: EndpointLifecycle, deadline: float) -> dict[str, Any]:
    """One tick: reconcile if anything is pending, else nothing beyond reading the state."""
    state, _ = lifecycle.store.load()
    if not needs_reconcile(state):
        return {"endpoint_name": lifecycle.endpoint_name, "action": "nothing pending"}
    result: dict[str, Any] = {"endpoint_name": lifecycle.endpoint_name, "trigger": "schedule"}
    result["action"] = lifecycle.reconcile(deadline=deadline)
    endpoint, settled = lifecycle.last_endpoint, lifecycle.last_state
    if (
        result["action"] == "in service"
        and endpoint is not None
        and endpoint.status == IN_SERVICE
        and settled.inflight is None
    ):
        result["cleaned_up"] = lifecycle.cleanup(endpoint, settled)
    result["steps"] = list(lifecycle.actions)
    logger.info("scheduled endpoint reconcile", extra={"action": result["action"]})
    return result

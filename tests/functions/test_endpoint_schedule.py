"""The endpoint outcome without state-change events (AWS documents none for serverless endpoints), and
the EndpointMode switch (UpdateEndpoint cannot change it): the scheduled tick reconciles from DescribeEndpoint
whatever is pending and does nothing else; a pending model for the other mode deletes and recreates the
endpoint instead of an UpdateEndpoint that SageMaker refuses.

Same harness as test_endpoint_lifecycle.py: SageMaker is a botocore Stubber with no response left
over (an unexpected call fails the test), S3, SNS and the state item are moto.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import test_endpoint_lifecycle as harness
from botocore.stub import Stubber
from fn_support import ENV
from test_endpoint_lifecycle import (
    ENDPOINT,
    ENDPOINT_ARN,
    OLD,
    T0,
    B,
    decision,
    expect_cleanup_lists,
    expect_create,
    expect_describe,
    load_state,
    model,
    seed_state,
    subjects,
)

from pipeline import lifecycle_state as lstate
from pipeline.endpoint_schedule import needs_reconcile, on_schedule

# The shared harness's fixtures (the injected clock, the lifecycle factory); `sagemaker` (a Stubber) is
# conftest.py's.
clock, lifecycle = harness.clock, harness.lifecycle

SCHEDULED_EVENT = {  # AWS's "Scheduled Event" (EventBridge event reference)
    "version": "0",
    "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-29T06:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/dogbreed-EndpointStateFunctionReconcile"],
    "detail": {},
}


def describe_with_variant(sagemaker: Stubber, config: str, variant: dict[str, Any]) -> None:
    sagemaker.add_response(
        "describe_endpoint",
        {
            "EndpointName": ENDPOINT,
            "EndpointArn": ENDPOINT_ARN,
            "EndpointConfigName": config,
            "EndpointStatus": "InService",
            "CreationTime": T0,
            "LastModifiedTime": datetime.fromtimestamp(T0.timestamp(), UTC),
            "ProductionVariants": [{"VariantName": "AllTraffic", **variant}],
        },
        {"EndpointName": ENDPOINT},
    )


def test_a_tick_with_nothing_pending_reads_the_state_and_calls_nothing_else(aws, sagemaker, lifecycle):
    seed_state(lstate.LifecycleState(serving=model(OLD), newest_created=model(OLD).created))
    # The stubber holds no response: a DescribeEndpoint would fail the test.
    assert on_schedule(lifecycle(), deadline=T0.timestamp() + 200) == {
        "endpoint_name": ENDPOINT,
        "action": "nothing pending",
    }
    assert subjects(aws) == []


def test_a_tick_settles_a_create_whose_event_never_came(aws, sagemaker, lifecycle):
    requested = lstate.Request(model(B), "create", None, T0.timestamp())
    seed_state(lstate.LifecycleState(inflight=requested, newest_created=model(B).created))
    expect_describe(sagemaker, "InService", f"{B}-cfg", modified=T0.timestamp() + 60)
    expect_cleanup_lists(sagemaker, [f"{B}-cfg"], [B])
    result = on_schedule(lifecycle(), deadline=T0.timestamp() + 200)
    assert result["action"] == "in service" and result["trigger"] == "schedule"
    assert decision(aws, B)["endpoint_outcome"]["status"] == "in-service"
    assert subjects(aws) == [f"Model InService: {B}"]
    assert load_state().inflight is None and load_state().serving == model(B)
    # Settled: the next tick finds nothing pending and makes no SageMaker call.
    assert on_schedule(lifecycle(), deadline=T0.timestamp() + 200)["action"] == "nothing pending"


def test_a_tick_while_the_endpoint_is_still_creating_waits(aws, sagemaker, lifecycle):
    requested = lstate.Request(model(B), "create", None, T0.timestamp())
    seed_state(lstate.LifecycleState(inflight=requested, newest_created=model(B).created))
    expect_describe(sagemaker, "Creating", f"{B}-cfg", modified=T0.timestamp() + 1)
    assert on_schedule(lifecycle(), deadline=T0.timestamp() + 200)["steps"] == ["wait"]
    assert load_state().inflight == requested  # still owed an outcome: the next tick looks again


def test_a_mode_switch_deletes_and_recreates_instead_of_updating(aws, sagemaker, lifecycle):
    """The stack now says serverless (ENV), the endpoint runs instances: no UpdateEndpoint."""
    assert ENV["ENDPOINT_MODE"] == "serverless"
    seed_state(lstate.LifecycleState(pending=model(B), serving=model(OLD), newest_created=model(OLD).created))
    describe_with_variant(sagemaker, f"{OLD}-cfg", {"CurrentInstanceCount": 1, "DesiredInstanceCount": 1})
    sagemaker.add_response("delete_endpoint", {}, {"EndpointName": ENDPOINT})
    first = on_schedule(lifecycle(), deadline=T0.timestamp() + 200)
    assert first["action"].startswith("deleting the endpoint to recreate it (EndpointMode is now serverless")
    assert load_state().recreate and load_state().pending == model(B)
    # Gone: the next tick creates it with the pending model, in the new mode's config.
    expect_describe(sagemaker, None)
    expect_create(sagemaker, B)
    assert on_schedule(lifecycle(), deadline=T0.timestamp() + 200)["action"] == "create requested"
    assert load_state().inflight is not None and not load_state().recreate


def test_the_same_mode_still_updates(aws, sagemaker, lifecycle):
    seed_state(lstate.LifecycleState(pending=model(B), serving=model(OLD), newest_created=model(OLD).created))
    serverless = {"CurrentServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 5}}
    describe_with_variant(sagemaker, f"{OLD}-cfg", serverless)
    sagemaker.add_response(
        "update_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {"EndpointName": ENDPOINT, "EndpointConfigName": f"{B}-cfg"},
    )
    assert on_schedule(lifecycle(), deadline=T0.timestamp() + 200)["action"] == "update requested"


def test_needs_reconcile_is_pending_inflight_or_recreate():
    assert not needs_reconcile(lstate.LifecycleState(serving=model(OLD)))
    assert needs_reconcile(lstate.LifecycleState(pending=model(B)))
    assert needs_reconcile(lstate.LifecycleState(inflight=lstate.Request(model(B), "update", None, 0.0)))
    assert needs_reconcile(lstate.LifecycleState(recreate=True, serving=model(OLD)))
    # Found by the soak: the only model failed, its endpoint was deleted, nothing is left to create.
    assert not needs_reconcile(lstate.LifecycleState(recreate=True))


def test_the_handler_routes_a_scheduled_event_to_the_tick(aws, sagemaker, lambda_context):
    from pipeline.handlers import endpoint_state

    result = endpoint_state.handler(copy.deepcopy(SCHEDULED_EVENT), lambda_context)
    assert result == {"endpoint_name": ENDPOINT, "action": "nothing pending"}

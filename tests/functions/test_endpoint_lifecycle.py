"""The endpoint lifecycle, driven by the endpoint's own state-change events: the real outcome of a
deploy is recorded, and two models passing close together deploy the newest, once.

SageMaker is a botocore Stubber, which checks every request against botocore's model and the expected
params: small literals where the params are the decision (which endpoint, which config), the request
snapshot tests/fixtures/requests/update_endpoint_instance.json for the instance mode's blue/green
UpdateEndpoint (request_snapshots.py says how to regenerate it; its decisions are asserted by name);
S3, SNS and the DynamoDB state item are moto. The clock is injected, so the request time can be
compared with the endpoint's LastModifiedTime without sleeping.
"""

from __future__ import annotations

import copy
import io
import json
import tarfile
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from fn_support import ENV, load_event
from request_snapshots import RequestSnapshots, load_snapshot

from pipeline import endpoint_lifecycle as lc
from pipeline import lifecycle_decisions as decide
from pipeline import lifecycle_state as lstate
from pipeline.adapters.endpoint_state import EndpointStateStore
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.deploy_stage import TrainingFinishedResult, on_training_finished
from pipeline.endpoint_requests import update_endpoint_request
from pipeline.errors import TransientError
from pipeline.settings import get_settings

ARTIFACTS = ENV["ARTIFACTS_BUCKET"]
ENDPOINT = ENV["ENDPOINT_NAME"]
ENDPOINT_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"
OLD = "dogclf-train-000000000000"  # what the endpoint served before the test
A = "dogclf-train-aaaaaaaaaaaa"  # trained first
B = "dogclf-train-bbbbbbbbbbbb"  # trained later: the newest
T0 = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
CREATED = {OLD: T0 - timedelta(days=1), A: T0, B: T0 + timedelta(minutes=5)}
NOW = (T0 + timedelta(hours=1)).timestamp()  # the lifecycle's clock while the tests run
HEALTHY = dict.fromkeys(
    ("VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization", "LossNotDecreasing"),
    "NoIssuesFound",
)
UPDATE_REQUEST_B = {
    "EndpointName": ENDPOINT,
    "EndpointConfigName": f"{B}-cfg",
}  # serverless: no DeploymentConfig


@pytest.fixture
def clock():
    now = [NOW]
    return now


@pytest.fixture
def lifecycle(aws, sagemaker, clock):
    def make() -> lc.EndpointLifecycle:
        settings = get_settings()
        return lc.EndpointLifecycle(
            settings,
            SageMakerJobs(),
            EndpointStateStore(settings.idempotency_table, settings.endpoint_name),
            S3Store(),
            Notifier(settings.notification_topic_arn),
            clock=lambda: clock[0],
            sleep=lambda seconds: clock.__setitem__(0, clock[0] + seconds),
        )

    return make


def job_description(name: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{ARTIFACTS}/training/{name}/output/model.tar.gz"},
        "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": f"s3://{ARTIFACTS}/training/"},
        "ResourceConfig": {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
        "CreationTime": CREATED[name],
        "FinalMetricDataList": [{"MetricName": "test:accuracy", "Value": 0.9, "Timestamp": T0}],
    }


def put_verdicts(aws, name: str) -> None:
    rules = [{"RuleConfigurationName": rule, "RuleEvaluationStatus": s} for rule, s in HEALTHY.items()]
    document = json.dumps({"rules": rules}).encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        info = tarfile.TarInfo("rule_verdicts.json")
        info.size = len(document)
        archive.addfile(info, io.BytesIO(document))
    aws.s3.put_object(Bucket=ARTIFACTS, Key=f"training/{name}/output/output.tar.gz", Body=raw.getvalue())


def expect_gate_pass(aws, sagemaker: Stubber, name: str) -> None:
    """DescribeTrainingJob, then CreateModel and CreateEndpointConfig (their requests are snapshots in
    test_deploy_stage.py)."""
    put_verdicts(aws, name)
    sagemaker.add_response("describe_training_job", job_description(name), {"TrainingJobName": name})
    sagemaker.add_response(
        "create_model", {"ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{name}"}
    )
    sagemaker.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{name}-cfg"},
    )


def expect_describe(
    sagemaker: Stubber, status: str | None, config: str = "", modified: float = NOW, reason: str | None = None
) -> None:
    if status is None:
        sagemaker.add_client_error(
            "describe_endpoint",
            service_error_code="ValidationException",
            service_message=f'Could not find endpoint "{ENDPOINT_ARN}".',
            expected_params={"EndpointName": ENDPOINT},
        )
        return
    response = {
        "EndpointName": ENDPOINT,
        "EndpointArn": ENDPOINT_ARN,
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": T0,
        "LastModifiedTime": datetime.fromtimestamp(modified, UTC),
    }
    if reason:
        response["FailureReason"] = reason
    sagemaker.add_response("describe_endpoint", response, {"EndpointName": ENDPOINT})


def expect_create(sagemaker: Stubber, job: str) -> None:
    sagemaker.add_response(
        "create_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {"EndpointName": "dogclf-endpoint", "EndpointConfigName": f"{job}-cfg"},
    )


def expect_cleanup_lists(sagemaker: Stubber, configs: list[str], models: list[str]) -> None:
    sagemaker.add_response(
        "list_endpoint_configs",
        {"EndpointConfigs": [config_row(name) for name in configs]},
        {"NameContains": "dogclf-train-"},
    )
    sagemaker.add_response(
        "list_models", {"Models": [model_row(name) for name in models]}, {"NameContains": "dogclf-train-"}
    )


def config_row(name: str, created: datetime | None = None) -> dict[str, Any]:
    return {
        "EndpointConfigName": name,
        "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{name}",
        "CreationTime": created or CREATED.get(name.removesuffix("-cfg"), T0),
    }


def model_row(name: str, created: datetime | None = None) -> dict[str, Any]:
    return {
        "ModelName": name,
        "ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{name}",
        "CreationTime": created or CREATED.get(name, T0),
    }


def passes(aws, sagemaker, lifecycle, name: str) -> TrainingFinishedResult:
    settings = get_settings()
    return on_training_finished(
        name,
        settings,
        SageMakerJobs(),
        S3Store(),
        Notifier(settings.notification_topic_arn),
        lifecycle=lifecycle(),
    )


def state_event(status: str) -> tuple[str, str]:
    return ENDPOINT, status


def decision(aws, job: str) -> dict[str, Any]:
    return json.loads(aws.s3.get_object(Bucket=ARTIFACTS, Key=f"decisions/{job}.json")["Body"].read())


def subjects(aws) -> list[str]:
    return [note["subject"] for note in aws.notifications()]


def seed_state(state: lstate.LifecycleState) -> None:
    settings = get_settings()
    store = EndpointStateStore(settings.idempotency_table, settings.endpoint_name)
    _, version = store.load()
    assert store.save(state, version)


def load_state() -> lstate.LifecycleState:
    settings = get_settings()
    return EndpointStateStore(settings.idempotency_table, settings.endpoint_name).load()[0]


def model(job: str) -> lstate.Model:
    return lstate.Model(job, f"{job}-cfg", CREATED[job].timestamp())


# ---------------------------------------------------------------------------------------- scenarios


def test_create_that_meets_an_existing_endpoint_is_pending_not_created(aws, sagemaker, lifecycle):
    """Why 4: the second CreateEndpoint gets "already exists"; it must not be reported as created."""
    expect_gate_pass(aws, sagemaker, B)
    expect_describe(sagemaker, None)  # the other pass's endpoint is not visible yet
    sagemaker.add_client_error(
        "create_endpoint",
        service_error_code="ValidationException",
        service_message=f'Cannot create already existing endpoint "{ENDPOINT_ARN}".',
        expected_params={"EndpointName": ENDPOINT, "EndpointConfigName": f"{B}-cfg"},
    )
    result = passes(aws, sagemaker, lifecycle, B)
    assert result["endpoint_action"] == "pending (create refused: endpoint busy)"
    assert decision(aws, B)["endpoint_outcome"] == {"status": "pending", "message": "deploy requested"}
    assert subjects(aws) == [f"Model passed the gate (pending): {B}"]
    assert load_state().pending == model(B) and load_state().inflight is None

    # The other pass's endpoint comes up InService on A: its event deploys B, the pending model.
    expect_describe(sagemaker, "InService", f"{A}-cfg")
    sagemaker.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, UPDATE_REQUEST_B)
    state_result = lc.on_endpoint_state(ENDPOINT, "IN_SERVICE", lifecycle(), deadline=NOW + 200)
    assert state_result["action"] == "update requested"


def test_two_passes_race_one_deploys_and_the_newest_wins(aws, sagemaker, lifecycle, clock):
    # A passes: no endpoint yet, so it is created with A.
    expect_gate_pass(aws, sagemaker, A)
    expect_describe(sagemaker, None)
    expect_create(sagemaker, A)
    assert passes(aws, sagemaker, lifecycle, A)["endpoint_action"] == "create requested"
    # B passes while the endpoint is still Creating: pending, no second CreateEndpoint.
    expect_gate_pass(aws, sagemaker, B)
    expect_describe(sagemaker, "Creating", f"{A}-cfg")
    result = passes(aws, sagemaker, lifecycle, B)
    assert result["endpoint_action"] == f"pending (waiting for the endpoint to finish {A})"
    assert decision(aws, B)["endpoint_outcome"]["status"] == "pending"
    assert subjects(aws) == [
        f"Model passed the gate (create requested): {A}",
        f"Model passed the gate (pending): {B}",
    ]

    # InService on A: A's outcome is recorded, then B (pending, newer) is deployed.
    clock[0] += 300
    expect_describe(sagemaker, "InService", f"{A}-cfg", modified=clock[0] - 10)
    sagemaker.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, UPDATE_REQUEST_B)
    state_result = lc.on_endpoint_state(*state_event("IN_SERVICE"), lifecycle(), deadline=clock[0] + 200)
    assert state_result["action"] == "update requested"
    assert decision(aws, A)["endpoint_outcome"]["message"] == f"InService on {A}'s model"
    assert subjects(aws) == [f"Model InService: {A}"]

    # InService on B: B's outcome is recorded; old configs are listed for the cleanup.
    clock[0] += 300
    expect_describe(sagemaker, "InService", f"{B}-cfg", modified=clock[0] - 10)
    expect_cleanup_lists(sagemaker, [f"{B}-cfg", f"{A}-cfg"], [B, A])
    state_result = lc.on_endpoint_state(*state_event("IN_SERVICE"), lifecycle(), deadline=clock[0] + 200)
    assert state_result["action"] == "in service"
    assert decision(aws, B)["endpoint_outcome"] == {
        "status": "in-service",
        "message": f"InService on {B}'s model",
        "endpoint_config": f"{B}-cfg",
        "failure_reason": None,
    }
    assert subjects(aws) == [f"Model InService: {B}"]
    assert load_state().serving == model(B) and load_state().pending is None


def test_an_older_model_that_passes_later_is_superseded(aws, sagemaker, lifecycle):
    seed_state(lstate.LifecycleState(serving=model(B), newest_created=model(B).created))
    expect_gate_pass(aws, sagemaker, A)
    result = passes(aws, sagemaker, lifecycle, A)  # no DescribeEndpoint, no update: B is newer
    assert result["endpoint_action"] == f"superseded by {B}"
    assert decision(aws, A)["endpoint_outcome"]["status"] == "superseded"


def test_offers_newest_wins_by_creation_time_not_arrival():
    newer_first = decide.offer_model(lstate.LifecycleState(pending=model(B)), model(A))
    assert not newer_first.accepted and newer_first.superseded_by == B
    older_first = decide.offer_model(lstate.LifecycleState(pending=model(A)), model(B))
    assert older_first.accepted and older_first.state.pending == model(B)
    redelivered = lstate.LifecycleState(inflight=lstate.Request(model(B), "update", None, NOW))
    assert decide.offer_model(redelivered, model(B)) == lstate.Offer(False, redelivered, None)


def test_busy_endpoint_keeps_the_model_pending_and_deploys_it_on_in_service(aws, sagemaker, lifecycle):
    """Why 5: the old code raised for Lambda's two retries, which an update outlasts."""
    expect_gate_pass(aws, sagemaker, B)
    expect_describe(sagemaker, "Updating", f"{OLD}-cfg")
    result = passes(aws, sagemaker, lifecycle, B)  # no exception, no UpdateEndpoint
    assert result["endpoint_action"] == "pending (endpoint Updating)"
    assert load_state().pending == model(B)

    expect_describe(sagemaker, "InService", f"{OLD}-cfg")
    sagemaker.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, UPDATE_REQUEST_B)
    assert (
        lc.on_endpoint_state(ENDPOINT, "IN_SERVICE", lifecycle(), NOW + 200)["action"] == "update requested"
    )
    assert load_state().inflight is not None and load_state().pending is None


UPDATE_SNAPSHOT = "update_endpoint_instance"  # UpdateEndpoint of an instance endpoint to B's config


def test_the_instance_mode_update_request_is_its_snapshot(request_snapshot: RequestSnapshots) -> None:
    settings = get_settings().model_copy(update={"endpoint_mode": "instance"})
    request_snapshot.check(UPDATE_SNAPSHOT, update_endpoint_request(f"{B}-cfg", settings), "UpdateEndpoint")


def test_an_instance_update_is_blue_green_and_rolls_back_on_the_stacks_alarms() -> None:
    """The decisions of the instance mode's UpdateEndpoint, by name; a serverless endpoint's update
    names the new config and nothing else."""
    settings = get_settings().model_copy(update={"endpoint_mode": "instance"})
    request = update_endpoint_request(f"{B}-cfg", settings)
    assert request["EndpointName"] == ENDPOINT and request["EndpointConfigName"] == f"{B}-cfg"
    policy = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"
    assert [
        alarm["AlarmName"] for alarm in request["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    ] == [
        "dogclf-endpoint-5xx",
        "dogclf-endpoint-latency",
    ]
    assert update_endpoint_request(f"{B}-cfg", get_settings()) == UPDATE_REQUEST_B


def test_instance_mode_update_carries_the_rollback_alarms(aws, sagemaker, lifecycle):
    seed_state(lstate.LifecycleState(pending=model(B)))
    settings = get_settings().model_copy(update={"endpoint_mode": "instance"})
    expect_describe(sagemaker, "InService", f"{OLD}-cfg")
    sagemaker.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, load_snapshot(UPDATE_SNAPSHOT))
    instance = lifecycle()
    instance.settings = settings
    assert instance.reconcile(deadline=None) == "update requested"


def test_update_that_rolls_back_is_reported_as_rolled_back_and_not_retried(aws, sagemaker, lifecycle, clock):
    requested = lstate.Request(model(B), "update", f"{OLD}-cfg", NOW - 600)
    seed_state(lstate.LifecycleState(inflight=requested, serving=model(OLD), newest_created=model(B).created))
    aws.s3.put_object(Bucket=ARTIFACTS, Key=f"decisions/{B}.json", Body=json.dumps({"deploy": True}))
    reason = "Alarm dogclf-endpoint-5xx fired; rolled back to the previous configuration."
    expect_describe(sagemaker, "InService", f"{OLD}-cfg", modified=NOW - 60, reason=reason)
    expect_cleanup_lists(sagemaker, [], [])
    result = lc.on_endpoint_state(ENDPOINT, "IN_SERVICE", lifecycle(), NOW + 200)
    assert result["action"] == "in service"  # no second UpdateEndpoint with B
    outcome = decision(aws, B)["endpoint_outcome"]
    assert outcome["status"] == "rolled-back"
    assert outcome["message"] == f"rolled back to {OLD}-cfg: {reason}"
    assert decision(aws, B)["deploy"] is True  # the gate's decision is kept, the outcome added
    assert subjects(aws) == [f"Model rolled back: {B}"]
    assert load_state().inflight is None and load_state().serving == model(OLD)


def test_failed_endpoint_is_deleted_then_recreated_with_the_newest_passed_model(
    aws, sagemaker, lifecycle, clock
):
    requested = lstate.Request(model(A), "update", f"{OLD}-cfg", NOW - 600)
    seed_state(
        lstate.LifecycleState(
            inflight=requested, pending=model(B), serving=model(OLD), newest_created=model(A).created
        )
    )
    # FAILED event: outcome recorded, the endpoint deleted (DeleteEndpoint is all a Failed one accepts).
    expect_describe(sagemaker, "Failed", f"{A}-cfg", modified=NOW - 30, reason="CannotStartContainerError")
    sagemaker.add_response("delete_endpoint", {}, {"EndpointName": "dogclf-endpoint"})
    result = lc.on_endpoint_state(ENDPOINT, "FAILED", lifecycle(), NOW + 200)
    assert result["action"] == "deleting the Failed endpoint to recreate it"
    assert decision(aws, A)["endpoint_outcome"]["message"] == "failed: CannotStartContainerError"
    assert subjects(aws) == [f"Model deploy failed: {A}"]

    # DELETING event: wait until it is gone, then create it again with B (the newest passed model).
    expect_describe(sagemaker, "Deleting", f"{A}-cfg")
    expect_describe(sagemaker, "Deleting", f"{A}-cfg")
    expect_describe(sagemaker, None)
    expect_describe(sagemaker, None)
    expect_create(sagemaker, B)
    result = lc.on_endpoint_state(ENDPOINT, "DELETING", lifecycle(), deadline=clock[0] + 200)
    assert result["action"] == "create requested"
    state = load_state()
    assert state.inflight is not None
    assert state.inflight.model == model(B)
    assert not state.recreate


def test_failed_create_with_no_other_model_is_not_recreated_forever(aws, sagemaker, lifecycle):
    requested = lstate.Request(model(A), "create", None, NOW - 600)
    seed_state(lstate.LifecycleState(inflight=requested, newest_created=model(A).created))
    expect_describe(sagemaker, "Failed", f"{A}-cfg", reason="model_fn raised")
    sagemaker.add_response("delete_endpoint", {}, {"EndpointName": "dogclf-endpoint"})
    lc.on_endpoint_state(ENDPOINT, "FAILED", lifecycle(), NOW + 200)
    # A duplicate FAILED event records nothing twice.
    expect_describe(sagemaker, "Failed", f"{A}-cfg", reason="model_fn raised")
    sagemaker.add_response("delete_endpoint", {}, {"EndpointName": "dogclf-endpoint"})
    lc.on_endpoint_state(ENDPOINT, "FAILED", lifecycle(), NOW + 200)
    assert subjects(aws) == [f"Model deploy failed: {A}"]
    # Gone: A failed, so there is nothing to recreate it with; no CreateEndpoint.
    expect_describe(sagemaker, None)
    result = lc.on_endpoint_state(ENDPOINT, "DELETING", lifecycle(), NOW + 200)
    assert result["action"] == "no endpoint and no model to deploy"


def test_delete_that_outlasts_the_invocation_is_retried_not_dropped(aws, sagemaker, lifecycle, clock):
    seed_state(lstate.LifecycleState(pending=model(B), recreate=True))
    for _ in range(3):
        expect_describe(sagemaker, "Deleting", f"{A}-cfg")
    with pytest.raises(TransientError, match="still Deleting"):
        lc.on_endpoint_state(ENDPOINT, "DELETING", lifecycle(), deadline=clock[0] + 12)
    assert load_state().pending == model(B)


def test_cleanup_keeps_the_newest_and_never_the_serving_config(aws, sagemaker, lifecycle):
    jobs = [f"dogclf-train-{n:012d}" for n in range(1, 8)]  # 1 = oldest
    created = {job: T0 + timedelta(hours=n) for n, job in enumerate(jobs)}
    serving = jobs[0]  # the oldest: newer ones were rolled back, so it still serves
    seed_state(
        lstate.LifecycleState(serving=lstate.Model(serving, f"{serving}-cfg", created[serving].timestamp()))
    )
    expect_describe(sagemaker, "InService", f"{serving}-cfg")
    rows = [config_row(f"{job}-cfg", created[job]) for job in reversed(jobs)]
    # Two pages of each list; another naming scheme's config is never touched.
    sagemaker.add_response(
        "list_endpoint_configs",
        {"EndpointConfigs": rows[:4], "NextToken": "p2"},
        {"NameContains": "dogclf-train-"},
    )
    sagemaker.add_response(
        "list_endpoint_configs",
        {"EndpointConfigs": [*rows[4:], config_row("dogclf-train-foreign-cfg")]},
        {"NameContains": "dogclf-train-", "NextToken": "p2"},
    )
    sagemaker.add_response(
        "list_models",
        {"Models": [model_row(job, created[job]) for job in jobs], "NextToken": "m2"},
        {"NameContains": "dogclf-train-"},
    )
    sagemaker.add_response(
        "list_models", {"Models": []}, {"NameContains": "dogclf-train-", "NextToken": "m2"}
    )
    # Keep the 3 newest (7, 6, 5) and the serving 1; delete 4, 3, 2, newest first.
    for n in (4, 3, 2):
        sagemaker.add_response(
            "delete_endpoint_config", {}, {"EndpointConfigName": f"dogclf-train-{n:012d}-cfg"}
        )
    for n in (4, 3, 2):
        sagemaker.add_response("delete_model", {}, {"ModelName": f"dogclf-train-{n:012d}"})
    result = lc.on_endpoint_state(ENDPOINT, "IN_SERVICE", lifecycle(), NOW + 200)
    assert result["cleaned_up"] == {
        "configs": [f"dogclf-train-{n:012d}-cfg" for n in (4, 3, 2)],
        "models": [f"dogclf-train-{n:012d}" for n in (4, 3, 2)],
    }


def test_cleanup_plan_is_pure_and_bounded():
    rows = [(f"dogclf-train-{n:012d}-cfg", float(n)) for n in range(1, 6)]
    models = [(name.removesuffix("-cfg"), t) for name, t in rows]
    protected = {"dogclf-train-000000000001-cfg", "dogclf-train-000000000002-cfg"}  # serving, pending
    configs, model_names = decide.cleanup_plan(rows, models, 2, protected, "dogclf")
    assert configs == ["dogclf-train-000000000003-cfg"]
    assert model_names == ["dogclf-train-000000000003"]
    assert decide.cleanup_plan(rows, models, 10, set(), "dogclf") == ([], [])


def test_events_of_other_endpoints_are_ignored_before_any_aws_call(aws, sagemaker, lambda_context):
    from pipeline.handlers import endpoint_state

    event = copy.deepcopy(load_event("endpoint_state.json"))
    event["detail"]["EndpointName"] = "someone-elses-endpoint"
    # The stubber has no responses: any SageMaker call would fail the test; DynamoDB stays empty.
    result = endpoint_state.handler(event, lambda_context)
    assert result == {"ignored": "someone-elses-endpoint", "reason": "not this pipeline's endpoint"}
    assert aws.dynamodb.scan(TableName=ENV["IDEMPOTENCY_TABLE"])["Items"] == []


def test_handler_reads_the_documented_event_shape(aws, sagemaker, lambda_context):
    from pipeline.handlers import endpoint_state

    requested = lstate.Request(model(B), "create", None, T0.timestamp())
    seed_state(lstate.LifecycleState(inflight=requested, newest_created=model(B).created))
    event = load_event("endpoint_state.json")  # EndpointStatus IN_SERVICE, as AWS's example
    event = copy.deepcopy(event)
    event["detail"]["EndpointConfigName"] = f"{B}-cfg"
    expect_describe(sagemaker, "InService", f"{B}-cfg", modified=T0.timestamp() + 60)
    expect_cleanup_lists(sagemaker, [f"{B}-cfg"], [B])
    result = endpoint_state.handler(event, lambda_context)
    assert result["event_status"] == "InService" and result["action"] == "in service"
    assert decision(aws, B)["endpoint_outcome"]["status"] == "in-service"


def test_transient_errors_propagate_and_leave_the_model_pending(aws, sagemaker, lifecycle):
    seed_state(lstate.LifecycleState(pending=model(B)))
    expect_describe(sagemaker, "InService", f"{OLD}-cfg")
    sagemaker.add_client_error(
        "update_endpoint",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=400,
        expected_params=UPDATE_REQUEST_B,
    )
    with pytest.raises(ClientError, match="ThrottlingException"):
        lc.on_endpoint_state(ENDPOINT, "IN_SERVICE", lifecycle(), NOW + 200)
    assert load_state().pending == model(B) and load_state().inflight is None
    sagemaker.add_client_error(
        "describe_endpoint",
        service_error_code="InternalFailure",
        http_status_code=500,
        service_message="oops",
    )
    with pytest.raises(ClientError, match="InternalFailure"):
        lc.on_endpoint_state(ENDPOINT, "IN_SERVICE", lifecycle(), NOW + 200)


@pytest.mark.parametrize(
    ("event_status", "describe_status"),
    [
        ("IN_SERVICE", "InService"),
        ("CREATING", "Creating"),
        ("UPDATING", "Updating"),
        ("SYSTEM_UPDATING", "SystemUpdating"),
        ("ROLLING_BACK", "RollingBack"),
        ("DELETING", "Deleting"),
        ("FAILED", "Failed"),
        ("OUT_OF_SERVICE", "OutOfService"),
        ("UPDATE_ROLLBACK_FAILED", "UpdateRollbackFailed"),
        ("InService", "InService"),
    ],
)
def test_event_statuses_are_read_in_either_spelling(event_status, describe_status):
    assert lstate.normalize_status(event_status) == describe_status


def test_every_endpoint_status_has_a_step():
    """The list docs/deploy.md gives, state by state, with nothing pending and nothing in flight."""
    pending = lstate.LifecycleState(pending=model(B))
    steps = {
        status: decide.next_action(lstate.EndpointView(status, f"{OLD}-cfg", None, NOW), pending).kind
        for status in (
            "Creating",
            "Updating",
            "SystemUpdating",
            "RollingBack",
            "InService",
            "Deleting",
            "Failed",
            "OutOfService",
            "UpdateRollbackFailed",
        )
    }
    assert steps == {
        "Creating": "wait",
        "Updating": "wait",
        "SystemUpdating": "wait",
        "RollingBack": "wait",
        "InService": "update",
        "Deleting": "wait-deleted",
        "Failed": "delete",
        "OutOfService": "attention",
        "UpdateRollbackFailed": "attention",
    }
    assert decide.next_action(None, pending).kind == "create"
    assert (
        decide.next_action(None, lstate.LifecycleState(serving=model(OLD))).kind == "none"
    )  # deleted by a person


def test_deployment_guardrail_event_is_read_like_a_state_event(aws, sagemaker, lambda_context):
    """Instance mode: "SageMaker Endpoint Deployment State Change" (blue/green baking) carries the
    same EndpointName/EndpointStatus; the outcome still comes from DescribeEndpoint."""
    from pipeline.handlers import endpoint_state

    requested = lstate.Request(model(B), "update", f"{OLD}-cfg", NOW)
    seed_state(lstate.LifecycleState(inflight=requested, newest_created=model(B).created))
    event = copy.deepcopy(load_event("endpoint_state.json"))
    event["detail-type"] = "SageMaker Endpoint Deployment State Change"
    event["detail"].update(
        EndpointStatus="UPDATING",
        PendingDeploymentSummary={"EndpointConfigName": f"{B}-cfg", "StartTime": 1764396600000},
    )
    expect_describe(sagemaker, "Updating", f"{OLD}-cfg")
    result = endpoint_state.handler(event, lambda_context)
    assert result["event_status"] == "Updating" and result["steps"] == ["wait"]
    assert load_state().inflight == requested  # nothing recorded until the endpoint settles

"""Training-completed handler: gate and endpoint create/update (Stubber; moto lacks update_endpoint).

The CreateModel and CreateEndpointConfig requests are request snapshots (tests/fixtures/requests/
create_model.json, create_endpoint_config_{serverless,instance}.json, checked against botocore's service
model; request_snapshots.py says how to regenerate them) that the Stubber expects; the fields that carry
their decisions are asserted by name below. UpdateEndpoint's is pinned in test_endpoint_lifecycle.py.
"""

from __future__ import annotations

import copy
import io
import json
import random
import tarfile
from datetime import datetime

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.stub import Stubber
from fn_support import ENV, load_event
from request_snapshots import RequestSnapshots, load_snapshot

from pipeline import deploy_stage as deploy_module
from pipeline.adapters.endpoint_state import EndpointStateStore
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.deploy_stage import TrainingFinishedResult, on_training_finished
from pipeline.endpoint_lifecycle import EndpointLifecycle
from pipeline.endpoint_requests import endpoint_config_request, model_request
from pipeline.settings import Settings, get_settings


def finish(name: str, settings: Settings, store: S3Store | None = None) -> TrainingFinishedResult:
    """on_training_finished with the adapters the training-completed handler builds."""
    store = store or S3Store()
    jobs, notifier = SageMakerJobs(), Notifier(settings.notification_topic_arn)
    state = EndpointStateStore(settings.idempotency_table, settings.endpoint_name)
    lifecycle = EndpointLifecycle(settings, jobs, state, store, notifier)
    return on_training_finished(name, settings, jobs, store, notifier, lifecycle)


@pytest.fixture
def training_completed(aws):
    """The handler module, imported once the test environment is set (it reads settings on import)."""
    from pipeline.handlers import training_completed

    return training_completed


JOB = "dogclf-train-5b2e8f0c1a3d"
ARTIFACTS = ENV["ARTIFACTS_BUCKET"]
ENDPOINT = ENV["ENDPOINT_NAME"]
ENDPOINT_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"


def job_description(status: str = "Completed", accuracy: float = 0.82, **extra) -> dict:
    description = {
        "TrainingJobName": JOB,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{JOB}",
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{ARTIFACTS}/training/{JOB}/output/model.tar.gz"},
        "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": f"s3://{ARTIFACTS}/training/"},
        "ResourceConfig": {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
        "CreationTime": datetime(2026, 11, 29),
        "FinalMetricDataList": [
            {"MetricName": "valid:accuracy", "Value": 0.8, "Timestamp": datetime(2026, 11, 29)},
            {"MetricName": "test:accuracy", "Value": accuracy, "Timestamp": datetime(2026, 11, 29)},
        ],
        **extra,
    }
    if status == "Failed":
        description["FailureReason"] = "AlgorithmError: CUDA out of memory"
    return description


HEALTHY = dict.fromkeys(
    ("VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization", "LossNotDecreasing"),
    "NoIssuesFound",
)
OUTPUT_KEY = f"training/{JOB}/output/output.tar.gz"


def verdicts_json(statuses: dict[str, str]) -> bytes:
    return json.dumps(
        {
            "rules": [
                {
                    "RuleConfigurationName": name,
                    "RuleEvaluationStatus": status,
                    "StatusDetails": "",
                    "Step": 40,
                    "StepsEvaluated": 40,
                }
                for name, status in statuses.items()
            ]
        }
    ).encode()


def tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def put_verdicts(aws, statuses: dict[str, str] | None = None) -> None:
    """output.tar.gz as train_model.py leaves it: the healthy verdicts, with ``statuses`` over them."""
    document = verdicts_json({**HEALTHY, **(statuses or {})})
    body = tar_gz([("metrics.json", b"{}"), ("rule_verdicts.json", document)])
    aws.s3.put_object(Bucket=ARTIFACTS, Key=OUTPUT_KEY, Body=body)


def event(status: str = "Completed") -> dict:
    document = copy.deepcopy(load_event("training_completed.json"))
    document["detail"]["TrainingJobStatus"] = status
    return document


def decision_document(aws) -> dict:
    return json.loads(aws.s3.get_object(Bucket=ARTIFACTS, Key=f"decisions/{JOB}.json")["Body"].read())


MODEL_SNAPSHOT = "create_model"
CONFIG_SNAPSHOTS = {
    "serverless": "create_endpoint_config_serverless",
    "instance": "create_endpoint_config_instance",
}


def in_endpoint_mode(mode: str) -> Settings:
    return get_settings().model_copy(update={"endpoint_mode": mode})


@pytest.mark.parametrize("mode", ["serverless", "instance"])
def test_the_model_and_endpoint_config_requests_are_their_snapshots(
    mode: str, request_snapshot: RequestSnapshots
) -> None:
    settings, description = in_endpoint_mode(mode), job_description()
    # One CreateModel for both modes: the instance mode's EndpointInstanceType (ml.m5.large) runs the
    # same CPU inference image as a serverless endpoint.
    request_snapshot.check(MODEL_SNAPSHOT, model_request(description, settings), "CreateModel")
    config = endpoint_config_request(description, settings)
    request_snapshot.check(CONFIG_SNAPSHOTS[mode], config, "CreateEndpointConfig")


def test_the_serverless_endpoint_serves_the_jobs_model_with_the_stacks_memory_and_concurrency() -> None:
    settings, description = get_settings(), job_description()
    container = model_request(description, settings)["PrimaryContainer"]
    assert container["ModelDataUrl"] == f"s3://{ARTIFACTS}/training/{JOB}/output/model.tar.gz"
    assert (
        container["Image"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"
    )
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    config = endpoint_config_request(description, settings)
    assert config["EndpointConfigName"] == f"{JOB}-cfg"
    [variant] = config["ProductionVariants"]
    assert variant["ModelName"] == JOB
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 5}
    assert "InstanceType" not in variant


def test_an_instance_endpoint_runs_one_instance_of_the_stacks_type() -> None:
    [variant] = endpoint_config_request(job_description(), in_endpoint_mode("instance"))["ProductionVariants"]
    assert variant["ModelName"] == JOB
    assert variant["InstanceType"] == "ml.m5.large" and variant["InitialInstanceCount"] == 1
    assert "ServerlessConfig" not in variant


def expect_model_and_config(stubber: Stubber, mode: str = "serverless") -> None:
    """CreateModel and CreateEndpointConfig for job_description()'s job, exactly their snapshots."""
    stubber.add_response(
        "create_model",
        {"ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{JOB}"},
        load_snapshot(MODEL_SNAPSHOT),
    )
    stubber.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{JOB}-cfg"},
        load_snapshot(CONFIG_SNAPSHOTS[mode]),
    )


def test_passing_job_creates_the_serverless_endpoint(training_completed, aws, sagemaker, lambda_context):
    description = job_description()
    put_verdicts(aws)
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": JOB})
    expect_model_and_config(sagemaker)
    sagemaker.add_client_error(
        "describe_endpoint",
        service_error_code="ValidationException",
        service_message=f"Could not find endpoint {ENDPOINT}.",
    )
    sagemaker.add_response(
        "create_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {"EndpointName": ENDPOINT, "EndpointConfigName": f"{JOB}-cfg"},
    )
    result = training_completed.handler(event(), lambda_context)
    # Requested, not "deployed": the endpoint's own state event records the outcome
    # (tests/functions/test_endpoint_lifecycle.py).
    assert result["deploy"] is True and result["endpoint_action"] == "create requested"
    assert result["endpoint_outcome"] == {"status": "pending", "message": "deploy requested"}
    assert decision_document(aws)["metric_value"] == 0.82
    [note] = aws.notifications()
    assert note["subject"] == f"Model passed the gate (create requested): {JOB}"


def test_instance_endpoint_is_updated_blue_green_with_rollback_alarms(aws, sagemaker):
    settings = in_endpoint_mode("instance")
    description = job_description()
    put_verdicts(aws)
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": JOB})
    expect_model_and_config(sagemaker, "instance")
    sagemaker.add_response(
        "describe_endpoint",
        {
            "EndpointName": ENDPOINT,
            "EndpointArn": ENDPOINT_ARN,
            "EndpointConfigName": "dogclf-train-000000000000-cfg",
            "EndpointStatus": "InService",
            "CreationTime": datetime(2026, 11, 1),
            "LastModifiedTime": datetime(2026, 11, 1),
        },
        {"EndpointName": ENDPOINT},
    )
    # The snapshot's blue/green update (test_endpoint_lifecycle.py checks its decisions), to this job's
    # new config: the config name is this test's decision.
    update = {**load_snapshot("update_endpoint_instance"), "EndpointConfigName": f"{JOB}-cfg"}
    sagemaker.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, update)
    result = finish(JOB, settings)
    assert result["endpoint_action"] == "update requested"


def test_busy_endpoint_keeps_the_model_pending_instead_of_raising(aws, sagemaker):
    settings = get_settings()
    description = job_description()
    put_verdicts(aws)
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": JOB})
    expect_model_and_config(sagemaker)
    sagemaker.add_response(
        "describe_endpoint",
        {
            "EndpointName": ENDPOINT,
            "EndpointArn": ENDPOINT_ARN,
            "EndpointConfigName": "old-cfg",
            "EndpointStatus": "Updating",
            "CreationTime": datetime(2026, 11, 1),
            "LastModifiedTime": datetime(2026, 11, 1),
        },
    )
    # Lambda's two retries end before an update does: the model is pending, deployed on InService.
    result = finish(JOB, settings)
    assert result["endpoint_action"] == "pending (endpoint Updating)"


@pytest.mark.parametrize(
    ("accuracy", "verdicts", "reason"),
    [
        (0.41, None, "test:accuracy 0.4100 is below the threshold 0.6"),
        (0.9, {"VanishingGradient": "IssuesFound"}, "in-script rule VanishingGradient found issues"),
    ],
)
def test_gate_failures_record_the_reason_and_deploy_nothing(
    training_completed, aws, sagemaker, lambda_context, accuracy, verdicts, reason
):
    put_verdicts(aws, verdicts)
    sagemaker.add_response(
        "describe_training_job", job_description(accuracy=accuracy), {"TrainingJobName": JOB}
    )
    result = training_completed.handler(event(), lambda_context)  # no create_* queued: any call would fail
    assert result["deploy"] is False and reason in result["reasons"]
    assert decision_document(aws)["reasons"] == result["reasons"]
    [note] = aws.notifications()
    assert note["subject"] == f"Model not deployed: {JOB}"


def test_overfit_only_warns_and_builtin_issues_block(aws, sagemaker):
    settings = get_settings()
    put_verdicts(aws, {"Overfit": "IssuesFound", "VanishingGradient": "NoIssuesFound"})
    description = job_description(
        DebugRuleEvaluationStatuses=[
            {"RuleConfigurationName": "LossNotDecreasing", "RuleEvaluationStatus": "IssuesFound"},
            {"RuleConfigurationName": "Overtraining", "RuleEvaluationStatus": "InProgress"},
        ]
    )
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": JOB})
    result = finish(JOB, settings)
    # One reason for LossNotDecreasing (the service's verdict), Overtraining still InProgress is no verdict.
    assert result["reasons"] == ["service rule LossNotDecreasing found issues"]
    assert result["warnings"] == ["in-script rule Overfit found issues"]
    assert result["rule_verdicts"]["Overtraining"] == "NoIssuesFound"


def run_gate(sagemaker, store: S3Store | None = None, accuracy: float = 0.82) -> TrainingFinishedResult:
    settings = get_settings()
    description = job_description(accuracy=accuracy)
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": JOB})
    return finish(JOB, settings, store)


def test_missing_output_archive_blocks_deployment(aws, sagemaker):
    result = run_gate(sagemaker)
    assert result["deploy"] is False
    assert result["reasons"] == ["output.tar.gz missing: in-script rules did not report"]


def test_archive_without_verdicts_blocks_deployment(aws, sagemaker):
    aws.s3.put_object(Bucket=ARTIFACTS, Key=OUTPUT_KEY, Body=tar_gz([("metrics.json", b"{}")]))
    result = run_gate(sagemaker)
    assert result["reasons"] == [
        "rule_verdicts.json missing from the job output (in-script rules did not report)"
    ]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not a gzip stream at all", "rule_verdicts.json unreadable: "),
        (tar_gz([("rule_verdicts.json", b"{not json")]), "rule_verdicts.json unreadable: Expecting property"),
        (
            tar_gz([("rule_verdicts.json", b'{"rules": "fine"}')]),
            "rule_verdicts.json unreadable: rule_verdicts",
        ),
    ],
)
def test_unreadable_archive_is_a_recorded_rejection_not_a_retry(aws, sagemaker, body, problem):
    aws.s3.put_object(Bucket=ARTIFACTS, Key=OUTPUT_KEY, Body=body)
    result = run_gate(sagemaker)
    assert result["deploy"] is False and result["reasons"][0].startswith(problem)
    assert decision_document(aws)["reasons"] == result["reasons"]


def test_archive_over_the_cap_is_refused_before_reading(aws, sagemaker, monkeypatch):
    put_verdicts(aws)
    monkeypatch.setattr(deploy_module, "MAX_OUTPUT_ARCHIVE_BYTES", 100)
    result = run_gate(sagemaker)
    assert result["deploy"] is False
    assert "over the 100 the gate reads" in result["reasons"][0]


class CountingStore(S3Store):
    """S3Store whose streamed bodies count the bytes read, or fail with a read timeout part-way."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.read_bytes = 0
        self.fail_after = fail_after

    def open_stream(self, bucket: str, key: str):
        opened = super().open_stream(bucket, key)
        assert opened is not None
        length, body = opened
        store = self

        class Body:
            def read(self, size: int = -1) -> bytes:
                if store.fail_after is not None and store.read_bytes >= store.fail_after:
                    raise ReadTimeoutError(endpoint_url=f"https://s3/{key}")
                chunk = body.read(size)
                store.read_bytes += len(chunk)
                return chunk

            def close(self) -> None:
                body.close()

        return length, Body()


def test_gate_streams_the_archive_and_stops_at_the_verdicts(aws, sagemaker):
    """rule_verdicts.json first, then 4 MB of incompressible data: the gate reads only the start."""
    noise = random.Random(7).randbytes(4 * 1024 * 1024)
    body = tar_gz([("rule_verdicts.json", verdicts_json(HEALTHY)), ("profiler-data.bin", noise)])
    aws.s3.put_object(Bucket=ARTIFACTS, Key=OUTPUT_KEY, Body=body)
    store = CountingStore()
    result = run_gate(sagemaker, store, accuracy=0.1)  # below the threshold: nothing to deploy
    assert result["rule_verdicts"]["VanishingGradient"] == "NoIssuesFound"
    assert 0 < store.read_bytes < len(body) // 4


def test_read_timeout_while_streaming_propagates_for_a_retry(aws, sagemaker):
    noise = random.Random(7).randbytes(1024 * 1024)
    body = tar_gz([("profiler-data.bin", noise), ("rule_verdicts.json", verdicts_json(HEALTHY))])
    aws.s3.put_object(Bucket=ARTIFACTS, Key=OUTPUT_KEY, Body=body)
    with pytest.raises(ReadTimeoutError):
        run_gate(sagemaker, CountingStore(fail_after=64 * 1024))
    assert aws.keys(ARTIFACTS, "decisions/") == []  # nothing recorded: the retry decides


def test_failed_training_job_is_recorded_not_deployed(training_completed, aws, sagemaker, lambda_context):
    sagemaker.add_response("describe_training_job", job_description("Failed"), {"TrainingJobName": JOB})
    result = training_completed.handler(event("Failed"), lambda_context)
    assert result["deploy"] is False and "CUDA out of memory" in result["reasons"][0]


def test_tuner_trial_jobs_are_ignored(aws, sagemaker):
    settings = get_settings()
    trial = job_description(
        TuningJobArn="arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/x"
    )
    sagemaker.add_response("describe_training_job", trial, {"TrainingJobName": JOB})
    result = finish(JOB, settings)
    assert result == {"training_job_name": JOB, "action": "ignored"}
    assert aws.keys(ARTIFACTS, "decisions/") == []


def test_duplicate_training_event_deploys_once(training_completed, aws, sagemaker, lambda_context):
    description = job_description()
    put_verdicts(aws)
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": JOB})
    expect_model_and_config(sagemaker)
    sagemaker.add_client_error(
        "describe_endpoint",
        service_error_code="ValidationException",
        service_message="Could not find endpoint",
    )
    sagemaker.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN})
    assert training_completed.handler(event(), lambda_context) == training_completed.handler(
        event(), lambda_context
    )


def test_unexpected_sagemaker_errors_propagate(aws, sagemaker):
    settings = get_settings()
    sagemaker.add_client_error(
        "describe_training_job", service_error_code="ThrottlingException", service_message="slow down"
    )
    with pytest.raises(ClientError):
        finish(JOB, settings)


def test_a_retry_after_the_endpoint_outcome_keeps_it_and_offers_nothing(aws, sagemaker):
    """The first attempt handed the model over and died; the endpoint's event then recorded the
    real outcome (failed). The retry (or redrive) must not overwrite it, nor offer the model again."""
    settings = get_settings()
    description = job_description()
    put_verdicts(aws)
    recorded = {
        "training_job_name": JOB,
        "endpoint_name": ENDPOINT,
        "endpoint_outcome": {
            "status": "failed",
            "message": "failed: boom",
            "endpoint_config": f"{JOB}-cfg",
            "failure_reason": "boom",
        },
    }
    aws.s3.put_object(Bucket=ARTIFACTS, Key=f"decisions/{JOB}.json", Body=json.dumps(recorded).encode())
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": JOB})
    # No create_model, create_endpoint_config or describe_endpoint: the Stubber fails on any of them.
    result = finish(JOB, settings)
    assert result["endpoint_outcome"] == recorded["endpoint_outcome"]
    assert decision_document(aws)["endpoint_outcome"] == recorded["endpoint_outcome"]
    assert decision_document(aws)["deploy"] is True

"""Training-completed handler: gate and endpoint create/update (Stubber; moto lacks update_endpoint)."""

from __future__ import annotations

import copy
import io
import json
import tarfile
from datetime import datetime

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from fn_support import ENV, load_event

from pipeline.adapters.aws import client
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.deploy import (
    EndpointBusyError,
    endpoint_config_request,
    model_request,
    on_training_finished,
    update_endpoint_request,
)
from pipeline.settings import get_settings


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


def put_verdicts(aws, statuses: dict[str, str] | None = None) -> None:
    statuses = statuses or {"VanishingGradient": "NoIssuesFound", "Overfit": "NoIssuesFound"}
    document = {
        "rules": [
            {"RuleConfigurationName": name, "RuleEvaluationStatus": status, "StatusDetails": "", "Step": None}
            for name, status in statuses.items()
        ]
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        for name, content in (("metrics.json", b"{}"), ("rule_verdicts.json", json.dumps(document).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    aws.s3.put_object(Bucket=ARTIFACTS, Key=f"training/{JOB}/output/output.tar.gz", Body=raw.getvalue())


def event(status: str = "Completed") -> dict:
    document = copy.deepcopy(load_event("training_completed.json"))
    document["detail"]["TrainingJobStatus"] = status
    return document


def decision_document(aws) -> dict:
    return json.loads(aws.s3.get_object(Bucket=ARTIFACTS, Key=f"decisions/{JOB}.json")["Body"].read())


@pytest.fixture
def sagemaker(aws):
    stubber = Stubber(client("sagemaker"))
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


def expect_model_and_config(stubber: Stubber, description: dict, settings) -> None:
    stubber.add_response(
        "create_model",
        {"ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{JOB}"},
        model_request(description, settings),
    )
    stubber.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{JOB}-cfg"},
        endpoint_config_request(description, settings),
    )


def test_passing_job_creates_the_serverless_endpoint(training_completed, aws, sagemaker, lambda_context):
    settings = get_settings()
    description = job_description()
    put_verdicts(aws)
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": JOB})
    expect_model_and_config(sagemaker, description, settings)
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
    assert result["deploy"] is True and result["endpoint_action"] == "created"
    assert decision_document(aws)["metric_value"] == 0.82
    variant = endpoint_config_request(description, settings)["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 5}
    container = model_request(description, settings)["PrimaryContainer"]
    assert (
        container["Image"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"
    )
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    [note] = aws.notifications()
    assert note["subject"] == f"Model deployed (created): {JOB}"


def test_instance_endpoint_is_updated_blue_green_with_rollback_alarms(aws, sagemaker):
    settings = get_settings().model_copy(update={"endpoint_mode": "instance"})
    description = job_description()
    put_verdicts(aws)
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": JOB})
    expect_model_and_config(sagemaker, description, settings)
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
    request = update_endpoint_request(f"{JOB}-cfg", settings)
    sagemaker.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, request)
    result = on_training_finished(
        JOB, settings, SageMakerJobs(), S3Store(), Notifier(settings.notification_topic_arn)
    )
    assert result["endpoint_action"] == "updated"
    deployment = request["DeploymentConfig"]
    assert deployment["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"
    assert [alarm["AlarmName"] for alarm in deployment["AutoRollbackConfiguration"]["Alarms"]] == [
        "dogclf-endpoint-5xx",
        "dogclf-endpoint-latency",
    ]
    variant = endpoint_config_request(description, settings)["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.m5.large" and "ServerlessConfig" not in variant


def test_busy_endpoint_raises_for_a_retry(aws, sagemaker):
    settings = get_settings()
    description = job_description()
    put_verdicts(aws)
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": JOB})
    expect_model_and_config(sagemaker, description, settings)
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
    with pytest.raises(EndpointBusyError, match="Updating"):
        on_training_finished(
            JOB, settings, SageMakerJobs(), S3Store(), Notifier(settings.notification_topic_arn)
        )


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
    result = on_training_finished(
        JOB, settings, SageMakerJobs(), S3Store(), Notifier(settings.notification_topic_arn)
    )
    assert result["reasons"] == ["built-in rule LossNotDecreasing found issues"]
    assert result["warnings"] == ["in-script rule Overfit: IssuesFound"]


def test_missing_verdicts_block_deployment(aws, sagemaker):
    settings = get_settings()
    sagemaker.add_response("describe_training_job", job_description(), {"TrainingJobName": JOB})
    result = on_training_finished(
        JOB, settings, SageMakerJobs(), S3Store(), Notifier(settings.notification_topic_arn)
    )
    assert result["deploy"] is False and "rule_verdicts.json missing" in result["reasons"][0]


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
    result = on_training_finished(
        JOB, settings, SageMakerJobs(), S3Store(), Notifier(settings.notification_topic_arn)
    )
    assert result == {"training_job_name": JOB, "action": "ignored"}
    assert aws.keys(ARTIFACTS, "decisions/") == []


def test_duplicate_training_event_deploys_once(training_completed, aws, sagemaker, lambda_context):
    settings = get_settings()
    description = job_description()
    put_verdicts(aws)
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": JOB})
    expect_model_and_config(sagemaker, description, settings)
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
        on_training_finished(
            JOB, settings, SageMakerJobs(), S3Store(), Notifier(settings.notification_topic_arn)
        )

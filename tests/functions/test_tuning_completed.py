"""Tuning-completed handler: Stubber for SageMaker (moto has a fixed BestTrainingJob), moto for the rest."""

from __future__ import annotations

import copy
import json
from datetime import datetime

import pytest
from botocore.stub import ANY, Stubber
from fn_support import ENV, load_event

from pipeline.adapters.aws import client
from pipeline.settings import get_settings
from pipeline.training import BUILTIN_RULES, build_training_request, training_job_name
from pipeline.tuning import build_tuning_request


@pytest.fixture
def tuning_completed(aws):
    """The handler module, imported once the test environment is set (it reads settings on import)."""
    from pipeline.handlers import tuning_completed

    return tuning_completed


TUNING = "dogclf-hpo-3f1c2a9b7d4e"
ARN_PREFIX = "arn:aws:sagemaker:us-east-1:123456789012"


def tuning_description(status: str = "Completed", best: bool = True) -> dict:
    manifest = {
        "dataset_id": "dogimages-3f1c2a9b7d4e",
        "channels": {
            split: f"s3://{ENV['DATASET_BUCKET']}/datasets/x/{split}/" for split in ("train", "valid", "test")
        },
    }
    metrics = json.loads(
        (get_settings().training_code_dir / "dogclf" / "metric_definitions.json").read_text()
    )
    request = build_tuning_request(
        manifest, get_settings(), "s3://artifacts/code/abc/sourcedir.tar.gz", metrics
    )
    description = {
        "HyperParameterTuningJobName": TUNING,
        "HyperParameterTuningJobArn": f"{ARN_PREFIX}:hyper-parameter-tuning-job/{TUNING}",
        "HyperParameterTuningJobConfig": request["HyperParameterTuningJobConfig"],
        "TrainingJobDefinition": request["TrainingJobDefinition"],
        "HyperParameterTuningJobStatus": status,
        "CreationTime": datetime(2026, 11, 29),
        "TrainingJobStatusCounters": {},
        "ObjectiveStatusCounters": {},
    }
    if status == "Failed":
        description["FailureReason"] = "All training jobs failed: ClientError: out of memory"
    if best:
        description["BestTrainingJob"] = {
            "TrainingJobName": f"{TUNING}-003-a1b2c3d4",
            "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{TUNING}-003-a1b2c3d4",
            "CreationTime": datetime(2026, 11, 29),
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": {"learning_rate": "0.0031", "epochs": "4", "batch_size": '"64"'},
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "valid:accuracy", "Value": 0.81},
        }
    return description


def event(status: str = "Completed") -> dict:
    document = copy.deepcopy(load_event("tuning_completed.json"))
    document["detail"]["HyperParameterTuningJobStatus"] = status
    return document


@pytest.fixture
def sagemaker(aws):
    stubber = Stubber(client("sagemaker"))
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


def test_completed_tuning_starts_the_profiled_job_with_the_best_hyperparameters(
    tuning_completed, aws, sagemaker, lambda_context
):
    description = tuning_description()
    expected = build_training_request(description, get_settings())
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job", description, {"HyperParameterTuningJobName": TUNING}
    )
    sagemaker.add_response(
        "create_training_job",
        {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/x"},
        expected,
    )

    result = tuning_completed.handler(event(), lambda_context)

    name = training_job_name("dogclf", TUNING)
    assert result["action"] == "training-started" and result["training_job_name"] == name
    hyperparameters = expected["HyperParameters"]
    assert hyperparameters["learning_rate"] == "0.0031" and hyperparameters["batch_size"] == '"64"'
    assert json.loads(hyperparameters["sagemaker_program"]) == "train_model.py"
    assert json.loads(hyperparameters["sagemaker_job_name"]) == name
    assert json.loads(hyperparameters["weights"]) == "none"
    assert {rule["RuleConfigurationName"] for rule in expected["DebugRuleConfigurations"]} == set(
        BUILTIN_RULES.values()
    )
    assert expected["DebugRuleConfigurations"][0]["RuleEvaluatorImage"] == (
        "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
    )
    assert expected["ProfilerRuleConfigurations"][0]["RuleConfigurationName"] == "ProfilerReport"
    assert expected["DebugHookConfig"]["S3OutputPath"] == f"s3://{ENV['ARTIFACTS_BUCKET']}/debug-output/"
    # The profiled job's name matches the EventBridge prefix; the tuner's trial names never do.
    assert name.startswith("dogclf-train-") and not result["best_trial"].startswith("dogclf-train-")
    [note] = aws.notifications()
    assert note["subject"] == f"Profiled training started: {name}"


def test_duplicate_tuning_event_starts_nothing_twice(tuning_completed, aws, sagemaker, lambda_context):
    description = tuning_description()
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job", description, {"HyperParameterTuningJobName": TUNING}
    )
    sagemaker.add_response(
        "create_training_job",
        {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/x"},
        {**build_training_request(description, get_settings())},
    )
    first = tuning_completed.handler(event(), lambda_context)
    second = tuning_completed.handler(event(), lambda_context)  # Stubber would fail on a second call
    assert first == second


def test_in_script_debugger_mode_has_no_rule_containers():
    settings = get_settings().model_copy(update={"debugger_mode": "in-script"})
    request = build_training_request(tuning_description(), settings)
    assert "DebugRuleConfigurations" not in request and "ProfilerRuleConfigurations" not in request
    assert request["ProfilerConfig"] == {"DisableProfiler": True}
    assert request["DebugHookConfig"]["CollectionConfigurations"]


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_failed_or_stopped_tuning_notifies_and_starts_nothing(
    tuning_completed, aws, sagemaker, lambda_context, status
):
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job",
        tuning_description(status, best=False),
        {"HyperParameterTuningJobName": ANY},
    )
    result = tuning_completed.handler(event(status), lambda_context)
    assert result["action"] == "none" and result["status"] == status
    [note] = aws.notifications()
    assert note["subject"] == f"Tuning {status}: {TUNING}"
    if status == "Failed":
        assert "out of memory" in note["message"]["reason"]


def test_completed_tuning_without_a_best_trial_stops(tuning_completed, aws, sagemaker, lambda_context):
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job",
        tuning_description(best=False),
        {"HyperParameterTuningJobName": TUNING},
    )
    result = tuning_completed.handler(event(), lambda_context)
    assert result["reason"] == "no trial reported the objective metric"


def test_existing_training_job_counts_as_started(tuning_completed, aws, sagemaker, lambda_context):
    description = tuning_description()
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job", description, {"HyperParameterTuningJobName": TUNING}
    )
    sagemaker.add_client_error(
        "create_training_job",
        service_error_code="ResourceInUse",
        service_message="Training job already exists",
    )
    result = tuning_completed.handler(event(), lambda_context)
    assert result["action"] == "training-already-started"
    assert aws.notifications() == []

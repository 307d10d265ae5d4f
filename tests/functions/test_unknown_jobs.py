"""Events about jobs this pipeline did not start (another stack's, AWS's samples) are ignored before any
AWS call: no Describe on a job we may not read, no idempotency record, no error.

The events have the shape of AWS's documented samples ("Events that Amazon SageMaker AI sends to
Amazon EventBridge"): the job names there are UUIDs, without our <prefix>-hpo- / <prefix>-train- /
<prefix>-feat-.
Every AWS client the handlers use is wrapped in a Stubber with nothing queued, so any call fails.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from botocore.stub import Stubber
from fn_support import load_event

from pipeline.adapters.aws import client

TRAINING_SAMPLE = {
    "version": "0",
    "id": "844e2571-85d4-695f-b930-0153b71dcb42",
    "detail-type": "SageMaker Training Job State Change",
    "source": "aws.sagemaker",
    "account": "123456789012",
    "time": "2018-10-06T12:26:13Z",
    "region": "us-east-1",
    "resources": ["arn:aws:sagemaker:us-east-1:123456789012:training-job/kmeans-1"],
    "detail": {
        "TrainingJobName": "89c96cc8-dded-4739-afcc-6f1dc936701d",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/kmeans-1",
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "HyperParameters": {"k": "10", "feature_dim": "784"},
        "AlgorithmSpecification": {"TrainingImage": "kmeans:1", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "CreationTime": 1538828770000,
        "TrainingEndTime": 1538828771000,
    },
}
TUNING_SAMPLE = {
    "version": "0",
    "id": "844e2571-85d4-695f-b930-0153b71dcb42",
    "detail-type": "SageMaker HyperParameter Tuning Job State Change",
    "source": "aws.sagemaker",
    "account": "123456789012",
    "time": "2018-10-06T12:26:13Z",
    "region": "us-east-1",
    "resources": ["arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/a1b2c3d4"],
    "detail": {
        "HyperParameterTuningJobName": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "HyperParameterTuningJobArn": (
            "arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/a1b2c3d4"
        ),
        "HyperParameterTuningJobStatus": "Completed",
        "CreationTime": 1538828770000,
    },
}


@pytest.fixture
def no_aws_calls(aws) -> Iterator[None]:
    stubbers = [Stubber(client(service)) for service in ("sagemaker", "dynamodb", "s3", "sns")]
    for stubber in stubbers:
        stubber.activate()
    yield
    for stubber in stubbers:
        stubber.assert_no_pending_responses()
        stubber.deactivate()


def test_training_sample_event_is_ignored_without_an_aws_call(no_aws_calls, lambda_context, caplog) -> None:
    from pipeline.handlers import training_completed

    result = training_completed.handler(copy.deepcopy(TRAINING_SAMPLE), lambda_context)
    assert result == {
        "ignored": "89c96cc8-dded-4739-afcc-6f1dc936701d",
        "reason": "not a training job of this pipeline",
    }


def test_training_sample_event_is_not_a_features_job(no_aws_calls, lambda_context) -> None:
    from pipeline.handlers import features_completed

    result = features_completed.handler(copy.deepcopy(TRAINING_SAMPLE), lambda_context)
    assert result == {
        "ignored": "89c96cc8-dded-4739-afcc-6f1dc936701d",
        "reason": "not a features job of this pipeline",
    }


def test_tuning_sample_event_is_ignored_without_an_aws_call(no_aws_calls, lambda_context) -> None:
    from pipeline.handlers import tuning_completed

    result = tuning_completed.handler(copy.deepcopy(TUNING_SAMPLE), lambda_context)
    assert result["ignored"] == "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


@pytest.mark.parametrize(
    ("module", "event_file", "field", "name"),
    [
        (
            "tuning_completed",
            "tuning_completed.json",
            "HyperParameterTuningJobName",
            "otherpipe-hpo-3f1c2a9b7d4e",
        ),
        # A tuner trial of our own tuning job: not the profiled job.
        (
            "training_completed",
            "training_completed.json",
            "TrainingJobName",
            "dogclf-hpo-3f1c2a9b7d4e-001-ab12cd34",
        ),
        ("training_completed", "training_completed.json", "TrainingJobName", "otherpipe-train-5b2e8f0c1a3d"),
        # Our features job is not the profiled job, and our profiled job is not a features job.
        ("training_completed", "training_completed.json", "TrainingJobName", "dogclf-feat-87b6daf086c2"),
        ("features_completed", "features_completed.json", "TrainingJobName", "dogclf-train-5b2e8f0c1a3d"),
        ("features_completed", "features_completed.json", "TrainingJobName", "otherpipe-feat-87b6daf086c2"),
    ],
)
def test_another_pipelines_jobs_are_ignored(
    no_aws_calls, lambda_context, module, event_file, field, name
) -> None:
    import importlib

    handler = importlib.import_module(f"pipeline.handlers.{module}").handler
    event = load_event(event_file)
    event["detail"][field] = name
    assert handler(event, lambda_context)["ignored"] == name


def test_our_own_job_still_reaches_aws(no_aws_calls, lambda_context) -> None:
    """The guard is not vacuous: our job name gets past it, to the first (stubbed, failing) call."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError
    from botocore.exceptions import UnStubbedResponseError

    from pipeline.handlers import tuning_completed

    # Its first call is the idempotency record's PutItem, which Powertools wraps.
    with pytest.raises(IdempotencyPersistenceLayerError) as caught:
        tuning_completed.handler(load_event("tuning_completed.json"), lambda_context)
    assert isinstance(caught.value.__cause__, UnStubbedResponseError)


def test_our_own_features_job_still_reaches_aws(no_aws_calls, lambda_context) -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError
    from botocore.exceptions import UnStubbedResponseError

    from pipeline.handlers import features_completed

    with pytest.raises(IdempotencyPersistenceLayerError) as caught:
        features_completed.handler(load_event("features_completed.json"), lambda_context)
    assert isinstance(caught.value.__cause__, UnStubbedResponseError)

"""The features stage: the manifest event starts the features job (or reuses its output), its completion
starts tuning on the one features channel, its failure is recorded and notified.

The CreateTrainingJob request of the features job is a request snapshot
(tests/fixtures/requests/create_training_job_features.json, checked against botocore's service model;
request_snapshots.py says how to regenerate it), and the fields that carry its decisions are asserted by
name below. SageMaker is a botocore Stubber where a request must be exact (or must not happen), moto
where a flow needs a job to exist; S3, DynamoDB and SNS are moto.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY
from fn_support import ENV, REGION, load_event, s3_event
from request_snapshots import RequestSnapshots, load_snapshot

from dogclf import contract
from pipeline.settings import get_settings

DATASETS = ENV["DATASET_BUCKET"]
ARTIFACTS = ENV["ARTIFACTS_BUCKET"]
DATASET = "dogimages-0123456789ab"
MANIFEST_KEY = f"datasets/{DATASET}/manifest.json"
# contract.features_key(DATASET, "none", 224, "2.6.0"): the test environment's weights, size, framework
KEY = "87b6daf086c2"
FEATURES_JOB = "dogclf-feat-87b6daf086c2"
TUNING_JOB = "dogclf-hpo-90041e3395b7"  # contract.tuning_job_name("dogclf", DATASET)
MODEL_KEY = f"features/{KEY}/{FEATURES_JOB}/output/model.tar.gz"
ARN_PREFIX = f"arn:aws:sagemaker:{REGION}:123456789012"
SUBMIT_DIRECTORY = "s3://test-artifacts/code/0123456789abcdef/sourcedir.tar.gz"


def image_channel(split: str) -> dict[str, Any]:
    return {
        "ChannelName": split,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": f"s3://{DATASETS}/datasets/{DATASET}/{split}/",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }


# The features job's request for the test environment (PretrainedWeights none, ImageSize 224, the
# default FeaturesInstanceType ml.m5.xlarge), on the source dir SUBMIT_DIRECTORY.
FEATURES_SNAPSHOT = "create_training_job_features"
MANIFEST: dict[str, Any] = {
    "dataset_id": DATASET,
    "bucket": DATASETS,
    "prefix": f"datasets/{DATASET}/",
    "channels": {
        split: f"s3://{DATASETS}/datasets/{DATASET}/{split}/" for split in ("train", "valid", "test")
    },
    "classes": ["Affenpinscher", "Akita"],
    "images": {"train": 8, "valid": 4, "test": 4},
}


def put_manifest(aws) -> None:
    aws.s3.put_object(Bucket=DATASETS, Key=MANIFEST_KEY, Body=json.dumps(MANIFEST).encode())


def manifest_event(etag: str = "etag-1") -> dict[str, Any]:
    return s3_event("dataset_ready.json", DATASETS, MANIFEST_KEY, etag=etag)


def features_event(status: str = "Completed", name: str = FEATURES_JOB) -> dict[str, Any]:
    event = copy.deepcopy(load_event("features_completed.json"))
    event["detail"]["TrainingJobName"] = name
    event["detail"]["TrainingJobStatus"] = status
    return event


def features_description(status: str = "InProgress") -> dict[str, Any]:
    """DescribeTrainingJob's answer for the features job (what AWS returns, not what we sent)."""
    sent = load_snapshot(FEATURES_SNAPSHOT)  # the job as the manifest handler requests it
    description: dict[str, Any] = {
        "TrainingJobName": FEATURES_JOB,
        "TrainingJobArn": f"{ARN_PREFIX}:training-job/{FEATURES_JOB}",
        "TrainingJobStatus": status,
        "SecondaryStatus": "Training" if status == "InProgress" else status,
        "HyperParameters": sent["HyperParameters"],
        "AlgorithmSpecification": sent["AlgorithmSpecification"],
        "RoleArn": sent["RoleArn"],
        "InputDataConfig": sent["InputDataConfig"],
        "OutputDataConfig": sent["OutputDataConfig"],
        "ResourceConfig": sent["ResourceConfig"],
        "StoppingCondition": sent["StoppingCondition"],
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{ARTIFACTS}/{MODEL_KEY}"},
        "CreationTime": datetime(2026, 11, 29),
    }
    if status == "Failed":
        description["FailureReason"] = "AlgorithmError: ExecuteUserScriptError: CUDA out of memory"
    return description


@pytest.fixture
def dataset_ready(aws):
    """The manifest handler, imported once the test environment is set (it reads settings on import)."""
    from pipeline.handlers import dataset_ready

    return dataset_ready


@pytest.fixture
def features_completed(aws):
    from pipeline.handlers import features_completed

    return features_completed


def built_features_request() -> dict[str, Any]:
    from pipeline.features_stage import build_features_request

    assert contract.features_key(DATASET, "none", 224, "2.6.0") == KEY
    return build_features_request(MANIFEST, get_settings(), SUBMIT_DIRECTORY, KEY)


def test_the_features_request_is_its_snapshot(request_snapshot: RequestSnapshots) -> None:
    request_snapshot.check(FEATURES_SNAPSHOT, built_features_request(), "CreateTrainingJob")


def test_the_features_job_computes_the_stacks_features_of_the_three_image_channels() -> None:
    """The decisions of the features request, by name: which features (weights, size, key), from which
    images, on which machine and image, written where."""
    request = built_features_request()
    hyperparameters = {key: json.loads(value) for key, value in request["HyperParameters"].items()}
    assert hyperparameters["weights"] == "none" and hyperparameters["image_size"] == 224
    assert hyperparameters["features_key"] == KEY and hyperparameters["framework_version"] == "2.6.0"
    assert hyperparameters["sagemaker_program"] == "features.py"
    assert hyperparameters["sagemaker_submit_directory"] == SUBMIT_DIRECTORY
    assert request["InputDataConfig"] == [image_channel(split) for split in ("train", "valid", "test")]
    assert request["OutputDataConfig"] == {"S3OutputPath": f"s3://{ARTIFACTS}/features/{KEY}/"}
    assert request["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert request["AlgorithmSpecification"]["TrainingImage"] == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-cpu-py312"
    )
    # No Debugger API field: the features job runs in accounts that have no Debugger.
    assert [field for field in request if field.startswith(("Debug", "Profiler"))] == []


def test_manifest_starts_the_features_job_of_the_snapshot_and_no_tuning(
    dataset_ready, aws, sagemaker, lambda_context
):
    put_manifest(aws)
    expected = load_snapshot(FEATURES_SNAPSHOT)
    # The handler uploads the training code under its content hash (the snapshot's request was built on
    # SUBMIT_DIRECTORY); the note below checks the uploaded archive instead.
    expected["HyperParameters"]["sagemaker_submit_directory"] = ANY
    sagemaker.add_response(
        "create_training_job", {"TrainingJobArn": f"{ARN_PREFIX}:training-job/{FEATURES_JOB}"}, expected
    )
    [result] = dataset_ready.handler(manifest_event(), lambda_context)  # nothing else queued: no tuning
    assert result["action"] == "features-started"
    assert result["features_job_name"] == FEATURES_JOB and result["features_key"] == KEY
    [note] = aws.notifications()
    assert note["subject"] == f"Features started: {FEATURES_JOB}"
    # The code the features job runs was uploaded, with features.py in it.
    assert aws.keys(ARTIFACTS, "code/") and note["message"]["source_dir"].endswith("/sourcedir.tar.gz")


def test_duplicate_manifest_delivery_starts_one_features_job(dataset_ready, aws, sagemaker, lambda_context):
    put_manifest(aws)
    sagemaker.add_response("create_training_job", {"TrainingJobArn": f"{ARN_PREFIX}:training-job/x"}, None)
    first = dataset_ready.handler(manifest_event(), lambda_context)
    second = dataset_ready.handler(manifest_event(), lambda_context)  # the same record: Stubber has no 2nd
    assert first == second
    # A new delivery (another ETag, so another idempotency key): SageMaker refuses the name.
    sagemaker.add_client_error(
        "create_training_job",
        service_error_code="ValidationException",
        service_message="Training job names must be unique within an AWS account and region, and a "
        f"training job with this name already exists ({ARN_PREFIX}:training-job/{FEATURES_JOB})",
    )
    sagemaker.add_response(
        "describe_training_job", features_description("InProgress"), {"TrainingJobName": FEATURES_JOB}
    )
    [third] = dataset_ready.handler(manifest_event(etag="etag-2"), lambda_context)
    assert third["action"] == "features-already-started" and third["status"] == "InProgress"
    assert [n["subject"] for n in aws.notifications()] == [f"Features started: {FEATURES_JOB}"]


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_an_earlier_failed_features_job_is_recorded_and_notified(
    dataset_ready, aws, sagemaker, lambda_context, status
):
    put_manifest(aws)
    sagemaker.add_client_error(
        "create_training_job",
        service_error_code="ResourceInUse",
        service_message=f"Training job {FEATURES_JOB} already exists",
    )
    sagemaker.add_response(
        "describe_training_job", features_description(status), {"TrainingJobName": FEATURES_JOB}
    )
    [result] = dataset_ready.handler(manifest_event(), lambda_context)
    assert result["action"] == "none" and result["status"] == status
    [note] = aws.notifications()
    assert note["subject"] == f"Features {status}: {FEATURES_JOB}"
    assert note["message"]["reason"] == result["reason"]
    # The same delivery again is answered from the record: no crash loop, no second notification.
    assert dataset_ready.handler(manifest_event(), lambda_context) == [result]
    assert aws.notifications() == []


def test_existing_features_are_reused_without_a_features_job(dataset_ready, aws, lambda_context):
    """moto SageMaker: the tuning job starts at once, on the one features object; no training job."""
    put_manifest(aws)
    aws.s3.put_object(Bucket=ARTIFACTS, Key=MODEL_KEY, Body=b"features of an earlier run")
    [result] = dataset_ready.handler(manifest_event(), lambda_context)
    assert result["action"] == "tuning-from-cached-features" and result["tuning_job_name"] == TUNING_JOB
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []
    definition = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=TUNING_JOB)[
        "TrainingJobDefinition"
    ]
    assert definition["InputDataConfig"] == [
        {
            "ChannelName": contract.FEATURES_CHANNEL,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{ARTIFACTS}/{MODEL_KEY}",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
    ]
    assert json.loads(definition["StaticHyperParameters"]["dataset_manifest"]) == (
        f"s3://{DATASETS}/{MANIFEST_KEY}"
    )
    [note] = aws.notifications()
    assert note["subject"] == f"Tuning started: {TUNING_JOB}"


def test_augment_trials_tune_on_the_images_at_once(aws, lambda_context, monkeypatch) -> None:
    monkeypatch.setenv("AUGMENT_TRIALS", "true")
    from pipeline.handlers import dataset_ready

    put_manifest(aws)
    aws.s3.put_object(Bucket=ARTIFACTS, Key=MODEL_KEY, Body=b"features are not what augmented trials read")
    [result] = dataset_ready.handler(manifest_event(), lambda_context)
    assert result["action"] == "tuning-from-images" and result["channels"] == ["train", "valid", "test"]
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []
    definition = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=TUNING_JOB)[
        "TrainingJobDefinition"
    ]
    assert definition["InputDataConfig"] == [image_channel(s) for s in ("train", "valid", "test")]
    assert definition["StaticHyperParameters"]["augment"] == "true"


def test_completed_features_start_tuning_on_the_features_channel_only(
    features_completed, aws, lambda_context
) -> None:
    """moto SageMaker: the features job exists (as the manifest handler created it), then its event."""
    sm = boto3.client("sagemaker", region_name=REGION)
    sm.create_training_job(**load_snapshot(FEATURES_SNAPSHOT))

    result = features_completed.handler(features_event("Completed"), lambda_context)

    assert result["action"] == "tuning-from-features" and result["tuning_job_name"] == TUNING_JOB
    assert result["features"] == f"s3://{ARTIFACTS}/{MODEL_KEY}"
    definition = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=TUNING_JOB)[
        "TrainingJobDefinition"
    ]
    [channel] = definition["InputDataConfig"]
    assert channel["ChannelName"] == "features"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{ARTIFACTS}/{MODEL_KEY}"
    static = {key: json.loads(value) for key, value in definition["StaticHyperParameters"].items()}
    assert static["dataset_manifest"] == f"s3://{DATASETS}/{MANIFEST_KEY}"
    assert static["sagemaker_program"] == "hpo.py" and "augment" not in static
    [note] = aws.notifications()
    assert note["subject"] == f"Tuning started: {TUNING_JOB}"
    # A duplicate delivery of the same event is answered from the idempotency record.
    assert features_completed.handler(features_event("Completed"), lambda_context) == result
    assert aws.notifications() == []


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_failed_features_job_is_recorded_and_notified_and_starts_nothing(
    features_completed, aws, sagemaker, lambda_context, status
) -> None:
    description = features_description(status)
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": FEATURES_JOB})
    result = features_completed.handler(features_event(status), lambda_context)  # no tuning queued
    assert result["action"] == "none" and result["status"] == status
    assert result["reason"] == description.get("FailureReason", f"features job {status}")
    [note] = aws.notifications()
    assert note["subject"] == f"Features {status}: {FEATURES_JOB}"
    assert note["message"]["reason"] == result["reason"]


def test_completed_features_job_without_a_dataset_is_a_recorded_permanent_error(
    features_completed, aws, sagemaker, lambda_context
) -> None:
    description = features_description("Completed")
    # No train channel: no manifest to hand on to the profiled job.
    description["InputDataConfig"] = [{**image_channel("train"), "ChannelName": "images"}]
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": FEATURES_JOB})
    result = features_completed.handler(features_event("Completed"), lambda_context)
    assert result["action"] == "none" and "no S3 'train' channel" in result["reason"]
    [note] = aws.notifications()
    assert note["subject"] == f"Tuning not started: {FEATURES_JOB}"


@pytest.mark.parametrize(
    "name",
    [
        "other-feat-87b6daf086c2",  # another stack's features job
        "dogclf-train-388d2c0ba13e",  # our profiled job
        f"{TUNING_JOB}-003-a1b2c3d4",  # a tuning trial
        "dogclf-feat-87b6daf086c2-extra",
    ],
)
def test_jobs_that_are_not_our_features_jobs_are_ignored_before_any_aws_call(
    features_completed, aws, sagemaker, lambda_context, name
) -> None:
    result = features_completed.handler(features_event("Completed", name), lambda_context)
    assert result == {"ignored": name, "reason": "not a features job of this pipeline"}
    assert aws.notifications() == []


def test_a_second_upload_of_the_same_images_reuses_their_features(dataset_ready, aws, lambda_context):
    """Features are computed once per set of images, not per upload: another upload is another dataset (its
    own id and tuning job), but the features are keyed on the images' content id, so it starts no features
    job."""
    content = "sha256:" + "ab" * 32
    key = contract.features_key(content, "none", 224, "2.6.0")
    job = contract.features_job_name("dogclf", key)
    aws.s3.put_object(
        Bucket=ARTIFACTS,
        Key=f"features/{key}/{job}/output/model.tar.gz",
        Body=b"features of the first upload",
    )
    second = "dogimages-fedcba987654"
    manifest = {**MANIFEST, "dataset_id": second, "content_id": content, "prefix": f"datasets/{second}/"}
    manifest_key = f"datasets/{second}/manifest.json"
    aws.s3.put_object(Bucket=DATASETS, Key=manifest_key, Body=json.dumps(manifest).encode())
    [result] = dataset_ready.handler(s3_event("dataset_ready.json", DATASETS, manifest_key), lambda_context)
    assert result["action"] == "tuning-from-cached-features" and result["features_job_name"] == job
    assert result["tuning_job_name"] == contract.tuning_job_name("dogclf", second)
    assert boto3.client("sagemaker", region_name=REGION).list_training_jobs()["TrainingJobSummaries"] == []


def test_the_features_job_carries_the_content_id_its_key_comes_from() -> None:
    from pipeline.features_stage import build_features_request

    content = "sha256:" + "cd" * 32
    key = contract.features_key(content, "none", 224, "2.6.0")
    request = build_features_request(
        {**MANIFEST, "content_id": content}, get_settings(), SUBMIT_DIRECTORY, key
    )
    assert json.loads(request["HyperParameters"]["content_id"]) == content
    assert json.loads(request["HyperParameters"]["dataset_id"]) == DATASET  # the upload's own id

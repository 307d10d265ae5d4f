"""Tuning-completed handler: Stubber for SageMaker (moto has a fixed BestTrainingJob), moto for the rest.

The CreateTrainingJob requests of both debugger modes are request snapshots
(tests/fixtures/requests/create_training_job_profiled_{in_script,builtin}.json, checked against
botocore's service model; request_snapshots.py says how to regenerate them), and the fields that carry
their decisions (the Debugger fields of each mode, the best trial's hyperparameters, the instance) are
asserted by name below.
"""

from __future__ import annotations

import copy
import io
import json
import re
import tarfile
from datetime import datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY
from fn_support import ENV, load_event
from request_snapshots import RequestSnapshots, load_snapshot

from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.settings import Settings, get_settings
from pipeline.training_stage import TuningFinishedResult, build_training_request, on_tuning_finished


@pytest.fixture
def tuning_completed(aws):
    """The handler module, imported once the test environment is set (it reads settings on import)."""
    from pipeline.handlers import tuning_completed

    return tuning_completed


TUNING = "dogclf-hpo-3f1c2a9b7d4e"
TRAINING = "dogclf-train-388d2c0ba13e"  # dogclf.contract.training_job_name("dogclf", TUNING)
ARN_PREFIX = "arn:aws:sagemaker:us-east-1:123456789012"
DATASETS = ENV["DATASET_BUCKET"]
MANIFEST_KEY = "datasets/dogimages-3f1c2a9b7d4e/manifest.json"
ROLE = "arn:aws:iam::123456789012:role/test-sagemaker"
TRAINING_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-gpu-py312"
# The profiled job's default TrainingInstanceType is ml.m5.xlarge (CPU): the CPU image.
PROFILED_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-cpu-py312"
METRIC_DEFINITIONS = [
    {"Name": "valid:accuracy", "Regex": "valid:accuracy=([0-9\\.]+)"},
    {"Name": "test:accuracy", "Regex": "test:accuracy=([0-9\\.]+)"},
]
CHANNELS = [
    {
        "ChannelName": split,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": f"s3://{DATASETS}/datasets/dogimages-3f1c2a9b7d4e/{split}/",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }
    for split in ("train", "valid", "test")
]
STATIC_HYPERPARAMETERS = {
    "weights": '"none"',
    "image_size": "224",
    "sagemaker_program": '"hpo.py"',
    "sagemaker_submit_directory": '"s3://test-artifacts/code/abc/sourcedir.tar.gz"',
    "sagemaker_region": '"us-east-1"',
}


def tuning_description(status: str = "Completed", best: bool = True) -> dict:
    """DescribeHyperParameterTuningJob's answer, written out (what AWS returns, not what we sent)."""
    description: dict[str, Any] = {
        "HyperParameterTuningJobName": TUNING,
        "HyperParameterTuningJobArn": f"{ARN_PREFIX}:hyper-parameter-tuning-job/{TUNING}",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": STATIC_HYPERPARAMETERS,
            "AlgorithmSpecification": {
                "TrainingImage": TRAINING_IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": METRIC_DEFINITIONS,
            },
            "RoleArn": ROLE,
            "InputDataConfig": CHANNELS,
            "OutputDataConfig": {"S3OutputPath": f"s3://test-artifacts/tuning/{TUNING}/"},
            "ResourceConfig": {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
        },
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
            "TrainingJobArn": f"{ARN_PREFIX}:training-job/{TUNING}-003-a1b2c3d4",
            "CreationTime": datetime(2026, 11, 29),
            "TrainingJobStatus": "Completed",
            # What the tuner passes back for batch_size: the categorical value as the request sent it,
            # json.dumps(64) == "64" (tuning.py JSON-encodes the settings' ints).
            "TunedHyperParameters": {"learning_rate": "0.0031", "epochs": "4", "batch_size": "64"},
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "valid:accuracy", "Value": 0.81},
        }
    return description


# dogImages' split sizes, as ingest writes them into manifest.json.
MANIFEST: dict[str, Any] = {
    "dataset_id": "dogimages-3f1c2a9b7d4e",
    "images": {"train": 6680, "valid": 835, "test": 836},
    "channels": {split: f"s3://{DATASETS}/datasets/dogimages-3f1c2a9b7d4e/{split}/" for split in ("train",)},
}

# The profiled job's request for tuning_description() and MANIFEST's images, one snapshot per debugger
# mode. ENV sets DEBUGGER_MODE=builtin, so the handler sends the builtin one.
SNAPSHOTS = {
    "in-script": "create_training_job_profiled_in_script",
    "builtin": "create_training_job_profiled_builtin",
}


PROFILED_SOURCE_DIR = re.compile(r"s3://test-artifacts/code/[0-9a-f]{16}/sourcedir\.tar\.gz")


def as_started(request: dict[str, Any]) -> dict[str, Any]:
    """What the handler sends: the request on the profiled source dir, whose key is named by its content
    hash; the test reads that key back from S3 (profiled_source_dir) rather than computing it."""
    started = copy.deepcopy(request)
    started["HyperParameters"]["sagemaker_submit_directory"] = ANY
    return started


def profiled_source_dir(aws, result: TuningFinishedResult) -> dict[str, bytes]:
    """The source dir the started job runs: uploaded, not the trials', with its wheels."""
    uri = result["source_dir"]
    assert PROFILED_SOURCE_DIR.fullmatch(uri) and uri != json.loads(
        STATIC_HYPERPARAMETERS["sagemaker_submit_directory"]
    )
    body = aws.s3.get_object(Bucket="test-artifacts", Key=uri.removeprefix("s3://test-artifacts/"))[
        "Body"
    ].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert files["requirements.txt"].splitlines()[1:3] == [b"--no-index", b"--find-links wheels"]
    assert any(name.startswith("wheels/smdebug-") for name in files)
    return files


def put_manifest(aws, manifest: dict | bytes = MANIFEST) -> None:
    body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    aws.s3.put_object(Bucket=DATASETS, Key=MANIFEST_KEY, Body=body)


def event(status: str = "Completed") -> dict:
    document = copy.deepcopy(load_event("tuning_completed.json"))
    document["detail"]["HyperParameterTuningJobStatus"] = status
    return document


def in_mode(mode: str):
    return get_settings().model_copy(update={"debugger_mode": mode})


@pytest.mark.parametrize("mode", ["in-script", "builtin"])
def test_request_of_each_debugger_mode_is_its_snapshot(mode: str, request_snapshot: RequestSnapshots) -> None:
    request = build_training_request(tuning_description(), in_mode(mode), MANIFEST["images"])
    request_snapshot.check(SNAPSHOTS[mode], request, "CreateTrainingJob")


@pytest.mark.parametrize("mode", ["in-script", "builtin"])
def test_the_profiled_job_trains_the_best_trial_on_the_stacks_instance(mode: str) -> None:
    """The decisions both modes share, by name: the best trial's hyperparameters, train_model.py, the
    TrainingInstanceType's machine and image, the trials' channels."""
    request = build_training_request(tuning_description(), in_mode(mode), MANIFEST["images"])
    assert request["TrainingJobName"] == TRAINING
    hyperparameters = request["HyperParameters"]
    assert {key: hyperparameters[key] for key in ("learning_rate", "epochs", "batch_size")} == {
        "learning_rate": "0.0031",
        "epochs": "4",
        "batch_size": "64",
    }
    assert hyperparameters["sagemaker_program"] == '"train_model.py"'
    assert hyperparameters["weights"] == '"none"' and hyperparameters["image_size"] == "224"
    assert request["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert request["AlgorithmSpecification"]["TrainingImage"] == PROFILED_IMAGE
    assert request["InputDataConfig"] == CHANNELS
    assert {"Key": "best-trial", "Value": f"{TUNING}-003-a1b2c3d4"} in request["Tags"]


def test_in_script_is_the_default_debugger_mode() -> None:
    settings = Settings.from_env({key: value for key, value in ENV.items() if key != "DEBUGGER_MODE"})
    assert settings.debugger_mode == "in-script"
    assert build_training_request(tuning_description(), settings, MANIFEST["images"]) == load_snapshot(
        SNAPSHOTS["in-script"]
    )


# Every CreateTrainingJob field that belongs to the Debugger API (AWS's CreateTrainingJob reference
# describes each as Amazon SageMaker Debugger configuration), written out here, not taken from the code.
DEBUGGER_FIELDS = (
    "DebugHookConfig",
    "DebugRuleConfigurations",
    "ProfilerConfig",
    "ProfilerRuleConfigurations",
    "TensorBoardOutputConfig",
)


def test_default_profiled_request_uses_no_debugger_api_field() -> None:
    """A new account has no Debugger: the default (in-script) request must not touch its API."""
    settings = Settings.from_env({key: value for key, value in ENV.items() if key != "DEBUGGER_MODE"})
    request = build_training_request(tuning_description(), settings, MANIFEST["images"])
    assert [field for field in DEBUGGER_FIELDS if field in request] == []


def test_builtin_mode_sends_the_hook_sized_from_the_dataset_and_the_rule_containers() -> None:
    """The builtin request's Debugger fields, by name: the hook config sized from the manifest's 6680
    training images (batch 64, 4 epochs: 105 steps an epoch, 420 TRAIN steps), the five rules and
    ProfilerReport on AWS's rule image, the profiler at 500 ms."""
    request = build_training_request(tuning_description(), in_mode("builtin"), MANIFEST["images"])
    assert [field for field in DEBUGGER_FIELDS if field in request] == [
        "DebugHookConfig",
        "DebugRuleConfigurations",
        "ProfilerConfig",
        "ProfilerRuleConfigurations",
    ]
    hook = request["DebugHookConfig"]
    assert hook["S3OutputPath"] == "s3://test-artifacts/debug-output/"
    collections = {c["CollectionName"]: c["CollectionParameters"] for c in hook["CollectionConfigurations"]}
    # Gradients every 10th step plus the first 20, ReLU inputs over the first 20, weights every 42nd.
    assert collections["gradients"]["train.save_interval"] == "10"
    assert collections["gradients"]["train.save_steps"] == ",".join(str(step) for step in range(20))
    assert collections["relu_input"]["train.end_step"] == "20"
    assert collections["weights"]["train.save_interval"] == "42"
    assert collections["losses"] == {"save_interval": "1"}
    rules = request["DebugRuleConfigurations"]
    assert [rule["RuleConfigurationName"] for rule in rules] == [
        "VanishingGradient",
        "Overfit",
        "Overtraining",
        "PoorWeightInitialization",
        "LossNotDecreasing",
    ]
    rule_image = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
    assert {rule["RuleEvaluatorImage"] for rule in rules} == {rule_image}
    assert request["ProfilerConfig"]["ProfilingIntervalInMilliseconds"] == 500
    [report] = request["ProfilerRuleConfigurations"]
    assert report["RuleConfigurationName"] == "ProfilerReport" and report["RuleEvaluatorImage"] == rule_image


def test_completed_tuning_starts_the_profiled_job_of_the_snapshot(
    tuning_completed, aws, sagemaker, lambda_context
):
    put_manifest(aws)
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job", tuning_description(), {"HyperParameterTuningJobName": TUNING}
    )
    # ENV sets DEBUGGER_MODE=builtin; the Stubber fails the call unless the request is exactly this.
    sagemaker.add_response(
        "create_training_job",
        {"TrainingJobArn": f"{ARN_PREFIX}:training-job/{TRAINING}"},
        as_started(load_snapshot(SNAPSHOTS["builtin"])),
    )

    result = tuning_completed.handler(event(), lambda_context)

    assert result["action"] == "training-started" and result["training_job_name"] == TRAINING
    profiled_source_dir(aws, result)
    assert result["dataset_images"] == {"train": 6680, "valid": 835}
    # The profiled job's name matches the EventBridge prefix; the tuner's trial names never do.
    assert not result["best_trial"].startswith("dogclf-train-")
    [note] = aws.notifications()
    assert note["subject"] == f"Profiled training started: {TRAINING}"


def test_duplicate_tuning_event_starts_nothing_twice(tuning_completed, aws, sagemaker, lambda_context):
    put_manifest(aws)
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job", tuning_description(), {"HyperParameterTuningJobName": TUNING}
    )
    sagemaker.add_response(
        "create_training_job",
        {"TrainingJobArn": f"{ARN_PREFIX}:training-job/x"},
        as_started(load_snapshot(SNAPSHOTS["builtin"])),
    )
    first = tuning_completed.handler(event(), lambda_context)
    second = tuning_completed.handler(event(), lambda_context)  # Stubber would fail on a second call
    assert first == second


def start(aws, settings=None) -> TuningFinishedResult:
    settings = settings or get_settings()
    return on_tuning_finished(
        TUNING, "Completed", settings, SageMakerJobs(), S3Store(), Notifier(settings.notification_topic_arn)
    )


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (None, f"dataset manifest s3://{DATASETS}/{MANIFEST_KEY} not found"),
        (b"{not json", f"dataset manifest s3://{DATASETS}/{MANIFEST_KEY} has no images per split"),
        ({"images": {"train": 10}}, "has no images per split: 'valid'"),
        ({"images": {"train": "many", "valid": 3}}, "has bad image counts"),
        ({"images": {"train": 0, "valid": 3}}, "no debug hook config for this job: train_examples"),
    ],
)
def test_bad_manifest_is_a_recorded_permanent_error(aws, sagemaker, manifest, reason) -> None:
    if manifest is not None:
        put_manifest(aws, manifest)
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job", tuning_description(), {"HyperParameterTuningJobName": TUNING}
    )
    result = start(aws)  # no create_training_job queued: any call would fail
    assert result["action"] == "none" and reason in result["reason"]
    [note] = aws.notifications()
    assert note["subject"] == f"Profiled training not started: {TUNING}"
    assert note["message"]["reason"] == result["reason"]


def test_oversized_manifest_is_refused_not_loaded(aws, sagemaker, monkeypatch) -> None:
    from pipeline import training_stage

    put_manifest(aws)
    monkeypatch.setattr(training_stage, "MAX_MANIFEST_BYTES", 50)
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job", tuning_description(), {"HyperParameterTuningJobName": TUNING}
    )
    result = start(aws)
    assert "the limit is 50" in result["reason"]


def test_s3_errors_reading_the_manifest_propagate_for_a_retry(aws, sagemaker) -> None:
    class ThrottledStore(S3Store):
        def get_bytes(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes:
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "reduce your request rate"}}, "GetObject"
            )

    settings = get_settings()
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job", tuning_description(), {"HyperParameterTuningJobName": TUNING}
    )
    with pytest.raises(ClientError, match="SlowDown"):
        on_tuning_finished(
            TUNING,
            "Completed",
            settings,
            SageMakerJobs(),
            ThrottledStore(),
            Notifier(settings.notification_topic_arn),
        )
    assert aws.notifications() == []


def test_unparseable_batch_size_is_a_recorded_permanent_error(aws, sagemaker) -> None:
    put_manifest(aws)
    description = tuning_description()
    description["BestTrainingJob"]["TunedHyperParameters"]["batch_size"] = '"sixty-four"'
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job", description, {"HyperParameterTuningJobName": TUNING}
    )
    result = start(aws)
    assert (
        result["reason"]
        == "profiled training not started: hyperparameter batch_size='\"sixty-four\"' is not an integer"
    )


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
    put_manifest(aws)
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job", tuning_description(), {"HyperParameterTuningJobName": TUNING}
    )
    sagemaker.add_client_error(
        "create_training_job",
        service_error_code="ResourceInUse",
        service_message="Training job already exists",
    )
    result = tuning_completed.handler(event(), lambda_context)
    assert result["action"] == "training-already-started"
    assert aws.notifications() == []


def test_tuning_job_whose_train_channel_is_not_a_dataset_prefix_is_a_recorded_error(aws, sagemaker) -> None:
    description = tuning_description()
    description["TrainingJobDefinition"]["InputDataConfig"] = [
        {
            "ChannelName": "train",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://x/"}},
        }
    ]
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job", description, {"HyperParameterTuningJobName": TUNING}
    )
    result = start(aws)
    assert (
        result["reason"]
        == "profiled training not started: train channel s3://x/ is not <dataset prefix>/train/"
    )


# ------------------------------------------------------------------ trials that read the features channel
SPLITS = ("train", "valid", "test")
FEATURES_URI = "s3://test-artifacts/features/87b6daf086c2/dogclf-feat-87b6daf086c2/output/model.tar.gz"


def features_tuning_description(static: dict[str, str] | None = None) -> dict:
    """The tuning job the features stage starts: one features channel, the manifest as a hyperparameter."""
    description = tuning_description()
    definition = description["TrainingJobDefinition"]
    definition["StaticHyperParameters"] = (
        {**STATIC_HYPERPARAMETERS, "dataset_manifest": json.dumps(f"s3://{DATASETS}/{MANIFEST_KEY}")}
        if static is None
        else static
    )
    definition["InputDataConfig"] = [
        {
            "ChannelName": "features",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": FEATURES_URI,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
    ]
    return description


def test_features_trials_give_a_profiled_job_on_the_manifests_image_channels(aws, sagemaker) -> None:
    """The image channels come from the manifest the dataset_manifest hyperparameter names; the
    trials' features channel follows them (the head trains from it, the images feed the hook)."""
    image_uris = {split: f"s3://{DATASETS}/datasets/dogimages-3f1c2a9b7d4e/{split}/" for split in SPLITS}
    put_manifest(aws, {**MANIFEST, "channels": image_uris})
    description = features_tuning_description()
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job", description, {"HyperParameterTuningJobName": TUNING}
    )
    expected = load_snapshot(SNAPSHOTS["builtin"])
    expected["HyperParameters"]["dataset_manifest"] = json.dumps(f"s3://{DATASETS}/{MANIFEST_KEY}")
    assert expected["InputDataConfig"] == CHANNELS  # the image channels, as image trials would give
    expected["InputDataConfig"] = [
        *CHANNELS,
        {
            "ChannelName": "features",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": FEATURES_URI,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        },
    ]
    sagemaker.add_response(
        "create_training_job", {"TrainingJobArn": f"{ARN_PREFIX}:training-job/x"}, as_started(expected)
    )
    result = start(aws)
    assert result["action"] == "training-started"
    profiled_source_dir(aws, result)


@pytest.mark.parametrize(
    ("static", "reason"),
    [
        (STATIC_HYPERPARAMETERS, "neither a 'train' channel nor a dataset_manifest hyperparameter"),
        ({**STATIC_HYPERPARAMETERS, "dataset_manifest": '"https://x/manifest.json"'}, "not an s3:// URI"),
    ],
)
def test_features_trials_without_a_usable_manifest_are_a_recorded_permanent_error(
    aws, sagemaker, static, reason
) -> None:
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job",
        features_tuning_description(static),
        {"HyperParameterTuningJobName": TUNING},
    )
    result = start(aws)  # no create_training_job queued
    assert result["action"] == "none" and reason in result["reason"]
    [note] = aws.notifications()
    assert note["subject"] == f"Profiled training not started: {TUNING}"


def test_a_manifest_without_image_channels_is_a_recorded_permanent_error(aws, sagemaker) -> None:
    put_manifest(aws, {key: value for key, value in MANIFEST.items() if key != "channels"})
    sagemaker.add_response(
        "describe_hyper_parameter_tuning_job",
        features_tuning_description(),
        {"HyperParameterTuningJobName": TUNING},
    )
    result = start(aws)
    assert result["action"] == "none" and "has no image channels" in result["reason"]

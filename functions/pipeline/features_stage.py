"""The features stage: the frozen backbone runs once per dataset (features.py, a training job of its own),
and the tuning trials train the head from its output.

- ``on_dataset_ready`` (a dataset's manifest.json was written): with AugmentTrials on, start tuning on
  the image channels right away. Otherwise, if the features for this dataset, weights, image size and
  framework version exist already (contract.features_key), start tuning from them; else start the
  features job.
- ``on_features_finished`` (the features job's state change): Completed starts tuning with the one
  ``features`` channel; Failed or Stopped is recorded and notified, and nothing starts.

Errors: a manifest or a features job that cannot be used (missing fields, a features job that ended
Failed/Stopped under the same deterministic name) is permanent: recorded in the result and the
notification, nothing started, the invocation succeeds. S3 and SageMaker errors propagate
(transient: Lambda retries the event).
"""

from __future__ import annotations

import json
from typing import Any, Literal, Required, TypedDict

from dogclf import contract
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Location, S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.job_requests import (
    CHANNELS,
    resource_config,
    s3_channel,
    script_mode_hyperparameters,
    stopping_condition,
    training_image,
)
from pipeline.powertools import logger
from pipeline.settings import FeaturesStageSettings, JobSettings, SageMakerSettings
from pipeline.source_dir import ensure_uploaded
from pipeline.training_stage import TrainingRequestError, manifest_from_channels
from pipeline.tuning_stage import TuningData, start_tuning

# Inference-only forward passes: 64 images of 224 px fit the smallest CPU or GPU instance's memory.
FEATURES_BATCH_SIZE = 64
FAILED_STATUSES = ("Failed", "Stopped")


class DatasetReadyResult(TypedDict, total=False):
    """What ``on_dataset_ready`` did: the function's return value and its idempotency record."""

    action: Required[
        Literal[
            "tuning-from-images",  # AugmentTrials: no features stage
            "tuning-from-cached-features",
            "features-started",
            "features-already-started",  # an earlier delivery started it; its completion goes on
            "none",  # permanent: ``reason`` says why nothing started
        ]
    ]
    dataset_id: Required[str]
    features_job_name: str
    features_key: str
    status: str  # the features job's, when an earlier delivery had started it
    reason: str
    # the tuning job's, when one was started (TuningStarted's fields)
    tuning_job_name: str
    created: bool
    channels: list[str]


class FeaturesFinishedResult(TypedDict, total=False):
    """What ``on_features_finished`` did: the function's return value and its idempotency record."""

    action: Required[Literal["tuning-from-features", "none"]]  # "none": ``reason`` says why
    features_job_name: Required[str]
    status: Required[str]  # the features job's
    reason: str
    features: str  # s3:// of the features job's model.tar.gz
    # the tuning job's (TuningStarted's fields)
    tuning_job_name: str
    created: bool
    dataset_id: str
    channels: list[str]


class FeaturesStageError(ValueError):
    """The features job, or what it was started from, cannot give a tuning job (permanent)."""


def features_identity(manifest: dict[str, Any]) -> str:
    """What a dataset's features are keyed on: its images' ``content_id`` (pipeline.ingest.shards), so
    uploading the same archive again (a new S3 version, a new dataset id) reuses them. A manifest
    written before content ids existed falls back to its dataset id."""
    return str(manifest.get("content_id") or manifest["dataset_id"])


def features_key_for(dataset_identity: str, settings: JobSettings) -> str:
    return contract.features_key(
        dataset_identity, settings.pretrained_weights, settings.image_size, settings.framework_version
    )


def features_model_location(settings: SageMakerSettings, features_key: str) -> S3Location:
    """Where the features job for ``features_key`` leaves its model.tar.gz (the features files)."""
    job_name = contract.features_job_name(settings.job_name_prefix, features_key)
    key = contract.job_output_key(
        contract.features_output_prefix(features_key), job_name, contract.MODEL_ARCHIVE
    )
    return S3Location(settings.artifacts_bucket, key)


def build_features_request(
    manifest: dict[str, Any], settings: FeaturesStageSettings, submit_directory: str, features_key: str
) -> dict[str, Any]:
    """CreateTrainingJob request of the features job (script mode, features.py) for a dataset."""
    name = contract.features_job_name(settings.job_name_prefix, features_key)
    hyperparameters = script_mode_hyperparameters(
        contract.FEATURES_PROGRAM,
        submit_directory,
        name,
        settings.aws_region,
        {
            "weights": settings.pretrained_weights,
            "image_size": settings.image_size,
            "dataset_id": manifest["dataset_id"],
            # What the key is derived from (features.py checks the key against it): the images'
            # content id, since these features serve every upload of the same images.
            "content_id": features_identity(manifest),
            "features_key": features_key,
            "framework_version": settings.framework_version,
            "batch_size": FEATURES_BATCH_SIZE,
        },
    )
    return {
        "TrainingJobName": name,
        "HyperParameters": hyperparameters,
        "AlgorithmSpecification": {
            "TrainingImage": training_image(
                settings.framework_version, settings.aws_region, settings.features_instance_type
            ),
            "TrainingInputMode": "File",
        },
        "RoleArn": settings.sagemaker_role_arn,
        "InputDataConfig": [s3_channel(channel, manifest["channels"][channel]) for channel in CHANNELS],
        "OutputDataConfig": {
            "S3OutputPath": f"s3://{settings.artifacts_bucket}/{contract.features_output_prefix(features_key)}/"
        },
        "ResourceConfig": resource_config(settings.features_instance_type),
        "StoppingCondition": stopping_condition(settings.training_max_runtime_seconds),
        # No Debugger API field at all (no hook, no rules, no ProfilerConfig: pipeline.training_stage says
        # why none is needed to keep the service profiler off), and the toolkit need not import
        # smdebug to classify the script's errors.
        "Environment": dict(contract.NO_SMDEBUG_ENVIRONMENT),
        "Tags": [
            {"Key": "dataset-id", "Value": manifest["dataset_id"][:256]},
            {"Key": "features-key", "Value": features_key},
        ],
    }


def _failure(subject: str, result: DatasetReadyResult | FeaturesFinishedResult, notifier: Notifier) -> None:
    """Record a permanent outcome: logged and notified; the caller returns it (the idempotency record
    keeps it)."""
    logger.error(subject, extra={"features": result})
    notifier.publish(subject, dict(result))


def on_dataset_ready(
    manifest_bucket: str,
    manifest_key: str,
    settings: FeaturesStageSettings,
    store: S3Store,
    jobs: SageMakerJobs,
    notifier: Notifier,
) -> DatasetReadyResult:
    """A dataset's manifest.json was written: start its features job, or tuning when it needs none."""
    manifest_uri = S3Location(manifest_bucket, manifest_key).uri
    manifest = store.get_json(manifest_bucket, manifest_key)
    dataset_id = manifest["dataset_id"]
    if settings.augment_trials:  # random crops and flips need the images: no features stage
        tuning = start_tuning(
            TuningData.from_images(manifest, manifest_uri, augment=True), settings, store, jobs, notifier
        )
        images: DatasetReadyResult = {"action": "tuning-from-images", **tuning}
        return images

    features_key = features_key_for(features_identity(manifest), settings)
    name = contract.features_job_name(settings.job_name_prefix, features_key)
    model = features_model_location(settings, features_key)
    if store.exists(model.bucket, model.key):
        # The same dataset, weights, image size and framework version: the features are reusable.
        data = TuningData.from_features(dataset_id, manifest_uri, model.uri)
        tuning = start_tuning(data, settings, store, jobs, notifier)
        cached: DatasetReadyResult = {
            "action": "tuning-from-cached-features",
            "features_job_name": name,
            **tuning,
        }
        return cached

    submit_directory = ensure_uploaded(settings.training_code_dir, store, settings.artifacts_bucket)
    request = build_features_request(manifest, settings, submit_directory, features_key)
    started = {"features_job_name": name, "features_key": features_key, "dataset_id": dataset_id}
    if jobs.create_training_job(request):
        notifier.publish(f"Features started: {name}", {**started, "source_dir": submit_directory})
        return DatasetReadyResult(
            action="features-started",
            dataset_id=dataset_id,
            features_job_name=name,
            features_key=features_key,
        )

    # An earlier delivery started it. Running: its completion starts tuning. Completed without the
    # model.tar.gz checked above, or Failed/Stopped: the deterministic name cannot be reused.
    description = jobs.describe_training_job(name)
    status = str(description["TrainingJobStatus"])
    result = DatasetReadyResult(
        action="features-already-started",
        dataset_id=dataset_id,
        features_job_name=name,
        features_key=features_key,
        status=status,
    )
    if status in FAILED_STATUSES:
        result["action"], result["reason"] = (
            "none",
            str(description.get("FailureReason", f"features job {status}")),
        )
        _failure(f"Features {status}: {name}", result, notifier)
    elif status == "Completed":  # and yet no model.tar.gz where its S3OutputPath puts it
        result["action"], result["reason"] = "none", f"features job {name} Completed without {model.uri}"
        _failure(f"Tuning not started: {name}", result, notifier)
    else:
        logger.info("features job already exists", extra={"features": result})
    return result


def _hyperparameter(job: dict[str, Any], name: str) -> str:
    raw = job.get("HyperParameters", {}).get(name)
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        value = raw  # the toolkit passes a value that is not JSON as the raw string
    if not isinstance(value, str) or not value:
        raise FeaturesStageError(f"features job has no {name} hyperparameter")
    return value


def on_features_finished(
    job_name: str,
    status: str,
    settings: FeaturesStageSettings,
    store: S3Store,
    jobs: SageMakerJobs,
    notifier: Notifier,
) -> FeaturesFinishedResult:
    """The features job ended: Completed starts tuning on its features; otherwise record and notify.
    The handler passes only this pipeline's features jobs (contract.is_pipeline_features_job)."""
    job = jobs.describe_training_job(job_name)
    if status != "Completed":
        reason = str(job.get("FailureReason", f"features job {status}"))
        failed = FeaturesFinishedResult(
            action="none", features_job_name=job_name, status=status, reason=reason
        )
        _failure(f"Features {status}: {job_name}", failed, notifier)
        return failed

    features_key = job_name.removeprefix(f"{settings.job_name_prefix}{contract.FEATURES_INFIX}")
    model = features_model_location(settings, features_key)
    try:
        dataset_id = _hyperparameter(job, "dataset_id")
        manifest = manifest_from_channels(job.get("InputDataConfig", []))
    except (FeaturesStageError, TrainingRequestError) as error:
        reason = f"tuning not started: {error}"
        refused = FeaturesFinishedResult(
            action="none", features_job_name=job_name, status=status, reason=reason
        )
        _failure(f"Tuning not started: {job_name}", refused, notifier)
        return refused
    tuning = start_tuning(
        TuningData.from_features(dataset_id, manifest.uri, model.uri), settings, store, jobs, notifier
    )
    started: FeaturesFinishedResult = {
        "features_job_name": job_name,
        "status": status,
        "action": "tuning-from-features",
        "features": model.uri,
        **tuning,
    }
    return started

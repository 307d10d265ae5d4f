"""Build and start the hyperparameter tuning job (hpo.py) for an ingested dataset.

Trials train from one of two inputs (``TuningData``): the ``features`` channel, the single
model.tar.gz of the dataset's features job (pipeline.features_stage; the default), or the image channels
train/valid/test when AugmentTrials is on (random crops need the images). Either way the static
hyperparameter ``dataset_manifest`` names the dataset's manifest.json, which is how the profiled job
(pipeline.training_stage) finds the dataset again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypedDict

from dogclf import contract
from dogclf.contract import tuning_job_name  # <prefix>-hpo-<hash>, within SageMaker's 32 characters
from pipeline.adapters.notify import Notifier
from pipeline.adapters.s3 import S3Store
from pipeline.adapters.sagemaker import SageMakerJobs
from pipeline.adapters.training_layer import metric_definitions
from pipeline.job_requests import (
    CHANNELS,
    DATASET_MANIFEST_HYPERPARAMETER,
    resource_config,
    s3_channel,
    script_mode_hyperparameters,
    stopping_condition,
    training_image,
)
from pipeline.powertools import logger
from pipeline.settings import TuningSettings
from pipeline.source_dir import ensure_uploaded

SPOT_WAIT_FACTOR = 2  # MaxWaitTimeInSeconds = this x MaxRuntimeInSeconds: time to wait for spot capacity


class TuningStarted(TypedDict):
    """What ``start_tuning`` did; part of the features stage's results."""

    tuning_job_name: str
    created: bool  # False: an earlier delivery started it
    dataset_id: str
    channels: list[str]


@dataclass(frozen=True)
class TuningData:
    """What the trials of one tuning job train from."""

    dataset_id: str
    manifest_uri: str  # s3://<datasets>/datasets/<id>/manifest.json
    channels: dict[str, str]  # ChannelName -> S3Uri, in request order
    augment: bool = False  # hpo.py --augment true (image channels only)

    @classmethod
    def from_images(cls, manifest: dict[str, Any], manifest_uri: str, augment: bool) -> TuningData:
        """The image channels of an ingested dataset (its manifest.json, already read)."""
        channels = {channel: manifest["channels"][channel] for channel in CHANNELS}
        return cls(manifest["dataset_id"], manifest_uri, channels, augment)

    @classmethod
    def from_features(cls, dataset_id: str, manifest_uri: str, features_model_uri: str) -> TuningData:
        """One channel, the features job's model.tar.gz: its exact key, so a trial downloads one object."""
        return cls(dataset_id, manifest_uri, {contract.FEATURES_CHANNEL: features_model_uri})


def trial_stopping_and_spot(settings: TuningSettings, tuning_job: str) -> dict[str, Any]:
    """StoppingCondition of the trials, plus managed spot training when UseSpotTraining is on.

    Spot needs MaxWaitTimeInSeconds >= MaxRuntimeInSeconds (the wait includes the run). No
    CheckpointConfig: hpo.py neither writes nor reads /opt/ml/checkpoints, so a checkpoint prefix would
    only promise a resume that never happens. An interrupted trial restarts from its first epoch, which
    AWS's "Managed Spot Training" page allows (checkpoints are optional; it recommends them "unless
    your training job will complete quickly",
    https://docs.aws.amazon.com/sagemaker/latest/dg/model-managed-spot-training.html): a default trial
    trains a linear head on the features file for a few epochs, seconds to minutes.
    """
    runtime = settings.training_max_runtime_seconds
    if not settings.use_spot_training:
        return {"StoppingCondition": stopping_condition(runtime)}
    return {
        "StoppingCondition": {
            **stopping_condition(runtime),
            "MaxWaitTimeInSeconds": SPOT_WAIT_FACTOR * runtime,
        },
        "EnableManagedSpotTraining": True,
    }


def build_tuning_request(
    data: TuningData, settings: TuningSettings, submit_directory: str, metrics: dict[str, Any]
) -> dict[str, Any]:
    name = tuning_job_name(settings.job_name_prefix, data.dataset_id)
    extra: dict[str, Any] = {
        "weights": settings.pretrained_weights,  # the profiled job inherits these static values
        "image_size": settings.image_size,
        DATASET_MANIFEST_HYPERPARAMETER: data.manifest_uri,
    }
    if data.augment:
        extra["augment"] = True
    static = script_mode_hyperparameters("hpo.py", submit_directory, name, settings.aws_region, extra)
    learning_rate_min, learning_rate_max = settings.learning_rate_range
    epochs_min, epochs_max = settings.epochs_range
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": metrics["HyperParameterTuningJobObjective"],
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": settings.max_tuning_jobs,
                "MaxParallelTrainingJobs": min(settings.max_parallel_tuning_jobs, settings.max_tuning_jobs),
            },
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {
                        "Name": "learning_rate",
                        "MinValue": str(learning_rate_min),
                        "MaxValue": str(learning_rate_max),
                        "ScalingType": "Logarithmic",
                    }
                ],
                "IntegerParameterRanges": [
                    {
                        "Name": "epochs",
                        "MinValue": str(epochs_min),
                        "MaxValue": str(epochs_max),
                        "ScalingType": "Auto",
                    }
                ],
                # Categorical values are JSON-encoded like the SDK does for framework estimators.
                "CategoricalParameterRanges": [
                    {
                        "Name": "batch_size",
                        "Values": [json.dumps(value) for value in settings.batch_size_values],
                    }
                ],
            },
            # Median stopping rule: a trial worse than the median of earlier trials at the same epoch
            # is stopped, so a wider search costs less (the local emulator implements the same rule).
            "TrainingJobEarlyStoppingType": "Auto",
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": static,
            # Trials use no Debugger hook: spare each one the toolkit's smdebug import (seconds of CPU).
            "Environment": dict(contract.NO_SMDEBUG_ENVIRONMENT),
            "AlgorithmSpecification": {
                "TrainingImage": training_image(
                    settings.framework_version, settings.aws_region, settings.tuning_instance_type
                ),
                "TrainingInputMode": "File",
                "MetricDefinitions": metrics["MetricDefinitions"],
            },
            "RoleArn": settings.sagemaker_role_arn,
            "InputDataConfig": [s3_channel(channel, uri) for channel, uri in data.channels.items()],
            "OutputDataConfig": {"S3OutputPath": f"s3://{settings.artifacts_bucket}/tuning/{name}/"},
            "ResourceConfig": resource_config(settings.tuning_instance_type),
            **trial_stopping_and_spot(settings, name),
        },
        "Tags": [{"Key": "dataset-id", "Value": data.dataset_id[:256]}],
    }


def start_tuning(
    data: TuningData, settings: TuningSettings, store: S3Store, jobs: SageMakerJobs, notifier: Notifier
) -> TuningStarted:
    """Start the tuning job for ``data``; created=False when an earlier delivery already started it."""
    metrics = metric_definitions(settings.training_code_dir)
    submit_directory = ensure_uploaded(settings.training_code_dir, store, settings.artifacts_bucket)
    request = build_tuning_request(data, settings, submit_directory, metrics)
    name = request["HyperParameterTuningJobName"]
    created = jobs.create_tuning_job(request)
    result = TuningStarted(
        tuning_job_name=name, created=created, dataset_id=data.dataset_id, channels=list(data.channels)
    )
    if created:
        notifier.publish(f"Tuning started: {name}", {**result, "source_dir": submit_directory})
    else:
        logger.info("tuning job already exists", extra={"tuning": result})
    return result

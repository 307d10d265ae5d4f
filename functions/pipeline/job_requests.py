"""The request pieces every SageMaker job of the pipeline shares, whichever stage starts it.

The features job (pipeline.features_stage), the tuning trials (pipeline.tuning_stage) and the profiled
job (pipeline.training_stage) are all script-mode PyTorch jobs on the same image, reading File-mode S3
channels: their static hyperparameters, channels, image, instance and stopping condition are built
here, so a stage module holds only what is its own.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.image_uris import pytorch_image_uri

CHANNELS = ("train", "valid", "test")  # the dataset's image channels, one per split
# hpo.py --dataset_manifest; pipeline.training_stage reads it to find the dataset again
DATASET_MANIFEST_HYPERPARAMETER = "dataset_manifest"
VOLUME_SIZE_GB = 30  # the instance's storage volume: channels, checkpoints-free output, the toolkit


def sdk_hyperparameters(values: dict[str, Any]) -> dict[str, str]:
    """JSON-encode every value, as the SageMaker SDK's framework estimators do ("hpo.py" -> '"hpo.py"')."""
    return {key: json.dumps(value) for key, value in values.items()}


def s3_channel(name: str, uri: str) -> dict[str, Any]:
    """One File-mode input channel: everything under the S3 prefix ``uri``, copied to every instance."""
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
    }


def script_mode_hyperparameters(
    program: str, submit_directory: str, job_name: str, region: str, extra: dict[str, Any]
) -> dict[str, str]:
    """Static hyperparameters of a script-mode PyTorch job (what the SDK's PyTorch estimator sets)."""
    return sdk_hyperparameters(
        {
            **extra,
            "sagemaker_program": program,
            "sagemaker_submit_directory": submit_directory,
            "sagemaker_container_log_level": 20,
            "sagemaker_job_name": job_name,
            "sagemaker_region": region,
            "sagemaker_estimator_class_name": "PyTorch",
            "sagemaker_estimator_module": "sagemaker.pytorch.estimator",
        }
    )


def training_image(framework_version: str, region: str, instance_type: str) -> str:
    """The SageMaker PyTorch training image for ``instance_type`` (CPU or GPU build)."""
    return pytorch_image_uri(framework_version, region, "training", instance_type)


def resource_config(instance_type: str) -> dict[str, Any]:
    """One instance of ``instance_type``: every job of the pipeline runs on a single instance."""
    return {"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": VOLUME_SIZE_GB}


def stopping_condition(max_runtime_seconds: int) -> dict[str, Any]:
    return {"MaxRuntimeInSeconds": max_runtime_seconds}

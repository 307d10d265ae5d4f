"""The endpoint's SageMaker requests: CreateModel, CreateEndpointConfig, UpdateEndpoint.

Built here, apart from the stages that send them: pipeline.deploy_stage creates the model and endpoint
config of a model that passed the gate; pipeline.endpoint_lifecycle sends UpdateEndpoint when the
endpoint can take the pending model.
"""

from __future__ import annotations

from typing import Any

from dogclf import contract
from pipeline.image_uris import pytorch_image_uri
from pipeline.settings import EndpointSettings


def model_request(job: dict[str, Any], settings: EndpointSettings) -> dict[str, Any]:
    instance_type = settings.endpoint_instance_type if settings.endpoint_mode == "instance" else None
    return {
        "ModelName": job["TrainingJobName"],
        "ExecutionRoleArn": settings.sagemaker_role_arn,
        "PrimaryContainer": {
            "Image": pytorch_image_uri(
                settings.framework_version, settings.aws_region, "inference", instance_type
            ),
            "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"],
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                "SAGEMAKER_REGION": settings.aws_region,
            },
        },
        "Tags": [{"Key": "training-job", "Value": job["TrainingJobName"]}],
    }


def endpoint_config_request(job: dict[str, Any], settings: EndpointSettings) -> dict[str, Any]:
    variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": job["TrainingJobName"]}
    if settings.endpoint_mode == "serverless":
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": settings.serverless_memory_mb,
            "MaxConcurrency": settings.serverless_max_concurrency,
        }
    else:
        variant.update(
            InstanceType=settings.endpoint_instance_type, InitialInstanceCount=1, InitialVariantWeight=1.0
        )
    return {
        "EndpointConfigName": contract.endpoint_config_name(job["TrainingJobName"]),
        "ProductionVariants": [variant],
    }


def update_endpoint_request(config_name: str, settings: EndpointSettings) -> dict[str, Any]:
    request: dict[str, Any] = {"EndpointName": settings.endpoint_name, "EndpointConfigName": config_name}
    if settings.endpoint_mode == "instance":
        # Blue/green: the new fleet takes all traffic at once, the old one is kept while the
        # alarms are watched, and the update rolls back if one of them fires.
        request["DeploymentConfig"] = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300},
                "TerminationWaitInSeconds": 600,
                "MaximumExecutionTimeoutInSeconds": 3600,
            },
            "AutoRollbackConfiguration": {
                "Alarms": [{"AlarmName": alarm} for alarm in settings.rollback_alarm_names]
            },
        }
        if not settings.rollback_alarm_names:
            del request["DeploymentConfig"]["AutoRollbackConfiguration"]
    return request

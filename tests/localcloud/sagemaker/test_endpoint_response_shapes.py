"""The emulator's model, endpoint config and endpoint answers carry every member AWS returns for them.

DescribeModel/DescribeEndpointConfig/DescribeEndpoint and ListModels/ListEndpointConfigs/ListEndpoints
are walked against botocore's output shapes (tests/support/shapes.py), as
test_response_shapes.py does for training and tuning: what AWS leaves out for these
resources is listed with the reason, anything else missing fails with its path. The endpoint is a
real one (TorchServe serving a small dogclf model), described InService.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.sagemaker.server import SageMakerServer
from tests.localcloud.sagemaker.test_endpoints import build_model, wait_in_service
from tests.support.sagemaker import ROLE_ARN, client, local_s3, tar_gz_directory
from tests.support.shapes import missing_members

BUCKET = "endpoint-shapes"
CONTAINER = {
    "Image": "pytorch-inference:local",
    "ModelDataUrl": f"s3://{BUCKET}/model/model.tar.gz",
    "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
}
VARIANT = {
    "VariantName": "AllTraffic",
    "ModelName": "shapes-model",
    "InstanceType": "ml.m5.large",
    "InitialInstanceCount": 1,
}
# Structures AWS returns as the request gave them: only their required members must be there.
ECHOED: dict[str, frozenset[str]] = {
    "ContainerDefinition": frozenset(),
    "ProductionVariant": frozenset(),
}
NOT_REQUESTED = "AWS returns it only when the request set it; these requests do not"
NOT_EMULATED = "a feature the emulator refuses or does not offer (docs/local.md)"
ABSENT: dict[str, str] = {
    # DescribeModel
    "DescribeModelOutput.InferenceExecutionConfig": "only for a multi-container model",
    "DescribeModelOutput.VpcConfig": NOT_REQUESTED,
    "DescribeModelOutput.DeploymentRecommendation": NOT_EMULATED,
    # DescribeEndpointConfig
    "DescribeEndpointConfigOutput.DataCaptureConfig": NOT_REQUESTED,
    "DescribeEndpointConfigOutput.KmsKeyId": NOT_REQUESTED,
    "DescribeEndpointConfigOutput.AsyncInferenceConfig": NOT_REQUESTED,
    "DescribeEndpointConfigOutput.ExplainerConfig": NOT_REQUESTED,
    "DescribeEndpointConfigOutput.ShadowProductionVariants": NOT_REQUESTED,
    "DescribeEndpointConfigOutput.ExecutionRoleArn": NOT_REQUESTED,
    "DescribeEndpointConfigOutput.VpcConfig": NOT_REQUESTED,
    "DescribeEndpointConfigOutput.EnableNetworkIsolation": NOT_REQUESTED,
    "DescribeEndpointConfigOutput.MetricsConfig": NOT_REQUESTED,
    "DescribeEndpointConfigOutput.TracingConfig": NOT_REQUESTED,
    "DescribeEndpointConfigOutput.CrossRegionTrafficConfig": NOT_REQUESTED,
    # DescribeEndpoint
    "DescribeEndpointOutput.FailureReason": "only for a failed endpoint (or a rolled-back update)",
    "DescribeEndpointOutput.DataCaptureConfig": NOT_REQUESTED,
    "DescribeEndpointOutput.LastDeploymentConfig": "only when an update set a DeploymentConfig",
    "DescribeEndpointOutput.AsyncInferenceConfig": NOT_REQUESTED,
    "DescribeEndpointOutput.PendingDeploymentSummary": "only while an update is in progress",
    "DescribeEndpointOutput.ExplainerConfig": NOT_REQUESTED,
    "DescribeEndpointOutput.ShadowProductionVariants": NOT_REQUESTED,
    "DescribeEndpointOutput.MetricsConfig": NOT_REQUESTED,
    "DescribeEndpointOutput.TracingConfig": NOT_REQUESTED,
    "DescribeEndpointOutput.CrossRegionTrafficConfig": NOT_REQUESTED,
    "ProductionVariantSummary.InstancePools": NOT_REQUESTED,
    "ProductionVariantSummary.VariantStatus": "only while a deployment stage is in progress",
    "ProductionVariantSummary.CurrentServerlessConfig": "serverless variants only",
    "ProductionVariantSummary.DesiredServerlessConfig": "serverless variants only",
    "ProductionVariantSummary.ManagedInstanceScaling": NOT_REQUESTED,
    "ProductionVariantSummary.RoutingConfig": NOT_REQUESTED,
    "ProductionVariantSummary.CapacityReservationConfig": NOT_REQUESTED,
    "ProductionVariantSummary.AcceleratorPartitionLayouts": NOT_REQUESTED,
    # List*
    "ListModelsOutput.NextToken": "only when more results follow",
    "ListEndpointConfigsOutput.NextToken": "only when more results follow",
    "ListEndpointsOutput.NextToken": "only when more results follow",
}


@pytest.fixture(scope="module")
def sm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A model, its endpoint config and an InService endpoint on them."""
    model_dir = build_model(tmp_path_factory.mktemp("model") / "model", ["a", "b", "c"])
    with local_s3() as s3_url:
        s3 = client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="model/model.tar.gz", Body=tar_gz_directory(model_dir))
        server = SageMakerServer(
            state_dir=tmp_path_factory.mktemp("sagemaker"), s3_endpoint_url=s3_url
        ).start()
        try:
            sagemaker = client("sagemaker", server.url)
            sagemaker.create_model(
                ModelName="shapes-model", ExecutionRoleArn=ROLE_ARN, PrimaryContainer=CONTAINER
            )
            sagemaker.create_endpoint_config(EndpointConfigName="shapes-config", ProductionVariants=[VARIANT])
            sagemaker.create_endpoint(EndpointName="shapes-endpoint", EndpointConfigName="shapes-config")
            wait_in_service(sagemaker, "shapes-endpoint")
            yield sagemaker
        finally:
            server.stop()


def walk(operation: str, response: dict[str, Any], absent: dict[str, str] | None = None) -> list[str]:
    return missing_members("sagemaker", operation, response, {**ABSENT, **(absent or {})}, ECHOED)


def test_describe_and_list_models_have_every_member_aws_returns(sm: Any) -> None:
    model = sm.describe_model(ModelName="shapes-model")
    assert (
        walk("DescribeModel", model, {"DescribeModelOutput.Containers": "created with PrimaryContainer"})
        == []
    )
    assert model["PrimaryContainer"] == CONTAINER
    listed = sm.list_models(NameContains="shapes-model")
    assert [row["ModelName"] for row in listed["Models"]] == ["shapes-model"]
    assert walk("ListModels", listed) == []


def test_describe_and_list_endpoint_configs_have_every_member_aws_returns(sm: Any) -> None:
    config = sm.describe_endpoint_config(EndpointConfigName="shapes-config")
    assert walk("DescribeEndpointConfig", config) == []
    listed = sm.list_endpoint_configs(NameContains="shapes-config")
    assert [row["EndpointConfigName"] for row in listed["EndpointConfigs"]] == ["shapes-config"]
    assert walk("ListEndpointConfigs", listed) == []


def test_describe_and_list_endpoints_in_service_have_every_member_aws_returns(sm: Any) -> None:
    endpoint = sm.describe_endpoint(EndpointName="shapes-endpoint")
    assert endpoint["EndpointStatus"] == "InService"
    assert walk("DescribeEndpoint", endpoint) == []
    [variant] = endpoint["ProductionVariants"]
    assert variant["CurrentInstanceCount"] == variant["DesiredInstanceCount"] == 1
    listed = sm.list_endpoints(NameContains="shapes-endpoint")
    assert [row["EndpointStatus"] for row in listed["Endpoints"]] == ["InService"]
    assert walk("ListEndpoints", listed) == []


def test_a_model_created_with_containers_is_described_with_them(sm: Any) -> None:
    """CreateModel takes ``Containers`` in place of ``PrimaryContainer``; DescribeModel answers with
    what was sent. More than one container (an inference pipeline) is refused: one is served."""
    sm.create_model(ModelName="shapes-containers", ExecutionRoleArn=ROLE_ARN, Containers=[CONTAINER])
    model = sm.describe_model(ModelName="shapes-containers")
    absent = {"DescribeModelOutput.PrimaryContainer": "created with Containers"}
    assert walk("DescribeModel", model, absent) == []
    assert model["Containers"] == [CONTAINER]
    assert "PrimaryContainer" not in model
    with pytest.raises(sm.exceptions.ClientError) as caught:
        sm.create_model(ModelName="shapes-pipeline", ExecutionRoleArn=ROLE_ARN, Containers=[CONTAINER] * 2)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "one container per model" in caught.value.response["Error"]["Message"]

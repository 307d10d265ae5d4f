"""The wire protocol: JSON 1.1 routing, validation against botocore's model, AWS error shapes."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from localcloud.sagemaker.server import SageMakerServer
from tests.support.polling import wait_until
from tests.support.sagemaker import CREDENTIALS, client, local_s3, training_job_request

BUCKET = "protocol"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SageMakerServer]:
    with local_s3() as s3_url:
        client("s3", s3_url).create_bucket(Bucket=BUCKET)
        sagemaker = SageMakerServer(
            state_dir=tmp_path_factory.mktemp("sagemaker"), s3_endpoint_url=s3_url
        ).start()
        try:
            yield sagemaker
        finally:
            sagemaker.stop()


@pytest.fixture
def sm(server: SageMakerServer) -> Any:
    return client("sagemaker", server.url)


def raw_post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=10)
    connection.request("POST", "/", body=body, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def error_of(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(botocore.exceptions.ClientError) as error:
        call(**kwargs)
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return error.value.response["Error"]


def test_unknown_operation_is_rejected_in_json_1_1_shape(server: SageMakerServer) -> None:
    headers = {"X-Amz-Target": "SageMaker.LaunchRockets", "Content-Type": "application/x-amz-json-1.1"}
    status, body = raw_post(server.url, headers, b"{}")
    assert status == 400
    assert body["__type"] == "UnknownOperationException"
    status, body = raw_post(
        server.url, {**headers, "X-Amz-Target": "SageMaker.DescribeTrainingJob"}, b"{not json"
    )
    assert (status, body["__type"]) == (400, "SerializationException")


def test_malformed_requests_get_validation_exception(server: SageMakerServer) -> None:
    # Skip botocore's client-side checks so the server's own validation answers.
    unchecked = boto3.client(
        "sagemaker", endpoint_url=server.url, config=Config(parameter_validation=False), **CREDENTIALS
    )
    missing = error_of(unchecked.create_training_job, TrainingJobName="no-spec")
    assert missing["Code"] == "ValidationException"
    assert "Missing required parameter" in missing["Message"]
    assert "RoleArn" in missing["Message"] and "OutputDataConfig" in missing["Message"]

    wrong_type = error_of(unchecked.describe_training_job, TrainingJobName=12)
    assert wrong_type["Code"] == "ValidationException"

    bad_name = training_job_request("under_scores_not_allowed", BUCKET, f"s3://{BUCKET}/x.tar.gz")
    error = error_of(unchecked.create_training_job, **bad_name)
    assert error["Code"] == "ValidationException" and "regular expression pattern" in error["Message"]

    bad_enum = training_job_request("bad-enum", BUCKET, f"s3://{BUCKET}/x.tar.gz")
    bad_enum["AlgorithmSpecification"]["TrainingInputMode"] = "Telepathy"
    error = error_of(unchecked.create_training_job, **bad_enum)
    assert error["Code"] == "ValidationException" and "enum value set" in error["Message"]

    headers = {"X-Amz-Target": "SageMaker.ListEndpoints", "Content-Type": "application/x-amz-json-1.1"}
    status, body = raw_post(server.url, headers, json.dumps({"Colour": "blue"}).encode())
    assert (status, body["__type"]) == (400, "ValidationException")
    assert "Unknown parameter" in body["message"]


def test_missing_resources_answer_like_sagemaker(sm: Any) -> None:
    assert error_of(sm.describe_training_job, TrainingJobName="ghost") == {
        "Code": "ValidationException",
        "Message": "Requested resource not found.",
    }
    assert error_of(sm.describe_endpoint, EndpointName="ghost")["Code"] == "ValidationException"
    assert error_of(sm.describe_model, ModelName="ghost")["Code"] == "ValidationException"
    assert error_of(sm.describe_endpoint_config, EndpointConfigName="ghost")["Code"] == "ValidationException"
    assert error_of(sm.stop_training_job, TrainingJobName="ghost")["Code"] == "ValidationException"
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="ghost")
    with pytest.raises(botocore.exceptions.WaiterError):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="ghost", WaiterConfig={"Delay": 1, "MaxAttempts": 2}
        )


def test_duplicate_names_and_unsupported_shapes(sm: Any) -> None:
    request = training_job_request("twice", BUCKET, f"s3://{BUCKET}/missing-source.tar.gz")
    sm.create_training_job(**request)
    with pytest.raises(sm.exceptions.ResourceInUse):
        sm.create_training_job(**request)
    multi = training_job_request("two-instances", BUCKET, f"s3://{BUCKET}/x.tar.gz")
    multi["ResourceConfig"]["InstanceCount"] = 2
    assert "single-instance" in error_of(sm.create_training_job, **multi)["Message"]
    # The first job fails cleanly: its source dir does not exist in S3.
    desc = wait_until(
        lambda: sm.describe_training_job(TrainingJobName="twice"),
        lambda d: d["TrainingJobStatus"] != "InProgress",
        timeout_s=60,
        what="training job 'twice' ended",
    )
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ClientError: could not download source dir")


def test_runtime_unknown_endpoint_is_a_validation_error(server: SageMakerServer) -> None:
    runtime = client("sagemaker-runtime", server.url)
    with pytest.raises(botocore.exceptions.ClientError) as error:
        runtime.invoke_endpoint(EndpointName="ghost", Body=b"{}", ContentType="application/json")
    assert error.value.response["Error"]["Code"] == "ValidationError"
    assert "Endpoint ghost of account 123456789012 not found." in error.value.response["Error"]["Message"]

"""`cli teardown` deletes every page of models and endpoint configs, not only the first."""

from __future__ import annotations

import argparse
from datetime import datetime

import boto3
from botocore.stub import Stubber

from cli.endpoint import cmd_teardown
from cli.target import Target

NOW = datetime(2026, 11, 29)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/x"


class StubbedSession:
    def __init__(self, sagemaker: object) -> None:
        self.sagemaker = sagemaker

    def client(self, service: str) -> object:
        assert service == "sagemaker"
        return self.sagemaker


def test_teardown_follows_next_tokens(capsys) -> None:
    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(sm)
    stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint")
    configs = [[f"dogclf-train-{page}{index}-cfg" for index in range(10)] for page in range(2)]
    stub.add_response(
        "list_endpoint_configs",
        {
            "EndpointConfigs": [
                {"EndpointConfigName": n, "EndpointConfigArn": ARN, "CreationTime": NOW} for n in configs[0]
            ],
            "NextToken": "page-2",
        },
        {"NameContains": "dogclf-"},
    )
    stub.add_response(
        "list_endpoint_configs",
        {
            "EndpointConfigs": [
                {"EndpointConfigName": n, "EndpointConfigArn": ARN, "CreationTime": NOW} for n in configs[1]
            ]
        },
        {"NameContains": "dogclf-", "NextToken": "page-2"},
    )
    models = ["dogclf-train-a", "dogclf-train-b"]
    stub.add_response(
        "list_models",
        {"Models": [{"ModelName": models[0], "ModelArn": ARN, "CreationTime": NOW}], "NextToken": "m2"},
        {"NameContains": "dogclf-"},
    )
    stub.add_response(
        "list_models",
        {"Models": [{"ModelName": models[1], "ModelArn": ARN, "CreationTime": NOW}]},
        {"NameContains": "dogclf-", "NextToken": "m2"},
    )
    for name in configs[0] + configs[1]:
        stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": name})
    for name in models:
        stub.add_response("delete_model", {}, {"ModelName": name})
    target = Target(
        session=StubbedSession(sm),
        dataset_bucket=None,
        inference_bucket=None,
        artifacts_bucket=None,
        endpoint="dogclf-endpoint",
        job_prefix="dogclf",
        local=True,
    )
    with stub:
        assert cmd_teardown(argparse.Namespace(yes=True, stack=None), target) == 0
    stub.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert out.count("deleted endpoint config") == 20 and out.count("deleted model") == 2

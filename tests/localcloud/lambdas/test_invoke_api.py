"""The local Lambda Invoke API through a real boto3 lambda client: RequestResponse, a handler error,
Event (async, with the runner's retries), DryRun and an unknown function."""

import json

import pytest
from botocore.exceptions import ClientError

from localcloud.cloud import LocalCloud, LocalCloudConfig
from tests.support.fixtures import fixture_text

TEMPLATE = fixture_text("lambdas/invoke_api_template.yaml")

APP = fixture_text("lambdas/invoke_api_app.py")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    (root / "template.yaml").write_text(TEMPLATE)
    (root / "code").mkdir()
    (root / "code" / "app.py").write_text(APP)
    config = LocalCloudConfig(
        template=root / "template.yaml", state_dir=root / "state", stack_name="api", start_sagemaker=False
    )
    with LocalCloud(config) as running:
        yield running


def test_request_response_returns_the_handler_result(cloud):
    response = cloud.client("lambda").invoke(FunctionName="api-echo", Payload=b'{"a": 1}')
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {"got": {"a": 1}, "function": "api-echo"}
    by_arn = cloud.client("lambda").invoke(FunctionName=cloud.runner.function("Echo").arn + ":$LATEST")
    assert json.loads(by_arn["Payload"].read())["got"] == {}


def test_a_handler_error_comes_back_as_function_error(cloud):
    response = cloud.client("lambda").invoke(FunctionName="Echo", Payload=b'{"fail": true}')
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "asked to fail"


def test_event_invocations_are_queued_and_run(cloud):
    response = cloud.client("lambda").invoke(
        FunctionName="api-echo", InvocationType="Event", Payload=b'{"mark": "seen/event"}'
    )
    assert response["StatusCode"] == 202
    assert cloud.runner.wait_idle(30)
    cloud.client("s3").head_object(Bucket="api-data", Key="seen/event")


def test_dry_run_and_unknown_functions(cloud):
    assert (
        cloud.client("lambda").invoke(FunctionName="api-echo", InvocationType="DryRun")["StatusCode"] == 204
    )
    with pytest.raises(ClientError) as raised:
        cloud.client("lambda").invoke(FunctionName="nope", Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"

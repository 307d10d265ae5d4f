"""``python -m cli logs`` against the local cloud: a function's log by its logical id (START, the
handler's lines, END, REPORT), clear errors, and ``--follow`` until a job has ended."""

from __future__ import annotations

import contextlib
import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.logs import LogSource, tail
from cli.main import main
from localcloud.cloud import LocalCloud, LocalCloudConfig
from localcloud.logs import moto_fixes
from localcloud.logs.shipper import LogShipper
from localcloud.state import write_state_file
from tests.support.sagemaker import client, local_s3

TEMPLATE = textwrap.dedent(
    """
    Transform: AWS::Serverless-2016-10-31
    Resources:
      Talker:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: code/
          Handler: app.talk
          Runtime: python3.13
          Timeout: 20
          # IAM is enforced locally: reading the log groups needs its own grant (SAM's basic
          # execution role allows writing logs only).
          Policies:
            - Statement:
                - {Effect: Allow, Action: "logs:DescribeLogGroups", Resource: "*"}
    """
)
APP = textwrap.dedent(
    """
    import os
    import boto3

    def talk(event, context):
        print(f"talking about {event['topic']}")
        # The function reaches CloudWatch Logs where the cloud says it is (AWS_ENDPOINT_URL_LOGS).
        groups = boto3.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
        names = [g["logGroupName"] for g in groups]
        return {"logs_url": os.environ.get("AWS_ENDPOINT_URL_LOGS"), "groups": names}
    """
)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCloud, Path]]:
    root = tmp_path_factory.mktemp("cli-logs")
    (root / "template.yaml").write_text(TEMPLATE)
    (root / "code").mkdir()
    (root / "code" / "app.py").write_text(APP)
    config = LocalCloudConfig(
        template=root / "template.yaml", state_dir=root / "state", stack_name="logs", start_sagemaker=False
    )
    with LocalCloud(config) as running:
        yield running, write_state_file(running, config.state_dir)


@contextlib.contextmanager
def cli_environment(monkeypatch: pytest.MonkeyPatch, state_file: Path) -> Iterator[None]:
    """The CLI exports the state file's environment into this process (os.environ.update): set the same
    variables through monkeypatch first, so they are undone after the test and never reach the next."""
    with monkeypatch.context() as patch:
        for name, value in json.loads(state_file.read_text())["environment"].items():
            patch.setenv(name, value)
        yield


def test_the_functions_log_by_its_logical_id(
    cloud: tuple[LocalCloud, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    local, state_file = cloud
    name = local.runner.function("Talker").name if local.runner else ""
    response = local.client("lambda").invoke(FunctionName=name, Payload=json.dumps({"topic": "dogs"}))
    result = json.loads(response["Payload"].read())
    # The function reaches the logs API at the endpoint its environment names (with IAM enforced, the
    # authorizing proxy in front of moto's logs). Lines ship in the background, so whether its own
    # group exists yet while it runs is a race (as on AWS); after a flush it does.
    assert local.runner is not None
    assert result["logs_url"] == local.runner.function("Talker").environment["AWS_ENDPOINT_URL_LOGS"]
    assert set(result["groups"]) <= {f"/aws/lambda/{name}"}
    assert local.log_shipper and local.log_shipper.flush()
    groups = local.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
    assert [group["logGroupName"] for group in groups] == [f"/aws/lambda/{name}"]

    with cli_environment(monkeypatch, state_file):
        assert main(["--state-file", str(state_file), "logs", "function", "Talker"]) == 0
    lines = capsys.readouterr().out.splitlines()
    messages = [line.split(" ", 2)[2] for line in lines]
    assert messages[0].startswith("START RequestId: ") and messages[0].endswith(" Version: $LATEST")
    assert messages[1] == "talking about dogs"
    assert messages[2].startswith("END RequestId: ")
    assert messages[3].startswith("REPORT RequestId: ")
    stream = lines[0].split(" ", 2)[1]
    assert all(line.split(" ", 2)[1] == stream for line in lines)


def test_a_group_nothing_wrote_is_a_clear_error(
    cloud: tuple[LocalCloud, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, state_file = cloud
    with cli_environment(monkeypatch, state_file):
        assert main(["--state-file", str(state_file), "logs", "endpoint", "no-such-endpoint"]) == 1
    assert "no log group /aws/sagemaker/Endpoints/no-such-endpoint" in capsys.readouterr().err


def test_follow_prints_new_lines_until_the_job_has_ended_and_nothing_twice() -> None:
    moto_fixes.apply()  # as the local cloud does: FilterLogEvents honours logStreamNamePrefix
    with local_s3() as url:
        logs: Any = client("logs", url)
        shipper = LogShipper(lambda: client("logs", url))
        stream = shipper.open_stream("/aws/sagemaker/TrainingJobs", "job-a/algo-1-100")
        other = shipper.open_stream("/aws/sagemaker/TrainingJobs", "job-b/algo-1-100")
        other.put("another job's line")
        script = iter(["epoch 1", "epoch 2", "epoch 3"])
        polls: list[str] = []

        def between_polls(seconds: float) -> None:  # the job writes while the CLI waits
            line = next(script, None)
            polls.append(line or "")
            if line:
                stream.put(line)
                assert stream.flush()

        stream.put("epoch 0")
        assert stream.flush() and other.flush()
        printed: list[str] = []
        source = LogSource("/aws/sagemaker/TrainingJobs", "job-a/", ended=lambda: len(polls) >= 3)
        count = tail(logs, source, follow=True, write=printed.append, sleep=between_polls)
        shipper.close()
    assert [line.split(" ", 2)[2] for line in printed] == ["epoch 0", "epoch 1", "epoch 2", "epoch 3"]
    assert count == 4 and all(" job-a/algo-1-100 " in line for line in printed)


def test_filter_log_events_by_prefix_as_aws_documents_it() -> None:
    moto_fixes.apply()
    with local_s3() as url:
        logs: Any = client("logs", url)
        logs.create_log_group(logGroupName="g")
        now_ms = int(time.time() * 1000)  # older than 14 days would be refused
        for stream in ("job-1/algo-1-1", "job-10/algo-1-1", "job-2/algo-1-1"):
            logs.create_log_stream(logGroupName="g", logStreamName=stream)
            logs.put_log_events(
                logGroupName="g", logStreamName=stream, logEvents=[{"timestamp": now_ms, "message": stream}]
            )
        by_prefix = logs.filter_log_events(logGroupName="g", logStreamNamePrefix="job-1/")["events"]
        assert [e["message"] for e in by_prefix] == ["job-1/algo-1-1"]
        assert logs.filter_log_events(logGroupName="g", logStreamNamePrefix="job-3/")["events"] == []
        with pytest.raises(logs.exceptions.InvalidParameterException):
            logs.filter_log_events(logGroupName="g", logStreamNamePrefix="job-1/", logStreamNames=["x"])


class StackTarget:
    """cli.main's Target as --stack gives it: AWS (here a Stubber'd CloudFormation client)."""

    def __init__(self, cloudformation: Any) -> None:
        self.cloudformation = cloudformation
        self.local = False
        self.endpoint: str | None = None
        self.job_prefix = "dogclf"

    def client(self, service: str) -> Any:
        assert service == "cloudformation", service
        return self.cloudformation


def test_on_aws_a_logical_id_is_resolved_through_the_stacks_resources() -> None:
    import boto3
    from botocore.stub import Stubber

    from cli.logs import log_source
    from cli.main import build_parser

    cloudformation = boto3.client(
        "cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    detail = {
        "StackName": "dog-breed",
        "LogicalResourceId": "ClassifyFunction",
        "PhysicalResourceId": "dog-breed-ClassifyFunction-Ab12Cd34",
        "ResourceType": "AWS::Lambda::Function",
        "LastUpdatedTimestamp": "2026-12-07T00:00:00Z",
        "ResourceStatus": "CREATE_COMPLETE",
    }
    parser = build_parser()
    with Stubber(cloudformation) as stub:
        stub.add_response(
            "describe_stack_resource",
            {"StackResourceDetail": detail},
            {"StackName": "dog-breed", "LogicalResourceId": "ClassifyFunction"},
        )
        stub.add_client_error(
            "describe_stack_resource",
            "ValidationError",
            "Resource my-own-function does not exist for stack dog-breed",
            expected_params={"StackName": "dog-breed", "LogicalResourceId": "my-own-function"},
        )
        by_id = parser.parse_args(["--stack", "dog-breed", "logs", "function", "ClassifyFunction"])
        by_name = parser.parse_args(["--stack", "dog-breed", "logs", "function", "my-own-function"])
        target = StackTarget(cloudformation)
        assert log_source(by_id, target).group == "/aws/lambda/dog-breed-ClassifyFunction-Ab12Cd34"
        assert log_source(by_name, target).group == "/aws/lambda/my-own-function"
        stub.assert_no_pending_responses()

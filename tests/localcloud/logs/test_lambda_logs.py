"""Lambda's log in CloudWatch Logs: ``/aws/lambda/<name>``, one stream per execution environment named
``YYYY/MM/DD/[$LATEST]<GUID>``, START/END/REPORT around the handler's own lines (Lambda Operator
Guide, "How CloudWatch structures logs"), and an invocation that never waits on the logs service."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from localcloud.lambdas.runner import FunctionSpec, InvocationError, LambdaRunner, base_lambda_environment
from localcloud.logs.shipper import LogShipper
from localcloud.shared import free_port
from tests.support.sagemaker import client, local_s3

HANDLERS = textwrap.dedent(
    """
    import sys
    import time

    def talk(event, context):
        print("first line")
        print("second line")
        return context.log_stream_name

    def unfinished(event, context):
        sys.stdout.write("no newline at the end")
        return 1

    def sleep(event, context):
        print("going to sleep")
        time.sleep(30)
    """
)
STREAM_NAME = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")
REPORT = re.compile(
    r"^REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: 256 MB(\tMax Memory Used: \d+ MB)?(?P<init>\tInit Duration: \d+\.\d\d ms)?$"
)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with local_s3() as url:
        yield url


def spec(tmp_path: Path, handler: str, timeout_s: float = 10.0) -> FunctionSpec:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "handlers.py").write_text(HANDLERS)
    name = f"logs-{handler.split('.')[-1]}"
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    return FunctionSpec(
        logical_id=name,
        name=name,
        arn=arn,
        handler=handler,
        code_dir=code,
        environment=base_lambda_environment(name, arn, 256, timeout_s, "us-east-1"),
        timeout_s=timeout_s,
        memory_mb=256,
    )


def runner_for(function: FunctionSpec, tmp_path: Path, shipper: LogShipper) -> LambdaRunner:
    return LambdaRunner(
        {function.name: function},
        log_dir=tmp_path,
        send_to_destination=lambda destination, message: None,
        log_shipper=shipper,
    )


def group_messages(logs: Any, group: str) -> dict[str, list[str]]:
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    return {
        s["logStreamName"]: [
            e["message"]
            for e in logs.get_log_events(
                logGroupName=group, logStreamName=s["logStreamName"], startFromHead=True
            )["events"]
        ]
        for s in streams
    }


def test_each_invocation_is_bracketed_by_start_end_report_in_the_environments_stream(
    tmp_path: Path, moto_url: str
) -> None:
    function = spec(tmp_path, "handlers.talk")
    shipper = LogShipper(lambda: client("logs", moto_url))
    runner = runner_for(function, tmp_path, shipper)
    stream_seen = [runner.invoke(function.name, {}) for _ in range(2)]
    ids = [record.request_id for record in runner.records]
    runner.close()  # the environment ends: its stream's last flush

    [(stream, messages)] = group_messages(client("logs", moto_url), "/aws/lambda/logs-talk").items()
    assert STREAM_NAME.match(stream), stream
    assert stream.startswith(datetime.now(UTC).strftime("%Y/%m/%d/"))
    assert stream_seen == [stream, stream]  # the context names the stream the lines go to
    assert len(messages) == 10
    for n, request_id in enumerate(ids):
        start, first, second, end, report = messages[5 * n : 5 * n + 5]
        assert start == f"START RequestId: {request_id} Version: $LATEST"
        assert (first, second) == ("first line", "second line")
        assert end == f"END RequestId: {request_id}"
        match = REPORT.match(report)
        assert match and match["id"] == request_id, report
        assert bool(match["init"]) == (n == 0)  # Init Duration: the environment's first invocation only
    # The function's file under the state dir keeps the same lines.
    assert (tmp_path / "logs-talk.log").read_text().splitlines() == messages


def test_a_timeout_ends_with_lambdas_timeout_line_then_end_and_report(tmp_path: Path, moto_url: str) -> None:
    function = spec(tmp_path, "handlers.sleep", timeout_s=1.0)
    shipper = LogShipper(lambda: client("logs", moto_url))
    runner = runner_for(function, tmp_path, shipper)
    with pytest.raises(InvocationError, match="Task timed out"):
        runner.invoke(function.name, {})
    request_id = runner.records[-1].request_id
    runner.close()

    [messages] = group_messages(client("logs", moto_url), "/aws/lambda/logs-sleep").values()
    assert messages[:2] == [f"START RequestId: {request_id} Version: $LATEST", "going to sleep"]
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z {request_id} Task timed out after 1\.00 seconds",
        messages[2],
    )
    assert messages[3] == f"END RequestId: {request_id}"
    assert REPORT.match(messages[4]) and "Duration: 1000.00 ms" in messages[4]


def test_an_invocation_succeeds_while_the_logs_service_is_down(tmp_path: Path) -> None:
    function = spec(tmp_path, "handlers.talk")
    down = f"http://127.0.0.1:{free_port()}"
    shipper = LogShipper(lambda: client("logs", down), retry_delays_s=(0.01,))
    runner = runner_for(function, tmp_path, shipper)
    assert STREAM_NAME.match(runner.invoke(function.name, {}))
    runner.close()
    assert shipper.dropped_events == 5 and shipper.delivered_events == 0
    assert "second line" in (tmp_path / "logs-talk.log").read_text()  # the file still has it


def test_a_last_line_without_newline_stays_a_line_before_end(tmp_path: Path, moto_url: str) -> None:
    function = spec(tmp_path, "handlers.unfinished")
    shipper = LogShipper(lambda: client("logs", moto_url))
    runner = runner_for(function, tmp_path, shipper)
    runner.invoke(function.name, {})
    request_id = runner.records[-1].request_id
    runner.close()
    [messages] = group_messages(client("logs", moto_url), "/aws/lambda/logs-unfinished").values()
    assert messages[1:3] == ["no newline at the end", f"END RequestId: {request_id}"]

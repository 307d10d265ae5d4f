"""The AWS CLI (v1, unmodified) against the local cloud: the user's ``aws`` with the exported endpoints.

``sagemaker list-*/describe-*`` on the jobs the SDK flow's tuner ran, ``s3 cp`` into the datasets
bucket's upload prefix; CloudWatch Logs: a trial's and a Lambda's lines, with the v1 CLI's
``filter-log-events`` and with the AWS CLI v2's ``logs tail`` (v2 only; ``make aws-cli-v2`` installs
Debian's ``awscli``, the AWS CLI v2, at /usr/bin/aws).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

AWS = Path(sys.executable).with_name("aws")  # the CLI installed next to this interpreter
# The AWS CLI v2 (Makefile `aws-cli-v2`), called by its absolute path: .venv-sdk2's v1 `aws` would
# shadow it on a PATH that has the venv first.
AWS_V2 = Path("/usr/bin/aws")
UPLOADS_PREFIX = "uploads/"  # functions/pipeline/url_import.py UPLOADS_PREFIX


def aws_text(client_env: dict[str, str], *args: str) -> str:
    completed = subprocess.run(
        [str(AWS), *args, "--output", "json"],
        env=client_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def aws(client_env: dict[str, str], *args: str) -> Any:
    return json.loads(aws_text(client_env, *args))


def test_sagemaker_list_and_describe_the_tuning_and_its_trial(client_env: dict[str, str], tuner: Any) -> None:
    name = tuner.latest_tuning_job.name
    listed = aws(client_env, "sagemaker", "list-hyper-parameter-tuning-jobs", "--name-contains", name)
    summaries = listed["HyperParameterTuningJobSummaries"]
    assert [row["HyperParameterTuningJobName"] for row in summaries] == [name]
    flag = "--hyper-parameter-tuning-job-name"
    described = aws(client_env, "sagemaker", "describe-hyper-parameter-tuning-job", flag, name)
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    trials = aws(client_env, "sagemaker", "list-training-jobs-for-hyper-parameter-tuning-job", flag, name)
    [trial] = trials["TrainingJobSummaries"]
    assert trial["TrainingJobName"] == described["BestTrainingJob"]["TrainingJobName"]
    jobs = aws(client_env, "sagemaker", "list-training-jobs", "--name-contains", trial["TrainingJobName"])
    assert [row["TrainingJobStatus"] for row in jobs["TrainingJobSummaries"]] == ["Completed"]
    job = aws(
        client_env, "sagemaker", "describe-training-job", "--training-job-name", trial["TrainingJobName"]
    )
    assert job["TuningJobArn"] == described["HyperParameterTuningJobArn"]
    assert job["OutputDataConfig"]["KmsKeyId"] == ""
    assert job["ModelArtifacts"]["S3ModelArtifacts"].endswith("/output/model.tar.gz")


def test_s3_cp_into_the_upload_prefix(
    client_env: dict[str, str], local_cloud: dict[str, Any], tmp_path: Path
) -> None:
    bucket = local_cloud["outputs"]["DatasetBucketName"]
    note = tmp_path / "notes.txt"
    note.write_text("not a dataset: the pipeline reacts to .zip uploads only\n")
    key = f"{UPLOADS_PREFIX}notes.txt"
    copied = aws_text(client_env, "s3", "cp", str(note), f"s3://{bucket}/{key}")
    assert "upload: " in copied and f" to s3://{bucket}/{key}" in copied, copied
    head = aws(client_env, "s3api", "head-object", "--bucket", bucket, "--key", key)
    assert head["ContentLength"] == note.stat().st_size


# One event of `aws logs tail`'s default `detailed` format: "<timestamp> <log stream name> <message>"
# (https://docs.aws.amazon.com/cli/latest/reference/logs/tail.html, --format); a message's later lines
# (if it has several) come without the prefix and are not events of their own.
TAIL_LINE = re.compile(r"(\d{4}-\d\d-\d\dT\S+) (\S+) (.*)")


def aws_v2_logs_tail(
    client_env: dict[str, str], logs_endpoint: str, group: str, *args: str
) -> list[tuple[str, str]]:
    """``aws logs tail GROUP ... --since 1d`` with the AWS CLI v2: (stream, message) per event.

    ``--endpoint-url`` names the local CloudWatch Logs: the CLI v2 reads ``AWS_ENDPOINT_URL_<SERVICE>``
    only from 2.13.0 (https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-endpoints.html;
    Debian bookworm's is 2.9.19), and ``--endpoint-url`` is how a user points one command at another
    endpoint (same page, "Set endpoint for a single command"). ``--since 1d``: by default the command
    shows only the past ten minutes (tail.html above), and the suite's jobs may be older than that.
    """
    if not AWS_V2.exists():
        pytest.fail(f"{AWS_V2} not found: install the AWS CLI v2 with `make aws-cli-v2`")
    command = [str(AWS_V2), "--endpoint-url", logs_endpoint, "logs", "tail", group, "--since", "1d", *args]
    completed = subprocess.run(command, env=client_env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    events = [TAIL_LINE.fullmatch(line) for line in completed.stdout.splitlines()]
    return [(event[2], event[3]) for event in events if event]


# The AWS CLI v1 has no `aws logs tail` (v2 only: `aws logs help` in v1 lists filter-log-events,
# get-log-events and start-live-tail, no tail): each check reads with v1's `aws logs filter-log-events`
# and then with the v2 CLI's `aws logs tail`, with the same --log-stream-name-prefix.
def test_logs_filter_log_events_and_tail_show_the_trials_lines(
    client_env: dict[str, str], local_cloud: dict[str, Any], tuner: Any
) -> None:
    trial = tuner.best_training_job()
    found = aws(
        client_env,
        "logs",
        "filter-log-events",
        "--log-group-name",
        "/aws/sagemaker/TrainingJobs",
        "--log-stream-name-prefix",
        f"{trial}/",
    )
    streams = {event["logStreamName"] for event in found["events"]}
    assert len(streams) == 1 and re.fullmatch(rf"{trial}/algo-1-\d+", next(iter(streams)))
    assert any("#metric valid:accuracy=" in event["message"] for event in found["events"])

    group, prefix = "/aws/sagemaker/TrainingJobs", f"{trial}/"
    tailed = aws_v2_logs_tail(
        client_env, local_cloud["endpoints"]["logs"], group, "--log-stream-name-prefix", prefix
    )
    assert {stream for stream, _ in tailed} == streams
    metric_lines = {
        event["message"] for event in found["events"] if "#metric valid:accuracy=" in event["message"]
    }
    assert {message for _, message in tailed if "#metric valid:accuracy=" in message} == metric_lines


def test_logs_filter_log_events_and_tail_show_a_lambdas_start_end_report(
    client_env: dict[str, str], local_cloud: dict[str, Any], tmp_path: Path
) -> None:
    function = local_cloud["outputs"]["ImportUrlFunctionName"]
    out = tmp_path / "response.json"
    aws_text(
        client_env,
        "lambda",
        "invoke",
        "--function-name",
        function,
        "--payload",
        '{"url": "ftp://x/y.zip"}',
        str(out),
    )
    # Lambda delivers its log asynchronously, as on AWS: poll, bounded.
    deadline = time.monotonic() + 30
    messages: list[str] = []
    while not any(m.startswith("REPORT RequestId: ") for m in messages) and time.monotonic() < deadline:
        found = aws(client_env, "logs", "filter-log-events", "--log-group-name", f"/aws/lambda/{function}")
        messages = [event["message"] for event in found["events"]]
        time.sleep(0.5)
    starts = [m for m in messages if m.startswith("START RequestId: ")]
    assert starts and starts[0].endswith(" Version: $LATEST")
    request_id = starts[0].split()[2]
    assert f"END RequestId: {request_id}" in messages
    assert any(m.startswith(f"REPORT RequestId: {request_id}\tDuration: ") for m in messages)

    logs_endpoint = local_cloud["endpoints"]["logs"]
    tailed = [
        message for _, message in aws_v2_logs_tail(client_env, logs_endpoint, f"/aws/lambda/{function}")
    ]
    assert f"START RequestId: {request_id} Version: $LATEST" in tailed
    assert f"END RequestId: {request_id}" in tailed
    assert any(m.startswith(f"REPORT RequestId: {request_id}\tDuration: ") for m in tailed)

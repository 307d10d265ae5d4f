"""A training job's output in CloudWatch Logs, where SageMaker puts it: group
``/aws/sagemaker/TrainingJobs``, stream ``<job>/algo-1-<epoch seconds>`` (SageMaker Developer Guide,
"Log Amazon SageMaker AI events with Amazon CloudWatch"), complete when the job reports its end; and
a job that completes while the logs service is down (real toolkit, real subprocess, moto)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from localcloud.logs.shipper import LogShipper
from localcloud.sagemaker.server import SageMakerServer
from localcloud.shared import free_port
from tests.support.sagemaker import client, local_s3, tar_gz, training_job_request

BUCKET = "logged-jobs"
TRAIN_SCRIPT = r"""
import argparse, os, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--fail", type=str, default="false")
args = parser.parse_args()
for epoch in range(args.epochs):
    print(f"epoch {epoch} #metric valid:loss={1.0 / (epoch + 1)};", flush=True)
if args.fail.lower() == "true":
    raise RuntimeError("synthetic failure: the loss diverged")
(pathlib.Path(os.environ["SM_MODEL_DIR"]) / "model.txt").write_text("ok")
"""


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with local_s3() as url:
        s3 = client("s3", url)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="code/source.tar.gz", Body=tar_gz({"train.py": TRAIN_SCRIPT}))
        s3.put_object(Bucket=BUCKET, Key="data/train/a.txt", Body=b"x")
        yield url


def run_job(state_dir: Path, moto_url: str, shipper: LogShipper, name: str, fail: bool) -> dict[str, Any]:
    server = SageMakerServer(state_dir=state_dir, s3_endpoint_url=moto_url, logs=shipper).start()
    try:
        sm = client("sagemaker", server.url)
        sm.create_training_job(
            **training_job_request(
                name,
                BUCKET,
                f"s3://{BUCKET}/code/source.tar.gz",
                hyperparameters={"fail": "true" if fail else "false"},
                channels={"train": f"s3://{BUCKET}/data/train/"},
            )
        )
        waiter = sm.get_waiter("training_job_completed_or_stopped")
        with contextlib.suppress(botocore.exceptions.WaiterError):  # Failed: described below
            waiter.wait(TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        description: dict[str, Any] = sm.describe_training_job(TrainingJobName=name)
        return description
    finally:
        server.stop()


@pytest.mark.parametrize("fail", [False, True], ids=["completed", "failed"])
def test_the_jobs_lines_are_in_its_stream_when_it_ends(tmp_path: Path, moto_url: str, fail: bool) -> None:
    name = f"logged-{'failed' if fail else 'completed'}"
    shipper = LogShipper(lambda: client("logs", moto_url))
    description = run_job(tmp_path, moto_url, shipper, name, fail)
    assert description["TrainingJobStatus"] == ("Failed" if fail else "Completed")

    # Read as the SageMaker SDK's logs_for_job does: the job's streams by prefix, events from the head.
    logs = client("logs", moto_url)
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/", orderBy="LogStreamName"
    )["logStreams"]
    [stream] = [s["logStreamName"] for s in streams]
    match = re.fullmatch(rf"{name}/algo-1-(\d+)", stream)
    assert match, stream
    started = int(match[1])
    created, ended = description["CreationTime"].timestamp(), description["TrainingEndTime"].timestamp()
    assert created - 1 <= started <= ended
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream, startFromHead=True
    )["events"]
    messages = [e["message"] for e in events]
    # Every line the job's log file has (blank ones aside: CloudWatch Logs takes no empty event), in
    # its order, before the job reported its end.
    file_lines = (tmp_path / "jobs" / name / "training.log").read_text().splitlines()
    assert messages == [line for line in file_lines if line.strip()]
    epochs = [m for m in messages if m.startswith("epoch ")]
    assert epochs == [f"epoch {i} #metric valid:loss={1.0 / (i + 1)};" for i in range(3)]
    if fail:
        assert any("RuntimeError: synthetic failure: the loss diverged" in m for m in messages)
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)


def test_a_job_completes_while_the_logs_service_is_down(tmp_path: Path, moto_url: str) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # connection refused on every call
    shipper = LogShipper(lambda: client("logs", down), retry_delays_s=(0.01,))
    description = run_job(tmp_path, moto_url, shipper, "logged-outage", fail=False)
    assert description["TrainingJobStatus"] == "Completed"
    lines = (tmp_path / "jobs" / "logged-outage" / "training.log").read_text().splitlines()
    assert "epoch 2 #metric valid:loss=0.3333333333333333;" in lines  # the file keeps everything
    sent = [line for line in lines if line.strip()]
    assert shipper.dropped_events == len(sent) and shipper.delivered_events == 0

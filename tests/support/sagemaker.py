"""Helpers for tests and benchmarks of the SageMaker emulator: a local S3 (moto), source tarballs, requests.

Only ever 127.0.0.1; dummy credentials.
"""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from localcloud.shared import ACCOUNT_ID, free_port

REGION = "us-east-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/LocalSageMakerRole"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}


@contextmanager
def local_s3() -> Iterator[str]:
    """A moto server on 127.0.0.1 for S3; yields its URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def client(service: str, endpoint_url: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint_url, **CREDENTIALS)


def tar_gz(files: Mapping[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_gz_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                tar.add(path, arcname=path.relative_to(directory).as_posix())
    return buffer.getvalue()


def training_job_request(
    name: str,
    bucket: str,
    source_uri: str,
    program: str = "train.py",
    hyperparameters: dict[str, str] | None = None,
    metric_definitions: list[dict[str, str]] | None = None,
    channels: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A CreateTrainingJob request shaped like the SageMaker Python SDK's PyTorch estimator sends."""
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "HyperParameters": {
            "sagemaker_submit_directory": f'"{source_uri}"',
            "sagemaker_program": f'"{program}"',
            "sagemaker_region": f'"{REGION}"',
            **(hyperparameters or {}),
        },
        "AlgorithmSpecification": {
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1-cpu-py310",
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions or [],
        },
        "RoleArn": ROLE_ARN,
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    if channels:  # SageMaker rejects an empty InputDataConfig list
        request["InputDataConfig"] = [
            {"ChannelName": channel, "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}
            for channel, uri in channels.items()
        ]
    request.update(extra)
    return request


class EventLog:
    """Collects on_event callbacks (thread-safe) for assertions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, detail_type: str, name_key: str, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                e
                for e in self.events
                if e["detail-type"] == detail_type and e["detail"].get(name_key) == name
            ]

"""Support for the Lambda code tests: test environment, fake AWS (moto), archive builders, events.

Imported by conftest.py first, so the environment is set before any handler module reads it."""

from __future__ import annotations

import copy
import io
import json
import os
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import moto  # noqa: F401  (imported before any boto3 client so every client can be mocked)
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]
TRAINING_DIR = REPO / "training"

REGION = "us-east-1"
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_SERVICE_NAME": "dog-breed-pipeline-tests",
    "POWERTOOLS_METRICS_NAMESPACE": "DogBreedPipelineTests",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_DEV": "false",
    "DATASET_BUCKET": "test-datasets",
    "ARTIFACTS_BUCKET": "test-artifacts",
    "INFERENCE_BUCKET": "test-inference",
    "IDEMPOTENCY_TABLE": "test-idempotency",
    "NOTIFICATION_TOPIC_ARN": f"arn:aws:sns:{REGION}:123456789012:test-notifications",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/test-sagemaker",
    "JOB_NAME_PREFIX": "dogclf",
    "ENDPOINT_NAME": "dogclf-endpoint",
    "TRAINING_CODE_DIR": str(TRAINING_DIR),
    "FRAMEWORK_VERSION": "2.6.0",
    "ENDPOINT_MODE": "serverless",
    "DEBUGGER_MODE": "builtin",
    "PRETRAINED_WEIGHTS": "none",
    "ACCURACY_THRESHOLD": "0.6",
    "ROLLBACK_ALARM_NAMES": "dogclf-endpoint-5xx,dogclf-endpoint-latency",
}


def set_test_environment(monkeypatch: Any) -> None:
    """The functions' environment for one test; never reach a local server (or anything else)."""
    for name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def drop_handler_modules() -> None:
    """Forget the imported handler modules: the next import runs their init (settings, clients) again."""
    for name in [
        name for name in sys.modules if name == "pipeline.handlers" or name.startswith("pipeline.handlers.")
    ]:
        del sys.modules[name]


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@dataclass
class FakeAws:
    s3: Any
    sns: Any
    sqs: Any
    dynamodb: Any
    notifications_queue_url: str

    def notifications(self) -> list[dict[str, Any]]:
        """Messages published to the topic so far (through an SQS subscription)."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.notifications_queue_url, MaxNumberOfMessages=10)
            if not batch.get("Messages"):
                return messages
            for message in batch["Messages"]:
                envelope = json.loads(message["Body"])
                messages.append(
                    {"subject": envelope.get("Subject"), "message": json.loads(envelope["Message"])}
                )
                self.sqs.delete_message(
                    QueueUrl=self.notifications_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]


def fake_aws() -> Iterator[FakeAws]:
    """moto for S3, DynamoDB (idempotency table), SNS (topic with an SQS subscription to read it)."""
    from pipeline.adapters import aws as aws_adapter

    with mock_aws():
        aws_adapter.clear_clients()
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (ENV["DATASET_BUCKET"], ENV["ARTIFACTS_BUCKET"], ENV["INFERENCE_BUCKET"]):
            s3.create_bucket(Bucket=bucket)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=ENV["IDEMPOTENCY_TABLE"],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sns = boto3.client("sns", region_name=REGION)
        topic_arn = sns.create_topic(Name="test-notifications")["TopicArn"]
        assert topic_arn == ENV["NOTIFICATION_TOPIC_ARN"]
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        yield FakeAws(s3=s3, sns=sns, sqs=sqs, dynamodb=dynamodb, notifications_queue_url=queue_url)
        aws_adapter.clear_clients()


# ------------------------------------------------------------------ archives


def sample_zip_bytes(tmp_path: Path, **options: Any) -> bytes:
    """The training engineer's sample dataset (dogImages layout, tiny images) as zip bytes."""
    from tools.sample_data import write_sample_zip

    options = {
        "num_classes": 3,
        "train_per_class": 4,
        "valid_per_class": 2,
        "test_per_class": 2,
        "image_size": 32,
        **options,
    }
    return write_sample_zip(tmp_path / "sample.zip", **options).read_bytes()


def tiny_jpeg(seed: int = 0) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (seed * 37 % 256, 80, 160)).save(buffer, format="JPEG")
    return buffer.getvalue()


def layout_members(classes: int = 2, per_split: int = 2, root: str = "dogImages") -> dict[str, bytes]:
    members = {}
    for split in ("train", "valid", "test"):
        for class_index in range(1, classes + 1):
            for image_index in range(per_split):
                name = f"{root}/{split}/{class_index:03d}.Breed_{class_index}/img_{image_index}.jpg"
                members[name] = tiny_jpeg(class_index * 10 + image_index)
    return members


def build_zip(members: dict[str, bytes], extra: list[tuple[zipfile.ZipInfo, bytes]] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for info, data in extra or []:
            archive.writestr(info, data)
    return buffer.getvalue()


# ------------------------------------------------------------------ events


def load_event(name: str) -> dict[str, Any]:
    return json.loads((REPO / "events" / name).read_text())


def s3_event(name: str, bucket: str, key: str, etag: str = "etag-1") -> dict[str, Any]:
    """events/<name> with the test bucket and the key URL-encoded the way S3 sends it."""
    event = copy.deepcopy(load_event(name))
    record = event["Records"][0]["s3"]
    record["bucket"]["name"] = bucket
    record["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    record["object"]["key"] = quote_plus(key, safe="/")
    record["object"]["eTag"] = etag
    return event

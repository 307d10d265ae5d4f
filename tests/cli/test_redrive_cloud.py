"""`cli redrive --local`: a failed ingest event in the template's failure queue is replayed through the
real function (the local Lambda Invoke API), and its message deleted only because the replay worked."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from localcloud.cloud import LocalCloud, LocalCloudConfig
from localcloud.environment.containerenv import REPO_ROOT
from localcloud.state import write_state_file
from tools.sample_data import write_sample_zip


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    config = LocalCloudConfig(
        template=REPO_ROOT / "template.yaml",
        state_dir=tmp_path_factory.mktemp("redrive"),
        start_sagemaker=False,  # the replay stops at ingest; dataset-ready's outcome does not matter here
        retry_delays_s=(0.05,),
        parameter_overrides={"LogLevel": "WARNING"},
    )
    with LocalCloud(config) as running:
        yield running


def s3_put_event(bucket: str, key: str, etag: str) -> dict:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-29T09:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "IngestFunction.ZipUploaded",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": key, "size": 1, "eTag": etag, "sequencer": "0A"},
                },
            }
        ]
    }


def test_redrive_replays_a_failed_ingest_and_empties_the_queue(cloud, tmp_path, monkeypatch, capsys):
    state_file = write_state_file(cloud, cloud.state_dir)
    for name, value in json.loads(state_file.read_text())["environment"].items():
        monkeypatch.setenv(name, value)  # the CLI sets these; monkeypatch restores them
    outputs = cloud.outputs()
    bucket, queue_url = outputs["DatasetBucketName"], outputs["FailedEventsQueueUrl"]
    s3, sqs = cloud.client("s3"), cloud.client("sqs")
    # Under uploads/ (the only prefix the ingest role may read: IAM is enforced) but not ending in
    # .zip, so no S3 trigger: only the replay can ingest it.
    archive = write_sample_zip(
        tmp_path / "late.zip",
        num_classes=2,
        train_per_class=2,
        valid_per_class=1,
        test_per_class=1,
        image_size=16,
    )
    s3.upload_file(str(archive), bucket, "uploads/late.zip.held")
    etag = s3.head_object(Bucket=bucket, Key="uploads/late.zip.held")["ETag"].strip('"')
    ingest_arn = cloud.runner.function("IngestFunction").arn
    record = {  # what Lambda sends to the on-failure destination after the last retry
        "version": "1.0",
        "timestamp": "2026-11-29T09:00:00.000Z",
        "requestContext": {
            "requestId": "r-1",
            "functionArn": f"{ingest_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 2,
        },
        "requestPayload": s3_put_event(bucket, "uploads/late.zip.held", etag),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "ReadTimeoutError", "errorMessage": "Read timeout on endpoint URL"},
    }
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))

    # --limit 1: the replay's manifest starts tuning, which fails here (no SageMaker) and may add
    # its own record to the queue while this runs.
    assert main(["redrive", "--limit", "1", "--state-file", str(state_file)]) == 0
    out = capsys.readouterr().out
    assert "replayed" in out and "accepted" in out and "1 replayed, 0 left in the queue" in out
    manifests = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket=bucket, Prefix="datasets/").get("Contents", [])
        if item["Key"].endswith("/manifest.json")
    ]
    assert len(manifests) == 1
    left = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    bodies = [json.loads(message["Body"]) for message in left.get("Messages", [])]
    assert not [body for body in bodies if body.get("requestContext", {}).get("requestId") == "r-1"]

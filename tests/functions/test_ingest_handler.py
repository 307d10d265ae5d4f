"""Ingest handler against moto S3/DynamoDB/SNS: extraction, manifest, rejection, duplicate events."""

from __future__ import annotations

import json

import pytest
from fn_support import ENV, build_zip, layout_members, load_event, s3_event

from pipeline.ingest.service import Upload, dataset_id


@pytest.fixture
def ingest(aws):
    """The handler module, imported once the test environment is set (it reads settings on import)."""
    from pipeline.handlers import ingest

    return ingest


BUCKET = ENV["DATASET_BUCKET"]
KEY = "uploads/dog images (2026)+v1.zip"


def test_event_file_keys_are_url_encoded() -> None:
    record = load_event("ingest.json")["Records"][0]["s3"]["object"]
    assert "%28" in record["key"] and "+" in record["key"]


def test_upload_is_extracted_with_manifest_and_report(ingest, aws, sample_zip, lambda_context) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=sample_zip)
    etag = aws.s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"].strip('"')
    [report] = ingest.handler(s3_event("ingest.json", BUCKET, KEY, etag), lambda_context)

    identifier = dataset_id(Upload(BUCKET, KEY, etag))
    assert report["status"] == "accepted" and report["dataset_id"] == identifier
    assert identifier.startswith("dog-images-2026-v1-")
    keys = aws.keys(BUCKET, f"datasets/{identifier}/")
    assert report["extraction"]["written"] == 24
    manifest = json.loads(
        aws.s3.get_object(Bucket=BUCKET, Key=f"datasets/{identifier}/manifest.json")["Body"].read()
    )
    assert manifest["channels"]["train"] == f"s3://{BUCKET}/datasets/{identifier}/train/"
    assert manifest["images"] == {"train": 12, "valid": 6, "test": 6}
    assert len(manifest["classes"]) == 3
    # Each channel prefix holds its split's tar shards (one each at this size), nothing else.
    assert sorted(keys) == sorted(
        [f"datasets/{identifier}/{name}" for name in ("index.json", "manifest.json", "report.json")]
        + [f"datasets/{identifier}/{split}/{split}-00000.tar" for split in ("train", "valid", "test")]
    )
    [note] = aws.notifications()
    assert note["subject"].startswith("Dataset accepted")


def test_duplicate_event_does_not_ingest_twice(ingest, aws, sample_zip, lambda_context, monkeypatch) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=sample_zip)
    calls = []
    real = ingest.ingest_upload

    def counting_ingest(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(ingest, "ingest_upload", counting_ingest)
    event = s3_event("ingest.json", BUCKET, KEY, "same-etag")
    first = ingest.handler(event, lambda_context)
    second = ingest.handler(event, lambda_context)
    assert first == second
    assert len(calls) == 1
    assert len(aws.notifications()) == 1


def test_redelivery_after_idempotency_expiry_reuses_the_report(
    ingest, aws, sample_zip, lambda_context, monkeypatch
) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=sample_zip)
    event = s3_event("ingest.json", BUCKET, KEY, "etag-x")
    ingest.handler(event, lambda_context)
    aws.dynamodb.delete_table(TableName=ENV["IDEMPOTENCY_TABLE"])  # records gone, as after the TTL
    aws.dynamodb.create_table(
        TableName=ENV["IDEMPOTENCY_TABLE"],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    puts = []
    monkeypatch.setattr(ingest.S3Store, "put_bytes", lambda self, *args: puts.append(args))
    [report] = ingest.handler(event, lambda_context)
    assert report["status"] == "accepted" and puts == []


def test_invalid_archive_is_rejected_with_a_report_and_no_manifest(ingest, aws, lambda_context) -> None:
    members = {name: data for name, data in layout_members().items() if "/valid/" not in name}
    aws.s3.put_object(Bucket=BUCKET, Key="uploads/broken.zip", Body=build_zip(members))
    [report] = ingest.handler(s3_event("ingest.json", BUCKET, "uploads/broken.zip"), lambda_context)
    assert report["status"] == "rejected" and "missing split(s) valid" in report["reason"]
    keys = aws.keys(BUCKET, "datasets/")
    assert keys == [f"datasets/{report['dataset_id']}/report.json"]
    [note] = aws.notifications()
    assert note["subject"] == "Dataset rejected: uploads/broken.zip"


def test_corrupt_zip_is_rejected(ingest, aws, lambda_context) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="uploads/junk.zip", Body=b"\x00" * 5000)
    [report] = ingest.handler(s3_event("ingest.json", BUCKET, "uploads/junk.zip"), lambda_context)
    assert report["status"] == "rejected" and "not a readable zip" in report["reason"]


def test_missing_object_fails_loudly_and_can_be_retried(ingest, aws, lambda_context) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        ingest.handler(s3_event("ingest.json", BUCKET, "uploads/gone.zip"), lambda_context)
    # The failed attempt left no idempotency record in the way of a retry.
    assert aws.dynamodb.scan(TableName=ENV["IDEMPOTENCY_TABLE"])["Items"] == []

"""Ingest under injected faults (S3 errors, stalls and timeouts mid-archive): AWS/network errors propagate so
Lambda retries, they never become a decision; only the last document written marks the work done."""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from fn_support import ENV, build_zip, layout_members, s3_event

from pipeline.ingest.service import Upload, dataset_id

BUCKET = ENV["DATASET_BUCKET"]
KEY = "uploads/faults.zip"
IMAGES = 12  # layout_members(): 2 classes x 3 splits x 2 images


@pytest.fixture
def ingest(aws):
    from pipeline.handlers import ingest

    return ingest


@pytest.fixture
def upload(aws) -> dict[str, str]:
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=build_zip(layout_members()))
    etag = aws.s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"].strip('"')
    prefix = f"datasets/{dataset_id(Upload(BUCKET, KEY, etag))}/"
    return {"etag": etag, "prefix": prefix}


def read_json(aws, key: str) -> dict[str, Any]:
    return json.loads(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def server_error(operation: str, code: str = "InternalError", status: int = 500) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


class FailOnce:
    """Wraps a method: the first call for which ``when(*args)`` is true raises ``error``."""

    def __init__(self, method: Any, when: Any, error: BaseException) -> None:
        self.method, self.when, self.error = method, when, error
        self.raised = 0
        self._lock = threading.Lock()  # the ingest reads ahead and uploads from worker threads

    def __get__(self, instance: Any, owner: Any) -> Any:
        return functools.partial(self.__call__, instance)

    def __call__(self, instance: Any, *args: Any) -> Any:
        with self._lock:
            fire = self.raised == 0 and self.when(*args)
            if fire:
                self.raised += 1
        if fire:
            raise self.error
        return self.method(instance, *args)


def test_a_report_without_its_manifest_is_not_taken_as_done(ingest, aws, upload, lambda_context) -> None:
    # What an attempt that died between the two PUTs leaves behind.
    prefix = upload["prefix"]
    aws.s3.put_object(
        Bucket=BUCKET, Key=prefix + "report.json", Body=json.dumps({"status": "accepted", "dataset_id": "x"})
    )
    [report] = ingest.handler(s3_event("ingest.json", BUCKET, KEY, upload["etag"]), lambda_context)
    assert report["status"] == "accepted" and report["extraction"]["written"] == IMAGES
    assert read_json(aws, prefix + "manifest.json")["images"] == {"train": 4, "valid": 4, "test": 4}


def test_a_failed_manifest_put_is_retried_until_the_manifest_exists(
    ingest, aws, upload, lambda_context, monkeypatch
) -> None:
    fault = FailOnce(
        ingest.S3Store.put_bytes,
        lambda bucket, key, *rest: key.endswith("/manifest.json"),
        server_error("PutObject", "ServiceUnavailable", 503),
    )
    monkeypatch.setattr(ingest.S3Store, "put_bytes", fault)
    event = s3_event("ingest.json", BUCKET, KEY, upload["etag"])
    with pytest.raises(ClientError, match="ServiceUnavailable"):
        ingest.handler(event, lambda_context)
    assert fault.raised == 1
    [report] = ingest.handler(event, lambda_context)  # Lambda's retry
    assert report["status"] == "accepted"
    # The manifest is what starts tuning: it must exist after the retry.
    assert read_json(aws, upload["prefix"] + "manifest.json")["dataset_id"] == report["dataset_id"]


def test_a_read_timeout_while_opening_the_archive_is_not_a_rejection(
    ingest, aws, upload, lambda_context, monkeypatch
) -> None:
    fault = FailOnce(
        ingest.S3Store.get_range,
        lambda *args: True,
        ReadTimeoutError(endpoint_url="https://s3.test/faults.zip"),
    )
    monkeypatch.setattr(ingest.S3Store, "get_range", fault)
    event = s3_event("ingest.json", BUCKET, KEY, upload["etag"])
    with pytest.raises(ReadTimeoutError):
        ingest.handler(event, lambda_context)
    assert aws.keys(BUCKET, upload["prefix"]) == []  # no stored rejection
    [report] = ingest.handler(event, lambda_context)
    assert report["status"] == "accepted" and report["extraction"]["written"] == IMAGES


def test_a_read_timeout_during_extraction_does_not_count_the_member_as_corrupt(
    ingest, aws, upload, lambda_context, monkeypatch
) -> None:
    from pipeline.ingest import service
    from pipeline.ingest.seekable import S3RangeReader

    # Small blocks, so the members are fetched while extracting, not with the central directory.
    monkeypatch.setattr(service, "S3RangeReader", functools.partial(S3RangeReader, block_size=1024))
    extracting = threading.Event()
    real_extract = service.extract

    def extract(*args: Any, **kwargs: Any) -> Any:
        extracting.set()
        return real_extract(*args, **kwargs)

    monkeypatch.setattr(service, "extract", extract)
    fault = FailOnce(
        ingest.S3Store.get_range,
        lambda *args: extracting.is_set(),
        ReadTimeoutError(endpoint_url="https://s3.test/faults.zip"),
    )
    monkeypatch.setattr(ingest.S3Store, "get_range", fault)
    event = s3_event("ingest.json", BUCKET, KEY, upload["etag"])
    with pytest.raises(ReadTimeoutError):
        ingest.handler(event, lambda_context)
    assert fault.raised == 1
    assert not [key for key in aws.keys(BUCKET, upload["prefix"]) if key.endswith(".json")]
    [report] = ingest.handler(event, lambda_context)
    assert report["status"] == "accepted"
    assert report["extraction"]["written"] == IMAGES and report["extraction"]["skipped_total"] == 0


def test_a_throttled_upload_propagates_instead_of_skipping(
    ingest, aws, upload, lambda_context, monkeypatch
) -> None:
    real_client = ingest.store.client
    calls = []

    class ThrottledOnce:
        """The handler's S3 client, whose first UploadPart (a shard's bytes) is throttled."""

        def upload_part(self, **kwargs: Any) -> Any:
            calls.append(kwargs["Key"])
            if len(calls) == 1:
                raise server_error("UploadPart", "SlowDown", 503)
            return real_client.upload_part(**kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(real_client, name)

    monkeypatch.setattr(ingest.store, "client", ThrottledOnce())
    event = s3_event("ingest.json", BUCKET, KEY, upload["etag"])
    with pytest.raises(ClientError, match="SlowDown"):
        ingest.handler(event, lambda_context)
    assert calls[0].endswith(".tar")
    assert aws.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    [report] = ingest.handler(event, lambda_context)
    assert report["extraction"]["written"] == IMAGES


def test_a_real_bad_zip_is_still_a_stored_rejection(ingest, aws, lambda_context) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="uploads/junk.zip", Body=b"PK" + b"\x00" * 5000)
    event = s3_event("ingest.json", BUCKET, "uploads/junk.zip")
    [first] = ingest.handler(event, lambda_context)
    assert first["status"] == "rejected" and "not a readable zip" in first["reason"]
    stored = read_json(aws, f"datasets/{first['dataset_id']}/report.json")
    assert stored["status"] == "rejected"

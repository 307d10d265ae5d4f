"""The idempotency in-progress window, so a killed invocation cannot block its retries: a record left by a
killed invocation expires at that invocation's deadline, so Lambda's next attempt runs; one still running
blocks it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from fn_support import ENV, FakeLambdaContext, build_zip, layout_members, s3_event

BUCKET = ENV["DATASET_BUCKET"]
KEY = "uploads/crash.zip"


class Killed(BaseException):
    """What Lambda does to a sandbox out of memory or time: no except Exception block runs."""


@dataclass
class DeadlineContext(FakeLambdaContext):
    remaining_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def ingest(aws):
    from pipeline.handlers import ingest

    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=build_zip(layout_members()))
    return ingest


def kill_first_attempt(ingest, monkeypatch, context: DeadlineContext) -> None:
    real = ingest.ingest_upload

    def killed(*args):
        raise Killed()

    monkeypatch.setattr(ingest, "ingest_upload", killed)
    with pytest.raises(Killed):
        ingest.handler(s3_event("ingest.json", BUCKET, KEY), context)
    monkeypatch.setattr(ingest, "ingest_upload", real)


def in_progress_records(aws) -> list[dict]:
    items = aws.dynamodb.scan(TableName=ENV["IDEMPOTENCY_TABLE"])["Items"]
    return [item for item in items if item["status"]["S"] == "INPROGRESS"]


def test_a_killed_invocation_past_its_deadline_does_not_block_the_retry(ingest, aws, monkeypatch) -> None:
    kill_first_attempt(ingest, monkeypatch, DeadlineContext(remaining_ms=5))
    [record] = in_progress_records(aws)
    expiry_ms = int(record["in_progress_expiration"]["N"])
    # The window ends at the killed invocation's deadline (now + its remaining time).
    assert expiry_ms <= int(time.time() * 1000) + 5
    while int(time.time() * 1000) <= expiry_ms:  # at most a few ms: the deadline has to be past
        time.sleep(0.001)
    [report] = ingest.handler(s3_event("ingest.json", BUCKET, KEY), DeadlineContext())
    assert report["status"] == "accepted"
    assert in_progress_records(aws) == []


def test_an_invocation_still_within_its_deadline_blocks_a_duplicate(ingest, aws, monkeypatch) -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    kill_first_attempt(ingest, monkeypatch, DeadlineContext(remaining_ms=600_000))
    [record] = in_progress_records(aws)
    assert int(record["in_progress_expiration"]["N"]) > int(time.time() * 1000) + 500_000
    with pytest.raises(IdempotencyAlreadyInProgressError):
        ingest.handler(s3_event("ingest.json", BUCKET, KEY), DeadlineContext())

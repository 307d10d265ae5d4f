"""`cli upload` always names the object *.zip (lower case): S3's suffix rules are case-sensitive and the
ingest has rules for .zip and .ZIP only, so an upload named X.Zip, or a --key without the suffix, would
never trigger it."""

from __future__ import annotations

import argparse

import boto3
import pytest
from moto import mock_aws

from cli.datasets import cmd_upload
from cli.target import Target


@pytest.mark.parametrize(
    ("file_name", "key", "expected"),
    [
        ("DOGS.ZIP", None, "uploads/DOGS.zip"),
        ("dogs.zip", "v2", "uploads/v2.zip"),
        ("a.zip", None, "uploads/a.zip"),
    ],
)
def test_uploaded_key_ends_in_lower_case_zip(tmp_path, monkeypatch, file_name, key, expected) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    archive = tmp_path / file_name
    archive.write_bytes(b"PK\x05\x06" + bytes(18))
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("s3").create_bucket(Bucket="datasets")
        target = Target(session, "datasets", None, None, None, "dogclf", local=False)
        assert cmd_upload(argparse.Namespace(zip=str(archive), key=key, prefix="uploads/"), target) == 0
        listed = session.client("s3").list_objects_v2(Bucket="datasets")["Contents"]
        assert [item["Key"] for item in listed] == [expected]

"""One S3 notification per object written, as in AWS: a multipart upload notifies once with
``ObjectCreated:CompleteMultipartUpload`` (moto alone also sends a ``Put``), a plain put once with
``ObjectCreated:Put``, and every genuine re-upload of a key notifies again.

Invocations are counted twice, independently: in the Lambda runner's invocation records and by the
function's own side effect (one object per request id)."""

import json

import pytest
from boto3.s3.transfer import TransferConfig

from localcloud.cloud import LocalCloud, LocalCloudConfig
from tests.support.fixtures import fixture_text

TEMPLATE = fixture_text("events/multipart_template.yaml")

APP = fixture_text("events/multipart_app.py")

MB = 1024 * 1024


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    root = tmp_path_factory.mktemp("multipart")
    (root / "template.yaml").write_text(TEMPLATE)
    (root / "code").mkdir()
    (root / "code" / "app.py").write_text(APP)
    config = LocalCloudConfig(
        template=root / "template.yaml",
        state_dir=root / "state",
        stack_name="mp",
        start_sagemaker=False,
        retry_delays_s=(0.05,),
    )
    with LocalCloud(config) as running:
        yield running


def delivered(cloud, key):
    """Event names the function saw for ``key``: from its side effects and from the runner's log."""
    assert cloud.wait_s3_events_delivered(60), "S3 notifications still pending after 60 s"
    s3, bucket = cloud.client("s3"), "mp-data"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"seen/{key}/").get("Contents", [])
    from_side_effects = sorted(
        json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())["event_name"]
        for item in listed
    )
    from_runner = sorted(
        record.summary.split(" ")[0]
        for record in cloud.runner.records
        if record.function == "mp-seen" and record.attempt == 1 and record.summary.endswith(f"/{key}")
    )
    assert all(record.ok for record in cloud.runner.records), [r.error for r in cloud.runner.records]
    assert from_side_effects == from_runner
    return from_runner


def test_multipart_upload_notifies_once_as_complete_multipart_upload(cloud, tmp_path):
    path = tmp_path / "big.zip"
    path.write_bytes(b"PK\x03\x04" + bytes(6 * MB))  # two parts at a 5 MB chunk size
    config = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB, use_threads=False)
    cloud.client("s3").upload_file(str(path), "mp-data", "uploads/big.zip", Config=config)
    assert delivered(cloud, "uploads/big.zip") == ["ObjectCreated:CompleteMultipartUpload"]


def test_low_level_multipart_calls_notify_once(cloud):
    s3 = cloud.client("s3")
    upload = s3.create_multipart_upload(Bucket="mp-data", Key="uploads/parts.zip")
    part = s3.upload_part(
        Bucket="mp-data", Key="uploads/parts.zip", UploadId=upload["UploadId"], PartNumber=1, Body=b"PK"
    )
    s3.complete_multipart_upload(
        Bucket="mp-data",
        Key="uploads/parts.zip",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert delivered(cloud, "uploads/parts.zip") == ["ObjectCreated:CompleteMultipartUpload"]


def test_plain_put_notifies_once_and_every_reupload_notifies_again(cloud):
    s3 = cloud.client("s3")
    s3.put_object(Bucket="mp-data", Key="uploads/small.zip", Body=b"PK one")
    assert delivered(cloud, "uploads/small.zip") == ["ObjectCreated:Put"]
    s3.put_object(Bucket="mp-data", Key="uploads/small.zip", Body=b"PK two")  # same key, new object
    assert delivered(cloud, "uploads/small.zip") == ["ObjectCreated:Put", "ObjectCreated:Put"]


def test_copy_still_notifies_once(cloud):
    s3 = cloud.client("s3")
    s3.put_object(Bucket="mp-data", Key="elsewhere/src.zip", Body=b"PK")  # outside the prefix
    source = {"Bucket": "mp-data", "Key": "elsewhere/src.zip"}
    s3.copy_object(Bucket="mp-data", Key="uploads/copied.zip", CopySource=source)
    assert delivered(cloud, "uploads/copied.zip") == ["ObjectCreated:Copy"]

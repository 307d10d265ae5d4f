"""An upload named *.ZIP starts the real ingest through the template's second S3 rule (suffix rules are
case-sensitive); mixed case such as *.Zip matches neither rule and starts nothing."""

from __future__ import annotations

import pytest

from localcloud.cloud import LocalCloud, LocalCloudConfig
from localcloud.environment.containerenv import REPO_ROOT
from tools.sample_data import write_sample_zip


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    config = LocalCloudConfig(
        template=REPO_ROOT / "template.yaml",
        state_dir=tmp_path_factory.mktemp("zipcase"),
        start_sagemaker=False,  # the test stops at ingest; dataset-ready's failures do not matter here
        retry_delays_s=(0.05,),
        parameter_overrides={"LogLevel": "WARNING"},
    )
    with LocalCloud(config) as running:
        yield running


def test_upper_case_zip_is_ingested_and_mixed_case_is_not(cloud, tmp_path):
    archive = write_sample_zip(
        tmp_path / "dogs.zip",
        num_classes=3,
        train_per_class=4,
        valid_per_class=2,
        test_per_class=2,
        image_size=32,
    )
    bucket = cloud.outputs()["DatasetBucketName"]
    s3 = cloud.client("s3")
    for key in ("uploads/DOGS.ZIP", "uploads/Mixed.Zip"):
        s3.upload_file(str(archive), bucket, key)
    assert cloud.wait_s3_events_delivered(timeout_s=300)

    assert cloud.runner is not None
    ingested = [r.summary for r in cloud.runner.records if r.function.endswith("ingestfunction") and r.ok]
    assert ingested == [f"ObjectCreated:Put s3://{bucket}/uploads/DOGS.ZIP"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="datasets/")["Contents"]
    manifests = [item["Key"] for item in listed if item["Key"].endswith("/manifest.json")]
    assert len(manifests) == 1 and manifests[0].startswith("datasets/dogs-"), manifests

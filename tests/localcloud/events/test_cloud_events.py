"""The local cloud end to end on a tiny template: real moto S3 notifications, EventBridge routing,
handler-written objects notifying in turn, URL-encoded keys, and the on-failure queue."""

import json

import pytest

from localcloud.cloud import LocalCloud, LocalCloudConfig
from tests.support.fixtures import fixture_text
from tests.support.polling import wait_until

TEMPLATE = fixture_text("lambdas/cloud_events_template.yaml")

APP = fixture_text("lambdas/cloud_events_app.py")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    (root / "template.yaml").write_text(TEMPLATE)
    (root / "code").mkdir()
    (root / "code" / "app.py").write_text(APP)
    (root / "layer").mkdir()
    config = LocalCloudConfig(
        template=root / "template.yaml",
        state_dir=root / "state",
        stack_name="test",
        start_sagemaker=False,
        retry_delays_s=(0.05, 0.05),
    )
    with LocalCloud(config) as running:
        yield running


def wait_for_key(s3, bucket, key, timeout_s=30.0):
    wait_until(
        lambda: s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", []),
        lambda listed: any(item["Key"] == key for item in listed),
        timeout_s=timeout_s,
        what=f"s3://{bucket}/{key} exists",
    )
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_resources_exist_with_resolved_names(cloud):
    outputs = cloud.outputs()
    assert outputs["BucketName"] == "test-data-123456789012"
    cloud.client("s3").head_bucket(Bucket=outputs["BucketName"])
    assert cloud.client("dynamodb").describe_table(TableName="test-table")["Table"]["TableStatus"] == "ACTIVE"
    cloud.client("sqs").get_queue_attributes(QueueUrl=outputs["FailedUrl"], AttributeNames=["All"])


def test_s3_upload_triggers_the_chain_with_url_encoded_keys(cloud):
    s3, bucket = cloud.client("s3"), cloud.outputs()["BucketName"]
    s3.put_object(Bucket=bucket, Key="uploads/my dogs+(1).zip", Body=b"PK")
    seen = json.loads(wait_for_key(s3, bucket, "seen/my dogs+(1).zip.json"))
    assert seen["raw_key"] == "uploads/my+dogs%2B%281%29.zip"  # what S3 puts in the event
    assert seen["event_name"] == "ObjectCreated:Put"
    assert seen["function"] == "test-ingest"
    assert seen["layer_dir"] == str(cloud.config.template.parent / "layer" / "extra")
    # Written by the handler, so it must have notified Ready in turn.
    wait_for_key(s3, bucket, "ready/datasets_my dogs+(1).zip_manifest.json")


def test_filters_keep_other_keys_away(cloud):
    s3, bucket = cloud.client("s3"), cloud.outputs()["BucketName"]
    before = len(cloud.runner.records)
    s3.put_object(Bucket=bucket, Key="uploads/notes.txt", Body=b"x")  # wrong suffix
    s3.put_object(Bucket=bucket, Key="elsewhere/a.zip", Body=b"x")  # wrong prefix
    s3.put_object(Bucket=bucket, Key="datasets/x/manifest.json.bak", Body=b"x")  # suffix must be at the end
    s3.put_object(Bucket=bucket, Key="uploads/marker.zip", Body=b"PK")  # this one matches
    wait_for_key(s3, bucket, "seen/marker.zip.json")
    assert cloud.runner.wait_idle(30)
    summaries = [r.summary for r in cloud.runner.records[before:]]
    assert not any("notes.txt" in s or "elsewhere/" in s or ".bak" in s for s in summaries), summaries


def test_eventbridge_rule_routes_matching_events_only(cloud):
    s3, bucket = cloud.client("s3"), cloud.outputs()["BucketName"]
    detail_type = "SageMaker Training Job State Change"
    assert (
        cloud.put_event(
            {
                "source": "aws.sagemaker",
                "detail-type": detail_type,
                "detail": {"TrainingJobName": "job-hpo-1"},
            }
        )
        == []
    )
    assert (
        cloud.put_event(
            {
                "source": "aws.sagemaker",
                "detail-type": detail_type,
                "detail": {"TrainingJobName": "job-train-1", "TrainingJobStatus": "InProgress"},
            }
        )
        == []
    )
    targets = cloud.put_event(
        {
            "source": "aws.sagemaker",
            "detail-type": detail_type,
            "detail": {"TrainingJobName": "job-train-1", "TrainingJobStatus": "Completed"},
        }
    )
    assert targets == ["test-onjob"]
    wait_for_key(s3, bucket, "jobs/job-train-1")


def test_failing_invocation_lands_in_the_on_failure_queue(cloud):
    sqs = cloud.client("sqs")
    cloud.put_event(
        {
            "source": "aws.sagemaker",
            "detail-type": "SageMaker Training Job State Change",
            "detail": {"TrainingJobName": "job-train-bad", "TrainingJobStatus": "Failed"},
        }
    )
    assert cloud.runner.wait_idle(30)
    messages = sqs.receive_message(QueueUrl=cloud.outputs()["FailedUrl"], MaxNumberOfMessages=10)["Messages"]
    records = [json.loads(m["Body"]) for m in messages]
    (record,) = [r for r in records if r["requestPayload"]["detail"]["TrainingJobName"] == "job-train-bad"]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responsePayload"]["errorMessage"] == "job failed: job-train-bad"
    assert record["requestPayload"]["source"] == "aws.sagemaker"


def test_lambda_environment_points_only_at_localhost(cloud):
    spec = cloud.runner.function("Ingest")
    endpoints = {k: v for k, v in spec.environment.items() if k.startswith("AWS_ENDPOINT_URL")}
    assert {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"} <= set(endpoints)
    assert all(v.startswith("http://127.0.0.1:") for v in endpoints.values())
    assert spec.environment["AWS_LAMBDA_FUNCTION_NAME"] == "test-ingest"
    assert spec.environment["PREFIX"] == "job"


def test_a_second_cloud_in_the_same_process_starts_empty(tmp_path):
    (tmp_path / "template.yaml").write_text(
        "Resources:\n  Data: {Type: AWS::S3::Bucket}\n"
        "  Table:\n    Type: AWS::DynamoDB::Table\n    Properties:\n"
        "      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]\n"
        "      KeySchema: [{AttributeName: id, KeyType: HASH}]\n"
    )
    config = LocalCloudConfig(
        template=tmp_path / "template.yaml",
        state_dir=tmp_path / "state",
        stack_name="again",
        start_sagemaker=False,
    )
    with LocalCloud(config) as first:
        first.client("s3").put_object(Bucket="again-data", Key="left-over", Body=b"x")
    with LocalCloud(config) as second:  # would fail with "table already exists" without a reset
        assert second.client("s3").list_objects_v2(Bucket="again-data").get("KeyCount") == 0

"""`python -m cli redrive`: the failed-events queue (moto SQS) replayed through the same functions."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from fn_support import ENV, REGION, build_zip, layout_members, s3_event

from cli.redrive import lambda_invoker, redrive

BUCKET = ENV["DATASET_BUCKET"]
INGEST_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:stack-IngestFunction-abc"
TUNING_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:stack-TuningCompletedFunction-abc"


def destination_record(function_arn: str, event: Any) -> str:
    """What Lambda sends to an on-failure destination after the last retry (AWS's documented shape)."""
    return json.dumps(
        {
            "version": "1.0",
            "timestamp": "2026-11-29T09:00:00.000Z",
            "requestContext": {
                "requestId": "11111111-2222-3333-4444-555555555555",
                "functionArn": f"{function_arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 2,
            },
            "requestPayload": event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {"errorType": "ReadTimeoutError", "errorMessage": "Read timeout"},
        }
    )


@pytest.fixture
def queue(aws) -> str:
    return aws.sqs.create_queue(QueueName="failed-events")["QueueUrl"]


def test_a_failed_ingest_is_replayed_through_the_function_and_deleted(aws, queue, lambda_context) -> None:
    from pipeline.handlers import ingest

    key = "uploads/late.zip"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=build_zip(layout_members()))
    event = s3_event("ingest.json", BUCKET, key)
    aws.sqs.send_message(QueueUrl=queue, MessageBody=destination_record(INGEST_ARN, event))
    calls: list[str] = []

    def run_in_process(function_arn: str, payload: Any) -> tuple[bool, Any]:
        calls.append(function_arn)
        return True, ingest.handler(payload, lambda_context)

    [outcome] = redrive(aws.sqs, queue, run_in_process)
    assert calls == [f"{INGEST_ARN}:$LATEST"]
    assert outcome.action == "replayed" and outcome.detail == "accepted"
    report_key = f"datasets/{outcome_dataset(aws)}/manifest.json"
    assert aws.keys(BUCKET, report_key) == [report_key]
    assert aws.sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0).get("Messages") is None


def outcome_dataset(aws) -> str:
    [manifest] = [key for key in aws.keys(BUCKET, "datasets/") if key.endswith("manifest.json")]
    return manifest.split("/")[1]


def test_a_replay_that_fails_again_stays_in_the_queue(aws, queue) -> None:
    tuning_event = {"detail-type": "SageMaker HyperParameter Tuning Job State Change", "detail": {}}
    aws.sqs.send_message(
        QueueUrl=queue,
        MessageBody=json.dumps(tuning_event),
        MessageAttributes={"TARGET_ARN": {"DataType": "String", "StringValue": TUNING_ARN}},
    )
    aws.sqs.send_message(QueueUrl=queue, MessageBody="not json at all")

    def still_failing(function_arn: str, payload: Any) -> tuple[bool, Any]:
        assert payload == tuning_event
        return False, {"errorType": "ThrottlingException", "errorMessage": "Rate exceeded"}

    outcomes = sorted(redrive(aws.sqs, queue, still_failing), key=lambda outcome: outcome.action)
    assert [(o.action, o.function) for o in outcomes] == [("failed", TUNING_ARN), ("skipped", None)]
    assert outcomes[0].detail == "ThrottlingException: Rate exceeded"
    # Both messages are still there (invisible until the visibility timeout ends).
    attributes = aws.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "2"


def test_lambda_invoker_reads_function_errors() -> None:
    import boto3

    client = boto3.client("lambda", region_name=REGION)
    stubber = Stubber(client)

    def payload(document: Any) -> StreamingBody:
        raw = json.dumps(document).encode()
        return StreamingBody(io.BytesIO(raw), len(raw))

    request = {"FunctionName": INGEST_ARN, "InvocationType": "RequestResponse", "Payload": b'{"a": 1}'}
    stubber.add_response("invoke", {"StatusCode": 200, "Payload": payload([{"status": "accepted"}])}, request)
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": payload({"errorType": "Boom"})},
        request,
    )
    with stubber:
        invoke = lambda_invoker(client)
        assert invoke(INGEST_ARN, {"a": 1}) == (True, [{"status": "accepted"}])
        assert invoke(INGEST_ARN, {"a": 1}) == (False, {"errorType": "Boom"})
    stubber.assert_no_pending_responses()


def test_redrive_command_is_wired(capsys) -> None:
    from cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(["redrive", "--help"])
    assert exited.value.code == 0 and "--queue-url" in capsys.readouterr().out

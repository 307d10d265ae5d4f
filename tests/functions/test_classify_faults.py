"""Classify under injected endpoint faults (throttling, 5xx, timeouts, a model error): transient errors are
retried with capped backoff inside the invocation, then raised for Lambda; only permanent ones write
`failed`."""

from __future__ import annotations

import io
import json
import time
from datetime import datetime

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from fn_support import ENV, s3_event, tiny_jpeg

from pipeline.classify import EndpointBusyError, result_key

BUCKET = ENV["INFERENCE_BUCKET"]
ENDPOINT = ENV["ENDPOINT_NAME"]
PREDICTIONS = {"predictions": [{"label": "Akita", "class_index": 3, "probability": 0.9}]}
INVOKE = {"EndpointName": ENDPOINT, "Accept": "application/json"}


def body() -> StreamingBody:
    raw = json.dumps(PREDICTIONS).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


@pytest.fixture
def classify(aws):
    from pipeline.handlers import classify

    return classify


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Backoff delays asked for (recorded, not slept)."""
    delays: list[float] = []
    monkeypatch.setattr(time, "sleep", delays.append)
    return delays


def put_image(aws, key: str = "input/dog.jpg", data: bytes | None = None) -> str:
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=data if data is not None else tiny_jpeg())
    return key


def results(aws) -> list[str]:
    return aws.keys(BUCKET, "results/")


def model_error(stubber: Stubber, status: int) -> None:
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message=f"Received server error ({status}) from primary",
        http_status_code=424,
        modeled_fields={"OriginalStatusCode": status, "OriginalMessage": "boom"},
    )


def endpoint_status(stubber: Stubber, status: str) -> None:
    stubber.add_response(
        "describe_endpoint",
        {
            "EndpointName": ENDPOINT,
            "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
            "EndpointConfigName": "cfg",
            "EndpointStatus": status,
            "CreationTime": datetime(2026, 11, 29),
            "LastModifiedTime": datetime(2026, 11, 29),
        },
        {"EndpointName": ENDPOINT},
    )


class FailsThenAnswers:
    """A Predictor (the adapter Protocol) that raises the given errors, then answers."""

    name = ENDPOINT

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def predict(self, body: bytes, content_type: str) -> dict:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return PREDICTIONS

    def status(self) -> str:
        return "InService"


def classifier_with(predictor: FailsThenAnswers, delays: list[float]):
    from pipeline.adapters.s3 import S3Store
    from pipeline.classify import Classifier
    from pipeline.settings import Settings

    return Classifier(Settings.from_env(), S3Store(), predictor, lambda: 60_000, delays.append)


@pytest.mark.parametrize(
    "error",
    [
        ClientError(
            {"Error": {"Code": "ThrottlingException"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "Invoke"
        ),
        ClientError(
            {"Error": {"Code": "ServiceUnavailable"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "Invoke"
        ),
        ReadTimeoutError(endpoint_url=f"https://runtime.sagemaker/endpoints/{ENDPOINT}/invocations"),
    ],
    ids=["throttling", "service-unavailable", "read-timeout"],
)
def test_transient_errors_are_retried_through_the_predictor_protocol(aws, error) -> None:
    key = put_image(aws)
    delays: list[float] = []
    predictor = FailsThenAnswers(error, error)
    assert classifier_with(predictor, delays).classify_object(BUCKET, key)["status"] == "ok"
    assert predictor.calls == 3 and delays == [1.0, 2.0]


def test_a_model_5xx_is_retried_with_backoff_then_raised_without_a_result(
    classify, aws, runtime, sleeps, lambda_context
):
    key = put_image(aws)
    for _ in range(5):
        model_error(runtime, 503)
    with pytest.raises(EndpointBusyError, match="503"):
        classify.handler(s3_event("classify.json", BUCKET, key), lambda_context)
    assert sleeps == [1.0, 2.0, 4.0, 8.0]  # exponential, within the attempt budget
    assert results(aws) == []  # nothing recorded: Lambda retries the event


def test_a_model_4xx_is_a_permanent_failed_result(classify, aws, runtime, sleeps, lambda_context):
    key = put_image(aws)
    model_error(runtime, 400)
    record = classify.handler({"bucket": BUCKET, "key": key}, lambda_context)
    assert record["status"] == "failed" and record["error"]["kind"] == "model-error" and sleeps == []
    assert results(aws) == [result_key(key)]


def test_an_updating_endpoint_is_waited_for(classify, aws, runtime, sagemaker, sleeps, lambda_context):
    key = put_image(aws)
    runtime.add_client_error(
        "invoke_endpoint",
        "ValidationException",
        f"Endpoint {ENDPOINT} is not in service",
        http_status_code=400,
    )
    endpoint_status(sagemaker, "Updating")
    runtime.add_response("invoke_endpoint", {"Body": body()})
    assert classify.handler({"bucket": BUCKET, "key": key}, lambda_context)["status"] == "ok"
    assert sleeps == [1.0]


def test_a_validation_error_on_an_in_service_endpoint_is_permanent(
    classify, aws, runtime, sagemaker, sleeps, lambda_context
):
    key = put_image(aws)
    runtime.add_client_error(
        "invoke_endpoint", "ValidationException", "bad content type", http_status_code=400
    )
    endpoint_status(sagemaker, "InService")
    record = classify.handler({"bucket": BUCKET, "key": key}, lambda_context)
    assert record["error"]["kind"] == "bad-request" and sleeps == []


def test_no_backoff_past_the_invocations_remaining_time(
    classify, aws, runtime, sleeps, lambda_context, monkeypatch
):
    key = put_image(aws)
    model_error(runtime, 500)
    monkeypatch.setattr(lambda_context, "get_remaining_time_in_millis", lambda: 10_000)
    with pytest.raises(EndpointBusyError):
        classify.handler({"bucket": BUCKET, "key": key}, lambda_context)
    assert sleeps == [] and results(aws) == []


def test_uppercase_suffixes_are_classified_and_other_keys_ignored(
    classify, aws, runtime, sleeps, lambda_context
):
    upper = put_image(aws, "input/DOG.JPG")
    put_image(aws, "input/notes.txt", b"text")
    runtime.add_response("invoke_endpoint", {"Body": body()})
    event = s3_event("classify.json", BUCKET, upper)
    other = json.loads(json.dumps(event["Records"][0]))
    other["s3"]["object"]["key"] = "input/notes.txt"
    event["Records"].append(other)
    [record] = classify.handler(event, lambda_context)
    assert record["key"] == upper and record["status"] == "ok"
    assert results(aws) == [result_key(upper)]


def test_the_payload_limit_follows_the_endpoint_mode(aws, runtime) -> None:
    from pipeline.adapters.s3 import S3Store
    from pipeline.classify import Classifier
    from pipeline.settings import Settings

    # 4.5 MB: under the 6 MB instance limit, over the 4 MB serverless one.
    image = tiny_jpeg()[:-2] + bytes(4_500_000) + b"\xff\xd9"
    settings = Settings.from_env().model_copy(update={"endpoint_mode": "instance"})
    runtime.add_response(
        "invoke_endpoint", {"Body": body()}, {**INVOKE, "ContentType": "image/jpeg", "Body": image}
    )
    instance = Classifier(settings, S3Store()).predict(image)
    assert instance["predictions"][0]["label"] == "Akita" and "downscaled" not in instance
    serverless = Classifier(settings.model_copy(update={"endpoint_mode": "serverless"}), S3Store())
    runtime.add_response("invoke_endpoint", {"Body": body()})
    record = serverless.predict(image)["downscaled"]
    assert record["original"]["bytes"] == len(image) and record["sent"]["bytes"] < 4_000_000
    assert "4000000" in record["reason"]


def test_other_client_errors_propagate(aws, runtime) -> None:
    from pipeline.adapters.s3 import S3Store
    from pipeline.classify import Classifier
    from pipeline.settings import Settings

    runtime.add_client_error("invoke_endpoint", "AccessDeniedException", "no", http_status_code=403)
    with pytest.raises(ClientError, match="AccessDenied"):
        Classifier(Settings.from_env(), S3Store(), sleep=lambda _: None).predict(tiny_jpeg())


def test_an_image_over_the_pixel_limit_is_refused_without_an_endpoint_call(
    classify, aws, runtime, lambda_context
):
    from test_ingest_limits import png_header_only_image

    key = put_image(aws, "input/huge.png", png_header_only_image(20000, 20000))
    record = classify.handler({"bucket": BUCKET, "key": key}, lambda_context)  # no invoke stubbed
    assert record["status"] == "failed" and record["error"]["kind"] == "not-an-image"
    assert "20000x20000" in record["error"]["message"]

"""Classify handler: moto S3, Stubber for the endpoint (moto has no real model behind invoke_endpoint)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from botocore.response import StreamingBody
from fn_support import ENV, load_event, s3_event, tiny_jpeg

from pipeline.classify import ClassifyError, result_key


@pytest.fixture
def classify(aws):
    """The handler module, imported once the test environment is set (it reads settings on import)."""
    from pipeline.handlers import classify

    return classify


BUCKET = ENV["INFERENCE_BUCKET"]
ENDPOINT = ENV["ENDPOINT_NAME"]
ENDPOINT_RESPONSE = {
    "label": "Akita",
    "class_index": 3,
    "probability": 0.7,
    "predictions": [
        {"label": "Akita", "class_index": 3, "probability": 0.7},
        {"label": "Beagle", "class_index": 9, "probability": 0.2},
        {"label": "Boxer", "class_index": 20, "probability": 0.05},
        {"label": "Briard", "class_index": 25, "probability": 0.03},
        {"label": "Collie", "class_index": 40, "probability": 0.01},
        {"label": "Dalmatian", "class_index": 57, "probability": 0.01},
    ],
}


def body(document: dict) -> StreamingBody:
    raw = json.dumps(document).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def result(aws, key: str) -> dict:
    return json.loads(aws.s3.get_object(Bucket=BUCKET, Key=result_key(key))["Body"].read())


def test_s3_image_gets_top_k_json_next_to_it(classify, aws, runtime, lambda_context):
    key = "input/my dog #1.jpg"
    image = tiny_jpeg()
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=image)
    runtime.add_response(
        "invoke_endpoint",
        {"Body": body(ENDPOINT_RESPONSE), "ContentType": "application/json"},
        {"EndpointName": ENDPOINT, "ContentType": "image/jpeg", "Accept": "application/json", "Body": image},
    )
    [record] = classify.handler(s3_event("classify.json", BUCKET, key), lambda_context)
    assert result_key(key) == "results/my dog #1.jpg.json"
    written = result(aws, key)
    assert written["status"] == "ok" and written == {k: v for k, v in record.items() if k != "result_key"}
    assert [p["label"] for p in written["predictions"]] == ["Akita", "Beagle", "Boxer", "Briard", "Collie"]


def test_event_file_is_an_s3_put_under_input():
    record = load_event("classify.json")["Records"][0]["s3"]["object"]
    assert record["key"].startswith("input/") and "+" in record["key"]


def test_not_an_image_writes_the_failure_where_the_result_would_be(classify, aws, runtime, lambda_context):
    key = "input/notes.png"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"hello, I am text")
    classify.handler({"bucket": BUCKET, "key": key}, lambda_context)  # no endpoint call queued
    assert result(aws, key)["error"]["kind"] == "not-an-image"


def test_an_image_over_classify_max_image_bytes_is_refused_before_download(
    aws, runtime, lambda_context, monkeypatch
):
    monkeypatch.setenv("CLASSIFY_MAX_IMAGE_BYTES", "1000000")  # read by the handler's init below
    from pipeline.handlers import classify

    key = "input/huge.jpg"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=tiny_jpeg()[:-2] + bytes(1_100_000) + b"\xff\xd9")
    record = classify.handler({"bucket": BUCKET, "key": key}, lambda_context)
    assert record["status"] == "failed" and record["error"]["kind"] == "too-large"
    assert "CLASSIFY_MAX_IMAGE_BYTES" in record["error"]["message"]
    assert result(aws, key)["error"]["kind"] == "too-large"


def test_base64_image_returns_the_prediction(classify, aws, runtime, lambda_context):
    image = tiny_jpeg(3)
    runtime.add_response("invoke_endpoint", {"Body": body(ENDPOINT_RESPONSE)})
    response = classify.handler({"image": base64.b64encode(image).decode()}, lambda_context)
    assert response["status"] == "ok" and response["predictions"][0] == {
        "label": "Akita",
        "probability": 0.7,
        "class_index": 3,
    }


def test_bad_requests_raise_clear_errors(classify, aws, runtime, lambda_context):
    with pytest.raises(ClassifyError, match="not valid base64"):
        classify.handler({"image": "***"}, lambda_context)
    with pytest.raises(ClassifyError, match="expected an S3 event"):
        classify.handler({"hello": "world"}, lambda_context)

"""Classify an image with the endpoint and write the prediction as JSON.

Inputs: an image under ``input/`` of the inference bucket (S3 event or ``{"bucket", "key"}``), or
``{"image": <base64>}``. For an S3 image the result, or the failure, is written to
``results/<key below input/>.json`` (``input/a/b.jpg`` -> ``results/a/b.jpg.json``).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pipeline.adapters.aws import client, error_code
from pipeline.adapters.s3 import ObjectTooLargeError, S3Store
from pipeline.ingest.images import image_problem, sniff_content_type

if TYPE_CHECKING:  # pydantic is imported by the first call, not at import (cold start)
    from pipeline.settings import Settings

INPUT_PREFIX = "input/"
RESULTS_PREFIX = "results/"


class ClassifyError(ValueError):
    """The image cannot be classified; ``kind`` says why (too-large, not-an-image, endpoint...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def result_key(key: str) -> str:
    relative = key[len(INPUT_PREFIX) :] if key.startswith(INPUT_PREFIX) else key
    return f"{RESULTS_PREFIX}{relative}.json"


def top_k(response: Any, k: int) -> list[dict[str, Any]]:
    """Top-k [{label, probability, class_index?}] from the endpoint's JSON (inference.py's output_fn)."""
    predictions = response.get("predictions") if isinstance(response, dict) else response
    if not isinstance(predictions, list) or not all(isinstance(item, dict) for item in predictions):
        raise ClassifyError("bad-response", f"unexpected endpoint response: {str(response)[:200]}")
    ranked = sorted(predictions, key=lambda item: float(item.get("probability", 0.0)), reverse=True)
    return [
        {key: item[key] for key in ("label", "probability", "class_index") if key in item}
        for item in ranked[:k]
    ]


class Classifier:
    def __init__(
        self,
        settings: Settings,
        store: S3Store,
        runtime_client: Any | None = None,
        sagemaker_client: Any | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.runtime = runtime_client or client("sagemaker-runtime")
        self.sagemaker = sagemaker_client or client("sagemaker")

    def check_image(self, data: bytes) -> str:
        if len(data) > self.settings.classify_max_image_bytes:
            raise ClassifyError(
                "too-large",
                f"image is {len(data)} bytes, the limit is {self.settings.classify_max_image_bytes}",
            )
        problem = image_problem(data)
        if problem:
            raise ClassifyError("not-an-image", problem)
        return sniff_content_type(data) or "application/octet-stream"

    def predict(self, data: bytes) -> dict[str, Any]:
        content_type = self.check_image(data)
        try:
            response = self.runtime.invoke_endpoint(
                EndpointName=self.settings.endpoint_name,
                ContentType=content_type,
                Accept="application/json",
                Body=data,
            )
        except ClientError as error:
            raise self._endpoint_error(error) from error
        body = json.loads(response["Body"].read())
        return {
            "endpoint": self.settings.endpoint_name,
            "predictions": top_k(body, self.settings.classify_top_k),
        }

    def _endpoint_error(self, error: ClientError) -> ClassifyError:
        code = error_code(error)
        if code == "ModelError":
            return ClassifyError("model-error", f"the model failed on this image: {error}")
        try:
            status = self.sagemaker.describe_endpoint(EndpointName=self.settings.endpoint_name)[
                "EndpointStatus"
            ]
        except ClientError:
            status = "missing"
        if status != "InService":
            return ClassifyError(
                "endpoint-not-in-service", f"endpoint {self.settings.endpoint_name} is {status}: {error}"
            )
        return ClassifyError("endpoint-error", f"{code}: {error}")

    def classify_object(self, bucket: str, key: str) -> dict[str, Any]:
        """Classify s3://bucket/key and write the result (or the failure) next to it under results/."""
        record: dict[str, Any] = {"bucket": bucket, "key": key, "at": datetime.now(UTC).isoformat()}
        try:
            data = self.store.get_bytes(bucket, key, max_bytes=self.settings.classify_max_image_bytes)
            record.update(status="ok", **self.predict(data))
        except ObjectTooLargeError as error:
            record.update(status="failed", error={"kind": "too-large", "message": str(error)})
        except ClassifyError as error:
            record.update(status="failed", error={"kind": error.kind, "message": str(error)})
        self.store.put_json(bucket, result_key(key), record)
        record["result_key"] = result_key(key)
        return record

    def classify_base64(self, encoded: str) -> dict[str, Any]:
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as error:
            raise ClassifyError("bad-request", f"image is not valid base64: {error}") from error
        return {"status": "ok", **self.predict(data)}

"""Classify an image with the endpoint and write the prediction as JSON.

Inputs: an image under ``input/`` of the inference bucket (S3 event or ``{"bucket", "key"}``), or
``{"image": <base64>}``. For an S3 image the result, or the failure, is written to
``results/<key below input/>.json`` (``input/a/b.jpg`` -> ``results/a/b.jpg.json``).

An image over the endpoint's payload limit is downscaled first (pipeline.image_downscale) and the
result records it; an image under the limit is sent as it is, byte for byte.

Errors (docs/contracts.md, "Error taxonomy"): a bad image, one that cannot be brought under the
payload limit, one over CLASSIFY_MAX_IMAGE_BYTES, or one the model refuses with a 4xx is permanent
and written as a ``failed`` result. Throttling, 5xx, timeouts and an endpoint that is not InService
are transient: retried here with capped exponential backoff while the invocation has time, then
raised so Lambda retries the event.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from pipeline.adapters.aws import error_code
from pipeline.adapters.endpoint import Predictor, SageMakerEndpoint
from pipeline.adapters.s3 import ObjectTooLargeError, S3Store
from pipeline.adapters.training_layer import contract_module
from pipeline.errors import TransientError, describe, is_transient
from pipeline.image_downscale import Downscaled, DownscaleError, fit_under
from pipeline.ingest.image_headers import image_problem, sniff_content_type
from pipeline.powertools import logger
from pipeline.settings import ClassifySettings

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


# Largest request body InvokeEndpoint accepts, by endpoint mode: "The maximum request and response
# payload size for serverless invocations is 4 MB" (docs.aws.amazon.com/sagemaker/latest/dg/
# serverless-endpoints-invoke.html); real-time: InvokeEndpoint's Body is at most 6291456 bytes (6 MiB,
# botocore's sagemaker-runtime model). Decimal MB, so we stay under whichever MB AWS means.
PAYLOAD_LIMITS = {"serverless": 4_000_000, "instance": 6_000_000}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# In-invocation retries of transient endpoint errors: exponential, capped, and never past the
# point where the invocation could not finish one more call (then Lambda's own retries take over).
RETRY_ATTEMPTS = 5
RETRY_BASE_S = 1.0
RETRY_CAP_S = 16.0
RESERVE_MS = 15_000  # one InvokeEndpoint call plus writing the result


class EndpointBusyError(TransientError):
    """The endpoint is not InService (creating, updating, absent) or failed transiently; retry later."""


def is_image_key(key: str) -> bool:
    """An image classify handles (.jpg/.jpeg/.png in any case; the S3 filter cannot ignore case)."""
    return key.lower().endswith(IMAGE_SUFFIXES)


def _model_status(error: ClientError) -> int:
    """The status code the model container answered with (ModelError's OriginalStatusCode)."""
    return int(error.response.get("OriginalStatusCode") or 0)


class Classifier:
    def __init__(
        self,
        settings: ClassifySettings,
        store: S3Store,
        predictor: Predictor | None = None,
        remaining_ms: Callable[[], int] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.predictor: Predictor = predictor or SageMakerEndpoint(settings.endpoint_name)
        self.remaining_ms = remaining_ms or (lambda: 10**9)
        self.sleep = sleep or time.sleep

    @property
    def payload_limit(self) -> int:
        return PAYLOAD_LIMITS[self.settings.endpoint_mode]

    def prepare(self, data: bytes) -> tuple[bytes, str, Downscaled | None]:
        """(body to send, its content type, the downscale if there was one); ClassifyError if none."""
        # The same pixel limit as ingest, training and serving (dogclf.contract): refused here, from
        # the header, before any decoding and without a round trip to the endpoint.
        max_pixels = contract_module(self.settings.training_code_dir).MAX_IMAGE_PIXELS
        problem = image_problem(data, max_pixels=max_pixels)
        if problem:
            raise ClassifyError("not-an-image", problem)
        if len(data) <= self.payload_limit:
            return data, sniff_content_type(data) or "application/octet-stream", None
        # Pillow is only needed (and only loaded, inside fit_under) for an image over the limit.
        try:
            downscaled = fit_under(
                data,
                self.payload_limit,
                image_size=self.settings.image_size,
                max_pixels=max_pixels,
                training_code_dir=self.settings.training_code_dir,
            )
        except DownscaleError as error:
            mode = self.settings.endpoint_mode
            raise ClassifyError(error.kind, f"{error} ({mode} endpoint)") from error
        logger.info("image over the payload limit, downscaled", extra=downscaled.record())
        return downscaled.data, downscaled.content_type, downscaled

    def predict(self, data: bytes) -> dict[str, Any]:
        body, content_type, downscaled = self.prepare(data)
        answer = self._invoke_with_retries(body, content_type)
        return {
            "endpoint": self.settings.endpoint_name,
            "predictions": top_k(answer, self.settings.classify_top_k),
            **({"downscaled": downscaled.record()} if downscaled else {}),
        }

    def _invoke_with_retries(self, data: bytes, content_type: str) -> Any:
        for attempt in range(RETRY_ATTEMPTS):
            try:
                return self.predictor.predict(data, content_type)
            except ClientError as error:
                transient = self._classify_error(error)  # raises ClassifyError when permanent
            except Exception as error:
                if not is_transient(error):
                    raise
                transient = error
            delay = min(RETRY_CAP_S, RETRY_BASE_S * 2**attempt)
            last = attempt == RETRY_ATTEMPTS - 1
            if last or self.remaining_ms() - delay * 1000 < RESERVE_MS:
                logger.warning(
                    "endpoint still failing, leaving it to Lambda's retry", extra=describe(transient)
                )
                raise transient
            logger.info("transient endpoint error, retrying", extra={**describe(transient), "delay_s": delay})
            self.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _classify_error(self, error: ClientError) -> BaseException:
        """The transient error to retry, or raises the permanent ClassifyError to record."""
        code = error_code(error)
        if code == "ModelError":
            status = _model_status(error)
            if status >= 500 or status == 429:
                return EndpointBusyError(f"the model answered {status}: {error}")
            raise ClassifyError(
                "model-error", f"the model refused this image ({status or 'no status'}): {error}"
            )
        if is_transient(error):
            return error
        if code == "ValidationException":
            endpoint_status = self.predictor.status()
            if endpoint_status != "InService":
                return EndpointBusyError(f"endpoint {self.predictor.name} is {endpoint_status}: {error}")
            raise ClassifyError("bad-request", f"the endpoint refused the request: {error}")
        raise error

    def classify_object(self, bucket: str, key: str) -> dict[str, Any]:
        """Classify s3://bucket/key and write the result (or the failure) next to it under results/."""
        record: dict[str, Any] = {"bucket": bucket, "key": key, "at": datetime.now(UTC).isoformat()}
        # Only permanent errors are caught here; transient ones propagate and nothing is written.
        try:
            # Larger than the payload limit is fine (downscaled); larger than this is not even read.
            data = self.store.get_bytes(bucket, key, max_bytes=self.settings.classify_max_image_bytes)
            record.update(status="ok", **self.predict(data))
        except ObjectTooLargeError as error:
            message = f"{error} (CLASSIFY_MAX_IMAGE_BYTES: the largest image this function downscales)"
            record.update(status="failed", error={"kind": "too-large", "message": message})
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

"""SageMaker PyTorch serving handlers: model_fn, input_fn, predict_fn, output_fn.

Imports only what the PyTorch inference image has (torch, torchvision, PIL, the sagemaker-inference
toolkit, stdlib) plus the dogclf package shipped next to this file in model.tar.gz's code/.

Request errors are the toolkit's own error type (``sagemaker_inference.errors.
GenericInferenceToolkitError``, which carries the HTTP status) when the toolkit is importable, and
plain ``ValueError`` subclasses with the same ``status_code`` otherwise:
- InvalidInputError (400): not an image, truncated, a decompression bomb, bad JSON or base64, empty;
- UnsupportedContentTypeError (415): a request content type this model does not read;
- UnsupportedAcceptError (406): no acceptable response type in Accept.

Served by the toolkit (the inference image, or the local endpoint, which runs the same stack), an
error raised out of these functions would become the toolkit's response: the right status, but the
message followed by a Python traceback as the body. So when the toolkit passes its request context
(``input_fn``/``output_fn`` take an optional ``context``), a request error is answered instead:
the context gets the status, and the body is a short JSON ``{"error": ..., "message": ...}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from http import HTTPStatus
from pathlib import Path
from typing import Any

import torch

from dogclf.contract import MAX_IMAGE_PIXELS, MAX_IMAGE_PIXELS_ENV
from dogclf.images import InvalidImageError, decode_image
from dogclf.model import build_for_inference
from dogclf.presets import eval_preset

try:  # the inference image's toolkit; absent where only the model code runs (training, tests)
    from sagemaker_inference import content_types as _toolkit_content_types
    from sagemaker_inference.errors import GenericInferenceToolkitError as _ToolkitError
except ImportError:
    _toolkit_content_types = None

    class _ToolkitError(Exception):  # type: ignore[no-redef]
        """Stand-in with the toolkit error's constructor and attributes."""

        def __init__(self, status_code: int, message: str | None = None, phrase: str | None = None) -> None:
            self.status_code = status_code
            self.message = message or "Invalid Request"
            self.phrase = phrase or self.message
            super().__init__(status_code, self.message, self.phrase)


if _toolkit_content_types is not None:
    # The toolkit's Transformer UTF-8-decodes JSON and CSV bodies before input_fn runs, and turns a
    # body that is not UTF-8 into a 500 with a traceback. input_fn below reads bytes for every
    # content type and answers such a body with a 400, so the Transformer must hand bytes over.
    # The list is only read by the Transformer and the default handlers this module replaces.
    _toolkit_content_types.UTF8_TYPES = []

IMAGE_CONTENT_TYPES = ("image/jpeg", "image/png", "application/x-image")
JSON_CONTENT_TYPE = "application/json"
ACCEPTABLE_RANGES = (JSON_CONTENT_TYPE, "application/*", "*/*")  # what can stand for our JSON answer
DEFAULT_TOP_K = 3
# The loaded model's preset decode size (model_fn sets it): the toolkit's input_fn gets no model, and
# a worker process serves one model, so requests decode at the scale training decoded (images.py).
_decode_size: int | None = None


class InferenceError(_ToolkitError, ValueError):
    """A request the model cannot answer; ``status_code`` is the HTTP status to send."""

    STATUS = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str) -> None:
        super().__init__(int(self.STATUS), message, self.STATUS.phrase)

    def __str__(self) -> str:
        return self.message


class InvalidInputError(InferenceError):
    """The request body cannot be turned into an image (HTTP 400)."""

    STATUS = HTTPStatus.BAD_REQUEST


class UnsupportedContentTypeError(InferenceError):
    """The request's content type is not one this model reads (HTTP 415)."""

    STATUS = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class UnsupportedAcceptError(InferenceError):
    """No media type in the request's Accept header is one this model writes (HTTP 406)."""

    STATUS = HTTPStatus.NOT_ACCEPTABLE


class Rejected:
    """A request already answered with an error status; predict_fn and output_fn pass it through."""

    def __init__(self, error: InferenceError) -> None:
        self.error = error

    def body(self) -> str:
        return json.dumps({"error": type(self.error).__name__, "message": self.error.message})


def _reject(error: InferenceError, context: Any) -> Rejected:
    # TorchServe's per-request status; the Transformer keeps it as long as nothing raises.
    context.set_response_status(code=error.status_code, phrase=error.phrase)
    return Rejected(error)


def max_image_pixels() -> int:
    """The pixel limit: ``$DOGCLF_MAX_IMAGE_PIXELS`` if set (a deployment setting), else the contract's."""
    raw = os.environ.get(MAX_IMAGE_PIXELS_ENV)
    if raw is None:
        return MAX_IMAGE_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise RuntimeError(f"{MAX_IMAGE_PIXELS_ENV}={raw!r} must be a positive integer")
    return value


def model_fn(model_dir: str) -> dict[str, Any]:
    """Load model.pth, classes.json and model_meta.json written by training."""
    max_image_pixels()  # a bad DOGCLF_MAX_IMAGE_PIXELS fails the model load, not every request
    root = Path(model_dir)
    classes = json.loads((root / "classes.json").read_text())
    meta = json.loads((root / "model_meta.json").read_text())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_for_inference(len(classes))
    model.load_state_dict(torch.load(root / "model.pth", map_location="cpu", weights_only=True))
    model.to(device).eval()
    transform = eval_preset(int(meta["image_size"]))
    global _decode_size
    _decode_size = transform.decode_size
    return {"model": model, "classes": classes, "transform": transform, "device": device}


def _base_content_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def decode_request(
    request_body: bytes | bytearray | str | None, content_type: str | None, min_size: int | None = None
) -> dict[str, Any]:
    """Image bytes, or JSON ``{"image": "<base64>", "top_k": 3}`` -> {"image": PIL image, "top_k": int}.

    ``min_size``: the eval preset's decode size (a JPEG is decoded no larger than it needs).
    """
    kind = _base_content_type(content_type)
    if isinstance(request_body, str):  # a caller that decoded the body already (latin-1 keeps bytes)
        raw = request_body.encode("utf-8" if kind == JSON_CONTENT_TYPE else "latin-1")
    else:
        raw = bytes(request_body or b"")
    top_k = DEFAULT_TOP_K
    if kind in IMAGE_CONTENT_TYPES:
        data = raw
    elif kind == JSON_CONTENT_TYPE:
        if not raw:
            raise InvalidInputError("empty request body")
        try:
            payload = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise InvalidInputError(f"JSON body is not UTF-8: {error}") from error
        except json.JSONDecodeError as error:
            raise InvalidInputError(f"malformed JSON request: {error}") from error
        encoded = payload.get("image") if isinstance(payload, dict) else None
        if not isinstance(encoded, str):
            raise InvalidInputError('JSON body must be an object with a base64 string field "image"')
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidInputError(f'malformed JSON request: "image" is not base64 ({error})') from error
        raw_top_k = payload.get("top_k", DEFAULT_TOP_K)
        if isinstance(raw_top_k, bool) or not isinstance(raw_top_k, int):
            raise InvalidInputError(f'malformed JSON request: "top_k" must be an integer, got {raw_top_k!r}')
        top_k = raw_top_k
    else:
        raise UnsupportedContentTypeError(
            f"unsupported content type {content_type!r}; "
            f"use one of {', '.join((*IMAGE_CONTENT_TYPES, JSON_CONTENT_TYPE))}"
        )
    if not data:
        raise InvalidInputError("empty request body")
    try:
        image = decode_image(data, max_pixels=max_image_pixels(), min_size=min_size)
    except InvalidImageError as error:
        raise InvalidInputError(str(error)) from error
    return {"image": image, "top_k": max(1, top_k)}


def input_fn(
    request_body: bytes | bytearray | str | None, content_type: str | None = "image/jpeg", context: Any = None
) -> dict[str, Any] | Rejected:
    """decode_request; under the toolkit (context given), a request error becomes its HTTP answer."""
    try:
        return decode_request(request_body, content_type, _decode_size)
    except InferenceError as error:
        if context is None:
            raise
        return _reject(error, context)


@torch.no_grad()
def predict_fn(
    input_data: dict[str, Any] | Rejected, model: dict[str, Any]
) -> list[dict[str, Any]] | Rejected:
    """Eval preset (same as training) -> softmax -> top k as [{label, class_index, probability}]."""
    if isinstance(input_data, Rejected):
        return input_data
    tensor = model["transform"](input_data["image"]).unsqueeze(0).to(model["device"])
    probabilities = torch.softmax(model["model"](tensor).float(), dim=1)[0]
    top_k = min(int(input_data.get("top_k", DEFAULT_TOP_K)), len(model["classes"]))
    values, indices = probabilities.topk(top_k)
    return [
        {"label": model["classes"][index], "class_index": int(index), "probability": float(value)}
        for value, index in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def negotiate(accept: str | None) -> str:
    """The response type for an Accept header (several types, q-values): JSON, or 406."""
    if not accept or not accept.strip():
        return JSON_CONTENT_TYPE
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0  # a malformed q-value accepts nothing
        if quality > 0 and media.lower() in ACCEPTABLE_RANGES:
            return JSON_CONTENT_TYPE
    raise UnsupportedAcceptError(
        f"unsupported accept type {accept!r}; this model answers {JSON_CONTENT_TYPE}"
    )


def output_fn(
    prediction: list[dict[str, Any]] | Rejected, accept: str | None = JSON_CONTENT_TYPE, context: Any = None
) -> tuple[str, str]:
    """(body, content type); body: {"predictions": [...top k...], "label", "class_index", "probability"}.

    The content type is returned with the body because the toolkit would otherwise echo the Accept
    header, which may list several types.
    """
    if isinstance(prediction, Rejected):
        return prediction.body(), JSON_CONTENT_TYPE
    try:
        content_type = negotiate(accept)
    except UnsupportedAcceptError as error:
        if context is None:
            raise
        return _reject(error, context).body(), JSON_CONTENT_TYPE
    best = prediction[0]
    return json.dumps({**best, "predictions": prediction}), content_type

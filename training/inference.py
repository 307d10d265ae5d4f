"""SageMaker PyTorch serving handlers: model_fn, input_fn, predict_fn, output_fn.

Imports only what the serving container has (torch, torchvision, PIL, stdlib) plus the dogclf
package shipped next to this file in model.tar.gz's code/.

Errors a model server should map to HTTP 4xx:
- UnsupportedContentTypeError (415): content type or accept type not handled.
- InvalidInputError (400): bytes that are not an image, a decompression bomb, malformed JSON.
Both are ValueError subclasses.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # dogclf/ is shipped next to this file

import torch

from dogclf.images import InvalidImageError, decode_image
from dogclf.model import build_for_inference
from dogclf.presets import eval_preset

IMAGE_CONTENT_TYPES = ("image/jpeg", "image/png", "application/x-image")
JSON_CONTENT_TYPE = "application/json"
DEFAULT_TOP_K = 3


class InvalidInputError(ValueError):
    """The request body cannot be turned into an image (HTTP 400)."""


class UnsupportedContentTypeError(ValueError):
    """The request's content type or accept type is not supported (HTTP 415)."""


def model_fn(model_dir: str) -> dict[str, Any]:
    """Load model.pth, classes.json and model_meta.json written by training."""
    root = Path(model_dir)
    classes = json.loads((root / "classes.json").read_text())
    meta = json.loads((root / "model_meta.json").read_text())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_for_inference(len(classes))
    model.load_state_dict(torch.load(root / "model.pth", map_location="cpu", weights_only=True))
    model.to(device).eval()
    return {
        "model": model,
        "classes": classes,
        "transform": eval_preset(int(meta["image_size"])),
        "device": device,
    }


def _base_content_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def input_fn(request_body: bytes | str, content_type: str = "image/jpeg") -> dict[str, Any]:
    """Image bytes, or JSON ``{"image": "<base64>", "top_k": 3}`` -> {"image": PIL image, "top_k": int}."""
    kind = _base_content_type(content_type)
    top_k = DEFAULT_TOP_K
    if kind in IMAGE_CONTENT_TYPES:
        data = request_body.encode("latin1") if isinstance(request_body, str) else bytes(request_body)
    elif kind == JSON_CONTENT_TYPE:
        try:
            payload = json.loads(request_body)
            encoded = payload.get("image") if isinstance(payload, dict) else None
            if not isinstance(encoded, str):
                raise InvalidInputError('JSON body must be an object with a base64 string field "image"')
            data = base64.b64decode(encoded, validate=True)
            top_k = int(payload.get("top_k", DEFAULT_TOP_K))
        except InvalidInputError:
            raise
        except (
            json.JSONDecodeError,
            UnicodeDecodeError,
            binascii.Error,
            KeyError,
            TypeError,
            ValueError,
        ) as error:
            raise InvalidInputError(f"malformed JSON request: {error}") from error
    else:
        raise UnsupportedContentTypeError(
            f"unsupported content type {content_type!r}; "
            f"use one of {', '.join((*IMAGE_CONTENT_TYPES, JSON_CONTENT_TYPE))}"
        )
    if not data:
        raise InvalidInputError("empty request body")
    try:
        image = decode_image(data, max_pixels=int(os.environ.get("DOGCLF_MAX_IMAGE_PIXELS", "40000000")))
    except InvalidImageError as error:
        raise InvalidInputError(str(error)) from error
    return {"image": image, "top_k": max(1, top_k)}


@torch.no_grad()
def predict_fn(input_data: dict[str, Any], model: dict[str, Any]) -> list[dict[str, Any]]:
    """Eval preset (same as training) -> softmax -> top k as [{label, class_index, probability}]."""
    tensor = model["transform"](input_data["image"]).unsqueeze(0).to(model["device"])
    probabilities = torch.softmax(model["model"](tensor).float(), dim=1)[0]
    top_k = min(int(input_data.get("top_k", DEFAULT_TOP_K)), len(model["classes"]))
    values, indices = probabilities.topk(top_k)
    return [
        {"label": model["classes"][index], "class_index": int(index), "probability": float(value)}
        for value, index in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def output_fn(prediction: list[dict[str, Any]], accept: str = JSON_CONTENT_TYPE) -> str:
    """application/json: {"predictions": [...top k...], "label": best label, "class_index", "probability"}."""
    kind = _base_content_type(accept) or JSON_CONTENT_TYPE
    if kind not in (JSON_CONTENT_TYPE, "*/*"):
        raise UnsupportedContentTypeError(f"unsupported accept type {accept!r}; use application/json")
    best = prediction[0]
    return json.dumps({**best, "predictions": prediction})

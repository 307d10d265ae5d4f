"""inference.py's handlers, alone and inside the toolkit's HandlerService (what TorchServe's worker runs).

The model is built without training (random weights, 32 px, 3 classes) in the layout save_artifacts
writes, packed and unpacked like model.tar.gz; the handlers come from the unpacked code/.
The same cases through TorchServe itself: tests/localcloud/sagemaker/test_endpoints.py.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from dogclf.artifacts import copy_serving_code
from dogclf.contract import MAX_IMAGE_PIXELS, MAX_IMAGE_PIXELS_ENV
from dogclf.model import build_for_inference
from dogclf.presets import eval_preset
from localcloud.environment.containerenv import base_python

CLASSES = ["a", "b", "c"]
IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    built = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    torch.save(build_for_inference(len(CLASSES)).state_dict(), built / "model.pth")
    (built / "classes.json").write_text(json.dumps(CLASSES))
    meta = {"arch": "resnet18", "image_size": IMAGE_SIZE, "num_classes": len(CLASSES)}
    (built / "model_meta.json").write_text(json.dumps(meta))
    copy_serving_code(built / "code")
    # Pack and unpack like SageMaker does with model.tar.gz, then serve from the unpacked copy.
    archive = tmp_path_factory.mktemp("archive") / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in built.iterdir():
            tar.add(path, arcname=path.name)
    served = tmp_path_factory.mktemp("served")
    with tarfile.open(archive) as tar:
        tar.extractall(served, filter="data")
    return served


@pytest.fixture(scope="module")
def handlers(model_dir):
    """Import code/inference.py from the unpacked archive, as the serving container does."""
    spec = importlib.util.spec_from_file_location("served_inference", model_dir / "code" / "inference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model(handlers, model_dir):
    return handlers.model_fn(str(model_dir))


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (180, 90, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A 69-byte PNG whose header claims width x height (pixel data cut short): a decompression-bomb probe."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(64)))
        + chunk(b"IEND", b"")
    )


def predict(handlers, model, body, content_type, accept="application/json"):
    payload, response_type = handlers.output_fn(
        handlers.predict_fn(handlers.input_fn(body, content_type), model), accept
    )
    assert response_type == "application/json"
    return json.loads(payload)


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("JPEG", "application/x-image")]
)
def test_round_trip_on_image_bytes(handlers, model, fmt, content_type):
    payload = predict(handlers, model, image_bytes(fmt), content_type)
    assert len(payload["predictions"]) == 3
    probabilities = [p["probability"] for p in payload["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0 + 1e-6
    assert payload["label"] == payload["predictions"][0]["label"]
    assert CLASSES[payload["class_index"]] == payload["label"]


def test_json_with_base64_and_top_k(handlers, model):
    body = json.dumps({"image": base64.b64encode(image_bytes()).decode(), "top_k": 2}).encode()
    assert len(predict(handlers, model, body, "application/json")["predictions"]) == 2
    # A body the toolkit already decoded (str) reads the same.
    assert len(predict(handlers, model, body.decode(), "application/json")["predictions"]) == 2


def test_same_result_as_the_training_eval_transform(handlers, model):
    """Serving uses the training eval preset: same tensor in, same probabilities out."""
    body = image_bytes("PNG", size=(70, 50))
    with torch.no_grad():
        logits = model["model"](
            eval_preset(IMAGE_SIZE)(Image.open(io.BytesIO(body)).convert("RGB")).unsqueeze(0)
        )
    expected = torch.softmax(logits, 1)[0]
    served = handlers.predict_fn(handlers.input_fn(body, "image/png"), model)
    assert served[0]["probability"] == pytest.approx(float(expected.max()), abs=1e-5)
    assert served[0]["class_index"] == int(expected.argmax())


@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        (b"definitely not an image", "image/jpeg", "not a decodable image"),
        (image_bytes()[:200], "image/jpeg", "not a decodable image"),  # truncated JPEG
        (b"", "image/png", "empty request body"),
        (None, "image/png", "empty request body"),
        (b"", "application/json", "empty request body"),
        (b"{not json", "application/json", "malformed JSON"),
        (b"\xff\xfe{", "application/json", "not UTF-8"),
        (b'["image"]', "application/json", 'field "image"'),
        (b'{"img": "x"}', "application/json", 'field "image"'),
        (b'{"image": "@@@not base64@@@"}', "application/json", "not base64"),
        (
            json.dumps({"image": base64.b64encode(image_bytes()).decode(), "top_k": "2"}).encode(),
            "application/json",
            "top_k",
        ),
        (
            json.dumps({"image": base64.b64encode(b"").decode()}).encode(),
            "application/json",
            "empty request body",
        ),
        (png_header(30000, 30000), "image/png", "decompression bomb"),
    ],
)
def test_bad_input_is_400(handlers, body, content_type, match):
    with pytest.raises(handlers.InvalidInputError, match=match) as caught:
        handlers.input_fn(body, content_type)
    assert caught.value.status_code == 400


@pytest.mark.parametrize("content_type", ["text/csv", "application/octet-stream", "", None])
def test_unsupported_content_type_is_415(handlers, content_type):
    with pytest.raises(handlers.UnsupportedContentTypeError, match="unsupported content type") as caught:
        handlers.input_fn(b"1,2,3", content_type)
    assert caught.value.status_code == 415


def test_pixel_limit_comes_from_the_contract_and_its_env_override(handlers, model, model_dir, monkeypatch):
    side = int(MAX_IMAGE_PIXELS**0.5) + 1  # just over the limit, checked on the header alone
    with pytest.raises(handlers.InvalidInputError, match=f"exceeds the limit of {MAX_IMAGE_PIXELS}"):
        handlers.input_fn(png_header(side, side), "image/png")
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, str(48 * 40 - 1))
    with pytest.raises(handlers.InvalidInputError, match="exceeds the limit"):
        handlers.input_fn(image_bytes(size=(48, 40)), "image/jpeg")
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, str(48 * 40))
    assert handlers.input_fn(image_bytes(size=(48, 40)), "image/jpeg")["image"].size == (48, 40)
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, "lots")
    with pytest.raises(RuntimeError, match=MAX_IMAGE_PIXELS_ENV):
        handlers.model_fn(str(model_dir))  # a bad setting fails the model load


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "application/json",
        "*/*",
        "application/*",
        "application/json, text/plain",
        "text/plain, APPLICATION/JSON; charset=utf-8",
        "text/plain;q=1.0, application/json;q=0.5",
    ],
)
def test_accept_with_json_among_its_types(handlers, model, accept):
    assert predict(handlers, model, image_bytes(), "image/jpeg", accept)["predictions"]


@pytest.mark.parametrize(
    "accept",
    ["text/html", "text/plain, image/png", "application/json;q=0", "application/json;q=zero, text/csv"],
)
def test_accept_without_json_is_406(handlers, model, accept):
    prediction = handlers.predict_fn(handlers.input_fn(image_bytes(), "image/jpeg"), model)
    with pytest.raises(handlers.UnsupportedAcceptError, match="unsupported accept type") as caught:
        handlers.output_fn(prediction, accept)
    assert caught.value.status_code == 406


def test_errors_are_the_toolkits_own_types_and_value_errors(handlers):
    from sagemaker_inference.errors import BaseInferenceToolkitError, GenericInferenceToolkitError

    for error_type, status in (
        (handlers.InvalidInputError, 400),
        (handlers.UnsupportedContentTypeError, 415),
        (handlers.UnsupportedAcceptError, 406),
    ):
        error = error_type("why")
        assert isinstance(error, ValueError)
        assert isinstance(error, GenericInferenceToolkitError)
        assert (error.status_code, error.message, str(error)) == (status, "why", "why")
        assert "\n" not in error.phrase and error.phrase  # TorchServe's reason phrase (Netty: no CR/LF)
    assert issubclass(handlers.InferenceError, BaseInferenceToolkitError)


def test_without_the_toolkit_errors_are_plain_value_errors(model_dir):
    code = (
        "import sys; sys.modules['sagemaker_inference'] = None; sys.path.insert(0, sys.argv[1]); "  # code/
        "import inference as i\n"
        "assert 'sagemaker_inference' not in [c.__module__ for c in i.InvalidInputError.__mro__]\n"
        "for cls, status in ((i.InvalidInputError, 400), (i.UnsupportedContentTypeError, 415), "
        "(i.UnsupportedAcceptError, 406)):\n"
        "    assert issubclass(cls, ValueError) and cls('x').status_code == status, cls\n"
        "try:\n"
        "    i.input_fn(b'1', 'text/csv')\n"
        "except i.UnsupportedContentTypeError as e:\n"
        "    print(e.status_code, e)\n"
    )
    completed = subprocess.run(
        [str(base_python()), "-I", "-c", code, str(model_dir / "code")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("415 unsupported content type 'text/csv'")


# --- inside the toolkit: sagemaker-pytorch-inference's HandlerService with TorchServe's Context ------


@pytest.fixture(scope="module")
def toolkit(model_dir):
    """The handler service the inference image's TorchServe worker runs, initialised on the model."""
    from sagemaker_pytorch_serving_container.handler_service import HandlerService
    from ts.context import Context

    code_dir = str(model_dir / "code")
    sys.path.insert(0, code_dir)  # the worker has code/ on PYTHONPATH and imports SAGEMAKER_PROGRAM
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SAGEMAKER_PROGRAM", "inference.py")
        env.delenv("PYTHONPATH", raising=False)  # initialize() prepends code/ to it; restored after
        context = Context("model", str(model_dir), {}, 1, None, "0.12.0")
        service = HandlerService()
        service.initialize(context)
        yield service, context
    sys.path.remove(code_dir)


def handle(toolkit, body: bytes, content_type: str, accept: str = "application/json"):
    """One request as TorchServe hands it over: (status, content type, body text)."""
    from ts.context import RequestProcessor

    service, context = toolkit
    context.request_processor = [RequestProcessor({"Content-Type": content_type, "Accept": accept})]
    [response] = service.handle([{"body": bytearray(body)}], context)
    status, _ = context.get_response_status(0)
    text = response.decode() if isinstance(response, bytes | bytearray) else str(response)
    return status, context.get_response_content_type(0), text


def test_toolkit_answers_a_valid_request(toolkit):
    status, content_type, text = handle(toolkit, image_bytes(), "image/jpeg", "text/plain, application/json")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(text)["label"] in CLASSES


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "error"),
    [
        (b"garbage", "image/jpeg", "application/json", 400, "InvalidInputError"),
        (b"", "image/png", "application/json", 400, "InvalidInputError"),
        (b"\xff\xfe{", "application/json", "application/json", 400, "InvalidInputError"),
        (png_header(30000, 30000), "image/png", "application/json", 400, "InvalidInputError"),
        (b"\xff\xfe", "text/csv", "application/json", 415, "UnsupportedContentTypeError"),
        (image_bytes(), "image/jpeg", "text/html", 406, "UnsupportedAcceptError"),
    ],
)
def test_toolkit_answers_bad_requests_with_short_json(toolkit, body, content_type, accept, status, error):
    got_status, got_type, text = handle(toolkit, body, content_type, accept)
    assert (got_status, got_type) == (status, "application/json")
    assert "Traceback" not in text
    assert json.loads(text)["error"] == error


def test_inference_imports_only_what_the_serving_container_has(model_dir):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import inference; "  # the model's code/, as served
        "bad = [m for m in ('smdebug', 'matplotlib', 'pandas', 'sagemaker_training') "
        "if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    completed = subprocess.run(
        [str(base_python()), "-I", "-c", code, str(model_dir / "code")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr

"""Classify downscales an image over the endpoint's payload limit (rather than failing it) and records it;
an image under the limit goes out byte for byte; one that cannot be decoded is a `failed` result."""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from fn_support import ENV, TRAINING_DIR, tiny_jpeg
from PIL import Image
from test_cold_start import run_python

from dogclf import contract
from pipeline.adapters.aws import client
from pipeline.classify import PAYLOAD_LIMITS, result_key

BUCKET = ENV["INFERENCE_BUCKET"]
ENDPOINT = ENV["ENDPOINT_NAME"]
PREDICTIONS = {"predictions": [{"label": "Akita", "class_index": 3, "probability": 0.9}]}
SERVERLESS_LIMIT = PAYLOAD_LIMITS["serverless"]  # the tests' ENDPOINT_MODE
# The short side a large image is brought down to: twice what the eval preset resizes to (224 px).
TARGET_SHORT_SIDE = 2 * contract.eval_resize_size(224)


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """Random pixels: incompressible, so a few megapixels make a file of several MB."""
    return Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def big_noise_jpeg() -> bytes:
    data = encoded(noise(2400, 1600), "JPEG", quality=95)
    assert len(data) > SERVERLESS_LIMIT  # what the tests below are about
    return data


def corrupt_png(size: int) -> bytes:
    """A PNG whose signature, IHDR (with its CRC) and IEND are right, so the header checks pass,
    and whose pixel data is garbage: only decoding finds out."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 2000, 1500, 8, 2, 0, 0, 0))
    garbage = chunk(b"IDAT", random.Random(1).randbytes(size))
    return b"\x89PNG\r\n\x1a\n" + header + garbage + chunk(b"IEND", b"")


class Recorder:
    """A Predictor (the adapter Protocol) that keeps what it was sent."""

    name = ENDPOINT

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, str]] = []

    def predict(self, body: bytes, content_type: str) -> dict:
        self.sent.append((body, content_type))
        return PREDICTIONS

    def status(self) -> str:
        return "InService"


def classifier(predictor: Recorder, **settings: Any):
    from pipeline.adapters.s3 import S3Store
    from pipeline.classify import Classifier
    from pipeline.settings import Settings

    return Classifier(Settings.from_env().model_copy(update=settings), S3Store(), predictor)


def stored_result(aws, key: str) -> dict:
    return json.loads(aws.s3.get_object(Bucket=BUCKET, Key=result_key(key))["Body"].read())


def test_an_image_over_the_limit_is_downscaled_keeping_its_aspect_ratio(aws) -> None:
    image = big_noise_jpeg()
    aws.s3.put_object(Bucket=BUCKET, Key="input/big.jpg", Body=image)
    predictor = Recorder()
    record = classifier(predictor).classify_object(BUCKET, "input/big.jpg")
    [(sent, content_type)] = predictor.sent
    assert record["status"] == "ok" and content_type == "image/jpeg" and len(sent) <= SERVERLESS_LIMIT
    with Image.open(io.BytesIO(sent)) as decoded:
        width, height = decoded.size
    assert min(width, height) == TARGET_SHORT_SIDE
    assert abs(width / height - 2400 / 1600) < 1 / TARGET_SHORT_SIDE  # within a pixel's rounding
    assert stored_result(aws, "input/big.jpg")["downscaled"] == {
        "reason": f"over the endpoint's payload limit of {SERVERLESS_LIMIT} bytes",
        "original": {"bytes": len(image), "width": 2400, "height": 1600},
        "sent": {
            "bytes": len(sent),
            "width": width,
            "height": height,
            "content_type": "image/jpeg",
            "jpeg_quality": record["downscaled"]["sent"]["jpeg_quality"],
        },
    }


def test_the_handler_sends_the_downscaled_jpeg_to_the_endpoint(aws, lambda_context) -> None:
    from pipeline.handlers import classify

    aws.s3.put_object(Bucket=BUCKET, Key="input/BIG.JPG", Body=big_noise_jpeg())
    raw = json.dumps(PREDICTIONS).encode()
    with Stubber(client("sagemaker-runtime")) as runtime:
        runtime.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(raw), len(raw))},
            {
                "EndpointName": ENDPOINT,
                "ContentType": "image/jpeg",
                "Accept": "application/json",
                "Body": ANY,
            },
        )
        record = classify.handler({"bucket": BUCKET, "key": "input/BIG.JPG"}, lambda_context)
        runtime.assert_no_pending_responses()
    assert record["status"] == "ok" and record["downscaled"]["sent"]["bytes"] <= SERVERLESS_LIMIT


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (encoded(noise(900, 700), "JPEG", quality=95), "image/jpeg"),
        (encoded(noise(500, 400), "PNG"), "image/png"),
        (tiny_jpeg(), "image/jpeg"),
    ],
    ids=["noise-jpeg", "noise-png", "tiny-jpeg"],
)
def test_an_image_under_the_limit_is_sent_byte_for_byte(aws, data: bytes, content_type: str) -> None:
    assert len(data) <= SERVERLESS_LIMIT
    predictor = Recorder()
    record = classifier(predictor).predict(data)
    assert predictor.sent == [(data, content_type)] and "downscaled" not in record


def test_a_corrupt_image_over_the_limit_is_a_failed_result_with_the_reason(aws) -> None:
    data = corrupt_png(SERVERLESS_LIMIT + 100_000)
    aws.s3.put_object(Bucket=BUCKET, Key="input/broken.png", Body=data)
    predictor = Recorder()
    record = classifier(predictor).classify_object(BUCKET, "input/broken.png")
    assert predictor.sent == []
    assert record["status"] == "failed" and record["error"]["kind"] == "not-an-image"
    assert (
        "cannot downscale" in record["error"]["message"]
        and "not a decodable image" in record["error"]["message"]
    )
    assert stored_result(aws, "input/broken.png")["error"] == record["error"]


def test_an_image_that_stays_over_the_limit_is_refused_naming_the_limit(aws, monkeypatch) -> None:
    monkeypatch.setitem(PAYLOAD_LIMITS, "serverless", 2_000)  # even 384x256 noise is larger
    aws.s3.put_object(Bucket=BUCKET, Key="input/noisy.jpg", Body=encoded(noise(600, 400), "JPEG"))
    predictor = Recorder()
    record = classifier(predictor).classify_object(BUCKET, "input/noisy.jpg")
    assert predictor.sent == [] and record["status"] == "failed" and record["error"]["kind"] == "too-large"
    message = record["error"]["message"]
    assert "384x256" in message and "quality 60" in message and "2000 bytes" in message


def test_lower_jpeg_quality_is_tried_before_giving_up(aws) -> None:
    from pipeline.image_downscale import fit_under

    data = big_noise_jpeg()
    options = {"image_size": 224, "max_pixels": contract.MAX_IMAGE_PIXELS, "training_code_dir": TRAINING_DIR}
    best = fit_under(data, 10**9, **options)
    assert best.jpeg_quality == 90
    tighter = fit_under(data, len(best.data) - 1, **options)
    assert tighter.jpeg_quality < 90 and len(tighter.data) < len(best.data)
    assert tighter.sent_size == best.sent_size  # same size first, lower quality


def test_an_image_is_never_enlarged_and_a_png_is_sent_as_jpeg(aws) -> None:
    data = encoded(noise(4000, 400), "PNG")  # short side 400: under the 512 target already
    assert len(data) > SERVERLESS_LIMIT
    predictor = Recorder()
    record = classifier(predictor).predict(data)
    [(sent, content_type)] = predictor.sent
    assert content_type == "image/jpeg" and Image.open(io.BytesIO(sent)).size == (4000, 400)
    assert record["downscaled"]["sent"]["width"] == 4000


def test_exif_orientation_is_left_as_serving_leaves_it(aws) -> None:
    """Serving (dogclf.images.decode_image) does not rotate by EXIF: the stored pixels go out as stored."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    data = encoded(noise(2400, 1600), "JPEG", quality=95, exif=exif.tobytes())
    predictor = Recorder()
    classifier(predictor).predict(data)
    [(sent, _)] = predictor.sent
    with Image.open(io.BytesIO(sent)) as decoded:
        assert decoded.size[0] > decoded.size[1]  # landscape, as stored
        assert decoded.getexif().get(0x0112) is None


def test_the_pixel_limit_applies_to_the_decode(aws) -> None:
    from pipeline.image_downscale import DownscaleError, fit_under

    with pytest.raises(DownscaleError, match="exceeds the limit of 1000000") as raised:
        fit_under(
            big_noise_jpeg(),
            SERVERLESS_LIMIT,
            image_size=224,
            max_pixels=1_000_000,
            training_code_dir=TRAINING_DIR,
        )
    assert raised.value.kind == "not-an-image"


def test_pillow_is_not_imported_by_init_or_for_an_image_under_the_limit() -> None:
    """Cold start: the handler's init and a normal request never load Pillow; only a downscale does."""
    report = run_python(
        f"""
        import pipeline.handlers.classify as handler_module
        from pipeline.classify import Classifier
        after_init = "PIL" in sys.modules

        class Answer:
            name = "e"
            def predict(self, body, content_type):
                return {{"predictions": [{{"label": "x", "probability": 1.0}}]}}
            def status(self):
                return "InService"

        Classifier(handler_module.settings, handler_module.store, Answer()).predict({tiny_jpeg()!r})
        print(json.dumps({{"after_init": after_init, "after_small_image": "PIL" in sys.modules}}))
        """
    )
    assert report == {"after_init": False, "after_small_image": False}

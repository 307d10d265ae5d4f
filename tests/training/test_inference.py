"""inference.py handlers: a round trip on real JPEG/PNG bytes with a trained model.tar.gz."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import subprocess
import sys
import tarfile

import pytest
from PIL import Image
from trainhelpers import FAST_HPS, run_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, sample_dataset):
    result = run_script(
        "hpo.py",
        tmp_path_factory.mktemp("inference-job"),
        {**FAST_HPS, "epochs": 3},
        {"training": sample_dataset},
    )
    assert result.returncode == 0, result.log
    # Pack and unpack like SageMaker does with model.tar.gz, then serve from the unpacked copy.
    archive = result.base_dir / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in result.model_dir.iterdir():
            tar.add(path, arcname=path.name)
    served = tmp_path_factory.mktemp("served")
    with tarfile.open(archive) as tar:
        tar.extractall(served, filter="data")
    return served


@pytest.fixture(scope="module")
def handlers(model_dir):
    """Import code/inference.py from the unpacked archive (its own dogclf copy), as the server does."""
    spec = importlib.util.spec_from_file_location("served_inference", model_dir / "code" / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model(handlers, model_dir):
    return handlers.model_fn(str(model_dir))


def _image_bytes(sample_dataset, split="test", class_dir="003.Airedale_terrier", fmt="JPEG") -> bytes:
    source = sorted((sample_dataset / split / class_dir).iterdir())[0]
    buffer = io.BytesIO()
    Image.open(source).convert("RGB").save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("JPEG", "application/x-image")]
)
def test_round_trip_on_image_bytes(handlers, model, sample_dataset, fmt, content_type):
    body = _image_bytes(sample_dataset, fmt=fmt)
    data = handlers.input_fn(body, content_type)
    prediction = handlers.predict_fn(data, model)
    payload = json.loads(handlers.output_fn(prediction, "application/json"))
    assert len(payload["predictions"]) == 3
    probabilities = [p["probability"] for p in payload["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0 + 1e-6
    assert payload["label"] == payload["predictions"][0]["label"]
    assert model["classes"][payload["class_index"]] == payload["label"]


def test_predictions_are_mostly_right_on_the_test_split(handlers, model, sample_dataset):
    correct = total = 0
    for class_index, class_dir in enumerate(sorted(p.name for p in (sample_dataset / "test").iterdir())):
        for path in sorted((sample_dataset / "test" / class_dir).iterdir()):
            content_type = "image/png" if path.suffix == ".png" else "image/jpeg"
            best = handlers.predict_fn(handlers.input_fn(path.read_bytes(), content_type), model)[0]
            correct += best["class_index"] == class_index
            total += 1
    assert correct / total >= 0.6  # 4 classes: chance is 0.25


def test_json_with_base64_and_top_k(handlers, model, sample_dataset):
    body = json.dumps({"image": base64.b64encode(_image_bytes(sample_dataset)).decode(), "top_k": 2})
    payload = json.loads(
        handlers.output_fn(handlers.predict_fn(handlers.input_fn(body, "application/json"), model))
    )
    assert len(payload["predictions"]) == 2


def test_same_result_as_the_training_eval_transform(handlers, model, sample_dataset):
    """Serving uses the training eval preset: same tensor in, same logits out."""
    import torch

    from dogclf.presets import eval_preset

    path = sorted((sample_dataset / "test" / "001.Affenpinscher").iterdir())[0]
    expected = torch.softmax(
        model["model"](eval_preset(64)(Image.open(path).convert("RGB")).unsqueeze(0)), 1
    )[0]
    served = handlers.predict_fn(
        handlers.input_fn(path.read_bytes(), "image/jpeg" if path.suffix == ".jpg" else "image/png"), model
    )
    assert served[0]["probability"] == pytest.approx(float(expected.max()), abs=1e-5)


def test_errors(handlers, sample_dataset):
    with pytest.raises(handlers.UnsupportedContentTypeError, match="unsupported content type 'text/csv'"):
        handlers.input_fn(b"1,2,3", "text/csv")
    with pytest.raises(handlers.InvalidInputError, match="not a decodable image"):
        handlers.input_fn(b"definitely not an image", "image/jpeg")
    with pytest.raises(handlers.InvalidInputError, match="not a decodable image"):
        handlers.input_fn(_image_bytes(sample_dataset)[:200], "image/jpeg")  # truncated JPEG
    with pytest.raises(handlers.InvalidInputError, match="empty request body"):
        handlers.input_fn(b"", "image/png")
    with pytest.raises(handlers.InvalidInputError, match="malformed JSON"):
        handlers.input_fn("{not json", "application/json")
    with pytest.raises(handlers.InvalidInputError, match='field "image"'):
        handlers.input_fn(json.dumps({"img": "x"}), "application/json")
    with pytest.raises(handlers.InvalidInputError, match="malformed JSON"):
        handlers.input_fn(json.dumps({"image": "@@@not base64@@@"}), "application/json")
    with pytest.raises(handlers.UnsupportedContentTypeError):
        handlers.output_fn([{"label": "x", "class_index": 0, "probability": 1.0}], "text/html")
    assert issubclass(handlers.InvalidInputError, ValueError)
    assert issubclass(handlers.UnsupportedContentTypeError, ValueError)


def test_decompression_bomb_is_rejected_before_decoding(handlers):
    # A 12000x12000 PNG of one colour compresses to a few hundred KB but would need 432 MB decoded.
    buffer = io.BytesIO()
    Image.new("L", (12000, 12000)).save(buffer, format="PNG")
    with pytest.raises(handlers.InvalidInputError, match="decompression bomb"):
        handlers.input_fn(buffer.getvalue(), "image/png")


def test_inference_imports_only_what_the_serving_container_has(model_dir):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import inference; "
        "bad = [m for m in ('smdebug', 'matplotlib', 'psutil', 'pandas', 'sagemaker_training') "
        "if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    completed = subprocess.run(
        [sys.executable, "-I", "-c", code, str(model_dir / "code")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr

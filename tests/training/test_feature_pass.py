"""The features job's one-loader pass (dogclf/feature_pass.py) and its uint8 preset (presets.EvalCropPreset
+ normalize_batch), against the per-image eval preset that training and serving use."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch
from PIL import Image

from dogclf import data as data_module
from dogclf import distributed, feature_pass, presets
from dogclf.model import build_model

CPU = distributed.DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def _photo(size: tuple[int, int], seed: int, mode: str = "RGB") -> Image.Image:
    rng = random.Random(seed)
    pixels = bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))
    return Image.frombytes("RGB", size, pixels).convert(mode).convert("RGB")


@pytest.mark.parametrize("image_size", [64, 224])
@pytest.mark.parametrize("size", [(500, 375), (375, 500), (300, 300), (50, 40), (641, 97)])
def test_the_uint8_preset_and_batch_normalization_equal_the_eval_preset_bit_for_bit(image_size, size):
    images = [_photo(size, seed) for seed in range(2)] + [_photo(size, 7, mode="L")]
    expected = torch.stack([presets.eval_preset(image_size)(image) for image in images])
    crop = presets.EvalCropPreset(crop_size=image_size)
    assert crop.decode_size == presets.eval_preset(image_size).decode_size  # the same draft decode
    batch = torch.stack([crop(image) for image in images])
    assert batch.dtype == torch.uint8 and batch.shape == (3, image_size, image_size, 3)
    got = presets.normalize_batch(batch)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert got.dtype == torch.float32 and torch.equal(got, expected)


def _samples(root: Path, counts: dict[str, int], corrupt: dict[str, int]) -> dict[str, list]:
    samples: dict[str, list] = {}
    for split_number, (split, count) in enumerate(counts.items()):
        samples[split] = []
        for number in range(count):
            path = root / split / f"{number}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            if corrupt.get(split) == number:
                path.write_bytes(b"\xff\xd8 not a jpeg")
            else:
                _photo((40, 30), 100 * split_number + number).save(path, quality=90)
            samples[split].append((str(path), number % 3))
    return samples


def _open(path: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


@pytest.mark.parametrize(("num_workers", "worker_nice"), [(0, 0), (2, 19)])
def test_one_pass_over_all_splits_gives_each_split_its_own_rows(tmp_path, num_workers, worker_nice):
    """Batches of 4 straddle the splits (6 + 5 + 3 images) and valid holds an undecodable image:
    every split's rows equal a per-split pass through the eval preset, the bad image is skipped
    and counted in valid only, and progress adds up per split."""
    torch.manual_seed(0)
    model = build_model(3, "none").eval()
    samples = _samples(tmp_path, {"train": 6, "valid": 5, "test": 3}, corrupt={"valid": 2})
    tracker = data_module.BadImageTracker(max_fraction=0.5)
    seen: dict[str, int] = {}
    extracted = feature_pass.extract_splits(
        model,
        samples,
        image_size=32,
        batch_size=4,
        num_workers=num_workers,
        context=CPU,
        tracker=tracker,
        worker_nice=worker_nice,
        progress=lambda split, images: seen.__setitem__(split, seen.get(split, 0) + images),
    )
    assert seen == {"train": 6, "valid": 5, "test": 3}
    assert tracker.to_dict()["skipped_images"] == {"train": 0, "valid": 1, "test": 0}
    preset = presets.eval_preset(32)
    for split, rows in samples.items():
        good = [(path, target) for path, target in rows if not (split == "valid" and path.endswith("/2.jpg"))]
        inputs = torch.stack([preset(_open(path)) for path, _ in good])
        with torch.no_grad():
            expected = model.features(inputs)
        features, targets = extracted[split]
        assert targets.tolist() == [target for _, target in good]
        assert features.shape == expected.shape
        assert torch.allclose(features, expected, rtol=1e-4, atol=1e-5), (features - expected).abs().max()


def test_a_split_with_too_many_bad_images_fails_naming_that_split(tmp_path):
    samples = _samples(tmp_path, {"train": 4, "valid": 2, "test": 2}, corrupt={"test": 0})
    with pytest.raises(data_module.BadImagesError, match="1 of 2 images in test"):
        feature_pass.extract_splits(
            build_model(3, "none"),
            samples,
            image_size=32,
            batch_size=3,
            num_workers=0,
            context=CPU,
            tracker=data_module.BadImageTracker(max_fraction=0.1),
        )


def test_the_workers_decode_at_the_raised_niceness(tmp_path, monkeypatch):
    """worker_nice reaches the processes that decode (an assertion in a worker fails the pass)."""
    expected = min(os.nice(0) + 7, 19)
    original = presets.EvalCropPreset.__call__

    def checked(self, image):
        assert os.nice(0) == expected, f"decoding at niceness {os.nice(0)}, not {expected}"
        return original(self, image)

    monkeypatch.setattr(presets.EvalCropPreset, "__call__", checked)
    samples = _samples(tmp_path, {"train": 2, "valid": 1, "test": 1}, corrupt={})
    extracted = feature_pass.extract_splits(
        build_model(3, "none"),
        samples,
        image_size=32,
        batch_size=2,
        num_workers=1,
        context=CPU,
        tracker=data_module.BadImageTracker(max_fraction=0.0),
        worker_nice=7,
    )
    assert {split: len(targets) for split, (_, targets) in extracted.items()} == {
        "train": 2,
        "valid": 1,
        "test": 1,
    }

"""dogclf.images.decode_image: the pixel limit, and the reduced-scale JPEG decode presets ask for."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from dogclf import presets
from dogclf.images import InvalidImageError, decode_image


def encoded(size: tuple[int, int], fmt: str) -> bytes:
    rng = random.Random(0)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("min_size", "expected"),
    [
        (None, (1000, 750)),  # no size asked: full decode
        (73, (125, 94)),  # 1/8 would be 125x93.75 -> libjpeg rounds up; short side 94 >= 73
        (256, (500, 375)),  # 1/4 would be 188 < 256: 1/2
        (400, (1000, 750)),  # 1/2 would be 375 < 400: full
    ],
)
def test_a_jpeg_decodes_at_the_smallest_scale_that_keeps_min_size(
    min_size: int | None, expected: tuple[int, int]
) -> None:
    image = decode_image(encoded((1000, 750), "JPEG"), min_size=min_size)
    assert (image.size, image.mode) == (expected, "RGB")


def test_other_formats_decode_in_full_whatever_min_size() -> None:
    assert decode_image(encoded((400, 300), "PNG"), min_size=64).size == (400, 300)


def test_a_truncated_jpeg_is_still_refused_at_reduced_scale() -> None:
    data = encoded((1000, 750), "JPEG")
    with pytest.raises(InvalidImageError, match="not a decodable image"):
        decode_image(data[: len(data) // 2], min_size=73)


def test_the_pixel_limit_applies_before_any_decode_at_any_scale() -> None:
    with pytest.raises(InvalidImageError, match="exceeds the limit"):
        decode_image(encoded((1000, 750), "JPEG"), max_pixels=1000 * 750 - 1, min_size=73)


def test_eval_preset_asks_for_its_resize_size_and_augmentation_for_a_full_decode() -> None:
    """The eval preset resizes the short side to 73 px at 64 (256 at 224): that is what the decoder
    must keep. Random crops may zoom in, so the augmenting preset asks for everything."""
    assert presets.eval_preset(64).decode_size == 73
    assert presets.eval_preset(224).decode_size == 256
    assert presets.train_preset(64, augment=True).decode_size is None
    assert presets.train_preset(64, augment=False).decode_size == 73


def test_reduced_scale_decode_changes_little_after_the_eval_preset() -> None:
    """What the model sees from a 1/4-scale decode is close to a full decode's: mean absolute
    difference of the normalized tensors under 0.1 (on a -2..2.6 scale) for a smooth photo-like image."""
    size = (600, 450)
    smooth = Image.radial_gradient("L").resize(size).convert("RGB")
    buffer = io.BytesIO()
    smooth.save(buffer, format="JPEG", quality=90)
    preset = presets.eval_preset(64)
    reduced = preset(decode_image(buffer.getvalue(), min_size=preset.decode_size))
    full = preset(decode_image(buffer.getvalue()))
    assert reduced.shape == full.shape == (3, 64, 64)
    assert float((reduced - full).abs().mean()) < 0.1

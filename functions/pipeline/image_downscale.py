"""Bring an image over the endpoint's payload limit under it: decode, shrink, re-encode as JPEG.

Only classify calls this, and only for an image over the limit; Pillow (and dogclf.images, which
imports it) is imported inside ``fit_under``, so no function's cold start pays for it.

What the model would see is kept:
- Decoding is training's and serving's own (``dogclf.images.decode_image``: the same pixel limit,
  the same RGB conversion, alpha dropped the same way).
- The eval preset resizes the short side to ``contract.eval_resize_size(image_size)`` and then
  centre-crops, so shrinking to twice that short side (then, if still too big, to exactly that)
  loses nothing the model uses. The aspect ratio is kept, and an image is never enlarged.
- EXIF orientation is not applied: serving does not apply it either, and the re-encoded JPEG carries
  no EXIF, so the endpoint sees the stored pixel orientation either way.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogclf import contract
from pipeline.adapters.training_layer import images_module
from pipeline.errors import PermanentError

# Tried in order at each size; below 60 JPEG artefacts start to show at the model's input size.
JPEG_QUALITIES = (90, 80, 70, 60)
SENT_CONTENT_TYPE = "image/jpeg"


class DownscaleError(PermanentError):
    """The image cannot be brought under the limit: undecodable ("not-an-image") or, even at the
    model's own resize size and the lowest quality, still too large ("too-large")."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Downscaled:
    data: bytes
    original_bytes: int
    original_size: tuple[int, int]
    sent_size: tuple[int, int]
    jpeg_quality: int
    limit: int

    @property
    def content_type(self) -> str:
        return SENT_CONTENT_TYPE

    def record(self) -> dict[str, Any]:
        """What the classify result says about it (docs/contracts.md, "Classify")."""
        return {
            "reason": f"over the endpoint's payload limit of {self.limit} bytes",
            "original": {
                "bytes": self.original_bytes,
                "width": self.original_size[0],
                "height": self.original_size[1],
            },
            "sent": {
                "bytes": len(self.data),
                "width": self.sent_size[0],
                "height": self.sent_size[1],
                "content_type": self.content_type,
                "jpeg_quality": self.jpeg_quality,
            },
        }


def scaled_size(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    """``size`` with its short side brought down to ``short_side``, aspect ratio kept; never enlarged."""
    width, height = size
    shortest = min(width, height)
    if shortest <= short_side:
        return size
    scale = short_side / shortest
    return max(1, round(width * scale)), max(1, round(height * scale))


def fit_under(
    data: bytes, limit: int, *, image_size: int, max_pixels: int, training_code_dir: Path
) -> Downscaled:
    """A JPEG of ``data`` of at most ``limit`` bytes; raises DownscaleError when there is none."""
    from PIL import Image  # lazy: see the module docstring

    images = images_module(training_code_dir)
    try:
        image = images.decode_image(data, max_pixels=max_pixels)
    except images.InvalidImageError as error:
        raise DownscaleError("not-an-image", f"cannot downscale: {error}") from error
    resize = contract.eval_resize_size(image_size)
    sizes = dict.fromkeys(scaled_size(image.size, side) for side in (2 * resize, resize))  # dedupe, in order
    for size in sizes:
        resized = (
            image if size == image.size else image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        )
        for quality in JPEG_QUALITIES:
            buffer = io.BytesIO()
            resized.save(buffer, format="JPEG", quality=quality)
            if buffer.tell() <= limit:
                return Downscaled(buffer.getvalue(), len(data), image.size, size, quality, limit)
    (width, height), (small_width, small_height) = image.size, list(sizes)[-1]
    raise DownscaleError(
        "too-large",
        f"image is {len(data)} bytes ({width}x{height}); even as a {small_width}x{small_height} JPEG "
        f"at quality {JPEG_QUALITIES[-1]} it is over the endpoint's payload limit of {limit} bytes",
    )

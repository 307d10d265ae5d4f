"""A deterministic, learnable sample dataset in the dogImages layout (stdlib + Pillow only).

Each class has its own dominant colour and shape (disc, square, triangle, stripes, ring, cross...)
drawn with jitter in position, size, rotation and tint over a noisy two-tone background with small
distractor shapes. That structure survives a random-init frozen ResNet18 plus a linear head (colour
and shape statistics reach the pooled features), so local runs with ``--weights none`` learn it.

Same arguments -> same bytes: every image has its own RNG seeded from (seed, split, class, index),
and zip entries carry a fixed timestamp.

CLI (from the repository root): ``python -m tools.sample_data --out sample.zip --num-classes 4``.
Not part of the shipped training package: the Lambda layer and model.tar.gz never carry it.
"""

from __future__ import annotations

import argparse
import io
import math
import random
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

from dogclf.layout import SPLITS

# The first dogImages classes, so the sample looks like the real thing.
BREEDS = (
    "Affenpinscher",
    "Afghan_hound",
    "Airedale_terrier",
    "Akita",
    "Alaskan_malamute",
    "American_eskimo_dog",
    "American_foxhound",
    "American_staffordshire_terrier",
    "American_water_spaniel",
    "Anatolian_shepherd_dog",
    "Australian_cattle_dog",
    "Australian_shepherd",
    "Australian_terrier",
    "Basenji",
    "Basset_hound",
    "Beagle",
    "Bearded_collie",
    "Beauceron",
    "Bedlington_terrier",
    "Belgian_malinois",
)
# Well separated hues; classes beyond this list reuse a colour with a different shape.
PALETTE = (
    (220, 40, 40),
    (40, 90, 220),
    (40, 180, 60),
    (240, 200, 30),
    (160, 50, 200),
    (250, 130, 20),
    (30, 200, 200),
    (240, 90, 170),
    (120, 80, 40),
    (240, 240, 240),
)
SHAPES = ("disc", "square", "triangle", "stripes", "ring", "cross")
_ZIP_TIMESTAMP = (2020, 1, 1, 0, 0, 0)


def class_dirs(num_classes: int) -> list[str]:
    """Class folder names: "001.Affenpinscher", ...; beyond the named breeds "021.Breed_021"."""
    if num_classes < 2:
        raise ValueError("num_classes must be at least 2")
    return [
        f"{index + 1:03d}.{BREEDS[index] if index < len(BREEDS) else f'Breed_{index + 1:03d}'}"
        for index in range(num_classes)
    ]


def render_image(class_index: int, rng: random.Random, image_size: int) -> Image.Image:
    """One RGB image of class ``class_index``: its colour and shape, jittered, on a noisy background."""
    scale = 2  # draw at 2x and downsample: anti-aliased edges like a photo, not a pixel-art mask
    size = image_size * scale
    colour = PALETTE[class_index % len(PALETTE)]
    shape = SHAPES[(class_index + class_index // len(PALETTE)) % len(SHAPES)]

    top = tuple(rng.randint(60, 190) for _ in range(3))
    bottom = tuple(min(255, max(0, channel + rng.randint(-50, 50))) for channel in top)
    background = Image.linear_gradient("L").resize((size, size))
    image = Image.composite(
        Image.new("RGB", (size, size), bottom), Image.new("RGB", (size, size), top), background
    )
    draw = ImageDraw.Draw(image)

    for _ in range(rng.randint(1, 3)):  # small distractors in random colours
        radius = rng.uniform(0.04, 0.09) * size
        cx, cy = rng.uniform(0, size), rng.uniform(0, size)
        draw.ellipse(
            (cx - radius, cy - radius, cx + radius, cy + radius),
            fill=tuple(rng.randint(0, 255) for _ in range(3)),
        )

    tint = tuple(min(255, max(0, channel + rng.randint(-25, 25))) for channel in colour)
    radius = rng.uniform(0.22, 0.34) * size
    cx = size / 2 + rng.uniform(-0.12, 0.12) * size
    cy = size / 2 + rng.uniform(-0.12, 0.12) * size
    angle = rng.uniform(0, 2 * math.pi)
    _draw_shape(draw, shape, (cx, cy), radius, angle, tint, size)

    noise = Image.frombytes("RGB", (size, size), rng.randbytes(size * size * 3))
    image = Image.blend(image, noise, rng.uniform(0.05, 0.15))
    image = image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.3, 1.2)))
    return image.resize((image_size, image_size), Image.Resampling.LANCZOS)


# Detail drawn at this size, then scaled up: rendering at full photo size costs 8x more for the same
# learnable signal.
_PHOTO_DRAW_SIZE = 128
# Pixel noise blended into a photo: gives JPEG sizes like dogImages' (about 74 kB at 500x375, q90).
_PHOTO_NOISE = 0.17


def render_photo(class_index: int, rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A photo-shaped image (``size`` = width, height) of class ``class_index``: the sample's shape,
    scaled up, with per-pixel noise so that it decodes and compresses like a real photo."""
    image = render_image(class_index, rng, _PHOTO_DRAW_SIZE).resize(size, Image.Resampling.BILINEAR)
    noise = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    return Image.blend(image, noise, _PHOTO_NOISE)


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    centre: tuple[float, float],
    radius: float,
    angle: float,
    fill: tuple[int, ...],
    size: int,
) -> None:
    cx, cy = centre

    def rotated(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        cos, sin = math.cos(angle), math.sin(angle)
        return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in points]

    if shape == "disc":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
    elif shape == "ring":
        draw.ellipse(
            (cx - radius, cy - radius, cx + radius, cy + radius), outline=fill, width=int(radius * 0.4)
        )
    elif shape == "square":
        side = radius * 0.85
        draw.polygon(rotated([(-side, -side), (side, -side), (side, side), (-side, side)]), fill=fill)
    elif shape == "triangle":
        points = [(radius * math.cos(a), radius * math.sin(a)) for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)]
        draw.polygon(rotated(points), fill=fill)
    elif shape == "cross":
        arm, width = radius, radius * 0.35
        draw.polygon(rotated([(-arm, -width), (arm, -width), (arm, width), (-arm, width)]), fill=fill)
        draw.polygon(rotated([(-width, -arm), (width, -arm), (width, arm), (-width, arm)]), fill=fill)
    elif shape == "stripes":
        width = max(2, int(size * 0.05))
        for offset in range(-3, 4):
            x = offset * width * 2.2
            draw.polygon(
                rotated(
                    [
                        (x - width / 2, -radius),
                        (x + width / 2, -radius),
                        (x + width / 2, radius),
                        (x - width / 2, radius),
                    ]
                ),
                fill=fill,
            )
    else:  # pragma: no cover - SHAPES is closed
        raise ValueError(shape)


def iter_sample_files(
    *,
    num_classes: int = 4,
    train_per_class: int = 16,
    valid_per_class: int = 6,
    test_per_class: int = 6,
    image_size: int = 64,
    seed: int = 0,
    png_fraction: float = 0.25,
    photo_size: tuple[int, int] | None = None,
) -> Iterator[tuple[str, bytes]]:
    """Yield (relative path "split/NNN.Class/name.ext", encoded bytes) for every sample image.

    ``photo_size`` (width, height): photo-shaped JPEGs instead (see render_photo); ``image_size`` is
    then ignored.
    """
    per_split = {"train": train_per_class, "valid": valid_per_class, "test": test_per_class}
    for split in SPLITS:
        for class_index, class_dir in enumerate(class_dirs(num_classes)):
            for image_index in range(per_split[split]):
                rng = random.Random(f"{seed}:{split}:{class_index}:{image_index}")
                if photo_size is not None:
                    image = render_photo(class_index, rng, photo_size)
                else:
                    image = render_image(class_index, rng, image_size)
                buffer = io.BytesIO()
                stem = f"{class_dir.split('.', 1)[1]}_{split}_{image_index:05d}"
                if photo_size is None and rng.random() < png_fraction:
                    image.save(buffer, format="PNG", optimize=False)
                    name = f"{stem}.png"
                else:
                    image.save(buffer, format="JPEG", quality=90)
                    name = f"{stem}.jpg"
                yield f"{split}/{class_dir}/{name}", buffer.getvalue()


def write_sample_zip(
    path: str | Path,
    *,
    num_classes: int = 4,
    train_per_class: int = 16,
    valid_per_class: int = 6,
    test_per_class: int = 6,
    image_size: int = 64,
    seed: int = 0,
    top_folder: str | None = "dogImages",
    png_fraction: float = 0.25,
    photo_size: tuple[int, int] | None = None,
) -> Path:
    """Write the sample dataset as a zip (images under ``top_folder/`` unless it is None or "")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{top_folder}/" if top_folder else ""
    files = iter_sample_files(
        num_classes=num_classes,
        train_per_class=train_per_class,
        valid_per_class=valid_per_class,
        test_per_class=test_per_class,
        image_size=image_size,
        seed=seed,
        png_fraction=png_fraction,
        photo_size=photo_size,
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for relative, data in files:
            info = zipfile.ZipInfo(prefix + relative, date_time=_ZIP_TIMESTAMP)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)  # already-compressed images: storing them is faster
    return path


def write_sample_tree(
    root: str | Path,
    *,
    num_classes: int = 4,
    train_per_class: int = 16,
    valid_per_class: int = 6,
    test_per_class: int = 6,
    image_size: int = 64,
    seed: int = 0,
    png_fraction: float = 0.25,
    photo_size: tuple[int, int] | None = None,
) -> Path:
    """Write the sample dataset as folders: ``root/{train,valid,test}/NNN.Class/*``."""
    root = Path(root)
    for relative, data in iter_sample_files(
        num_classes=num_classes,
        train_per_class=train_per_class,
        valid_per_class=valid_per_class,
        test_per_class=test_per_class,
        image_size=image_size,
        seed=seed,
        png_fraction=png_fraction,
        photo_size=photo_size,
    ):
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


@dataclass(frozen=True)
class DatasetShape:
    """How many classes and images a generated dataset has, and its image size."""

    num_classes: int
    train_per_class: int
    valid_per_class: int
    test_per_class: int
    photo_size: tuple[int, int] | None = None

    def kwargs(self) -> dict[str, Any]:
        return asdict(self)


# What the real dogImages.zip holds: 133 breeds, 8,351 JPEGs of about 500x375 (here 50/6/6 per class:
# 8,246 images, about 600 MB, like the real archive).
DOGIMAGES_SHAPE = DatasetShape(
    num_classes=133, train_per_class=50, valid_per_class=6, test_per_class=6, photo_size=(500, 375)
)


def _photo_size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 8 or int(height) < 8:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT (at least 8x8), got {text!r}")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="zip file to write (or a folder with --as-folder)")
    parser.add_argument("--as-folder", action="store_true", help="write folders instead of a zip")
    parser.add_argument("--num-classes", type=int, default=4)
    parser.add_argument("--train-per-class", type=int, default=16)
    parser.add_argument("--valid-per-class", type=int, default=6)
    parser.add_argument("--test-per-class", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-folder", default="dogImages", help='folder inside the zip ("" for none)')
    parser.add_argument("--png-fraction", type=float, default=0.25)
    parser.add_argument(
        "--photo-size", type=_photo_size, help="WIDTHxHEIGHT: photo-shaped JPEGs (e.g. 500x375)"
    )
    parser.add_argument(
        "--dogimages-shape",
        action="store_true",
        help=f"the real dogImages.zip's shape: {DOGIMAGES_SHAPE.num_classes} classes, "
        f"{DOGIMAGES_SHAPE.train_per_class}/{DOGIMAGES_SHAPE.valid_per_class}/"
        f"{DOGIMAGES_SHAPE.test_per_class} per class, 500x375 JPEGs (about 600 MB)",
    )
    args = parser.parse_args(argv)
    if args.dogimages_shape:
        for key, value in DOGIMAGES_SHAPE.kwargs().items():
            setattr(args, key, value)
    common = {
        "num_classes": args.num_classes,
        "train_per_class": args.train_per_class,
        "valid_per_class": args.valid_per_class,
        "test_per_class": args.test_per_class,
        "image_size": args.image_size,
        "seed": args.seed,
        "png_fraction": args.png_fraction,
        "photo_size": args.photo_size,
    }
    if args.as_folder:
        written = write_sample_tree(args.out, **common)
    else:
        written = write_sample_zip(args.out, top_folder=args.top_folder, **common)
    print(written)


if __name__ == "__main__":
    main()

"""The deterministic sample dataset generator."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile

from PIL import Image
from trainhelpers import TRAINING_DIR

from dogclf.layout import summarize
from tools.sample_data import DOGIMAGES_SHAPE, class_dirs, write_sample_zip


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_arguments_same_bytes_and_seed_changes_them(tmp_path):
    first = write_sample_zip(
        tmp_path / "a.zip", num_classes=3, train_per_class=3, valid_per_class=1, test_per_class=1
    )
    second = write_sample_zip(
        tmp_path / "b.zip", num_classes=3, train_per_class=3, valid_per_class=1, test_per_class=1
    )
    other = write_sample_zip(
        tmp_path / "c.zip", num_classes=3, train_per_class=3, valid_per_class=1, test_per_class=1, seed=1
    )
    assert _digest(first) == _digest(second)
    assert _digest(first) != _digest(other)


def test_zip_follows_the_layout_with_real_images(tmp_path):
    path = write_sample_zip(
        tmp_path / "s.zip",
        num_classes=5,
        train_per_class=4,
        valid_per_class=2,
        test_per_class=2,
        image_size=48,
        png_fraction=0.5,
    )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        summary = summarize(names)
        formats = set()
        for name in names:
            with Image.open(io.BytesIO(archive.read(name))) as image:
                assert image.size == (48, 48)
                assert image.mode == "RGB"
                formats.add(image.format)
    assert summary.root == "dogImages"
    assert summary.class_dirs == class_dirs(5)
    assert summary.class_dirs[0] == "001.Affenpinscher"
    assert summary.to_dict()["images"] == {"train": 20, "valid": 10, "test": 10}
    assert formats == {"JPEG", "PNG"}


def test_images_are_structured_not_noise(tmp_path):
    """Images of one class share a dominant colour: mean colour distance within a class is far
    smaller than between classes."""
    path = write_sample_zip(
        tmp_path / "s.zip", num_classes=4, train_per_class=6, valid_per_class=1, test_per_class=1
    )
    means: dict[str, list[tuple[float, ...]]] = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if "/train/" not in name:
                continue
            with Image.open(io.BytesIO(archive.read(name))) as image:
                centre = image.crop((20, 20, 44, 44)).resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
            assert isinstance(centre, tuple), "the sample images are RGB"
            means.setdefault(name.split("/")[2], []).append(centre)

    def distance(a, b):
        return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5

    within = [distance(a, b) for values in means.values() for a in values for b in values if a is not b]
    keys = sorted(means)
    between = [
        distance(a, b) for i, k in enumerate(keys) for m in keys[i + 1 :] for a in means[k] for b in means[m]
    ]
    assert sum(within) / len(within) * 2 < sum(between) / len(between)


def test_cli_writes_zip_without_top_folder(tmp_path):
    out = tmp_path / "cli.zip"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.sample_data",
            "--out",
            str(out),
            "--num-classes",
            "2",
            "--train-per-class",
            "2",
            "--valid-per-class",
            "1",
            "--test-per-class",
            "1",
            "--top-folder",
            "",
        ],
        cwd=TRAINING_DIR.parent,  # `python -m tools.sample_data` from the repository root
        check=True,
        capture_output=True,
        timeout=60,
    )
    with zipfile.ZipFile(out) as archive:
        assert summarize(archive.namelist()).root == ""


def test_photo_size_gives_photo_shaped_jpegs_of_photo_like_size(tmp_path):
    """--photo-size / the dogImages shape: every image is a JPEG of that size, and noise keeps it from
    compressing far below what a real 500x375 photo weighs (dogImages averages about 74 kB)."""
    path = write_sample_zip(
        tmp_path / "p.zip",
        num_classes=3,
        train_per_class=2,
        valid_per_class=1,
        test_per_class=1,
        png_fraction=1.0,  # ignored in photo mode: photos are JPEGs
        photo_size=(500, 375),
    )
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        for info in infos:
            with Image.open(io.BytesIO(archive.read(info))) as image:
                assert (image.format, image.size, image.mode) == ("JPEG", (500, 375), "RGB")
        mean_bytes = sum(info.file_size for info in infos) / len(infos)
    assert 40_000 < mean_bytes < 120_000


def test_dogimages_shape_matches_the_real_archive_counts():
    assert DOGIMAGES_SHAPE.num_classes == 133
    per_class = (
        DOGIMAGES_SHAPE.train_per_class + DOGIMAGES_SHAPE.valid_per_class + DOGIMAGES_SHAPE.test_per_class
    )
    assert DOGIMAGES_SHAPE.num_classes * per_class == 8246
    assert DOGIMAGES_SHAPE.photo_size == (500, 375)

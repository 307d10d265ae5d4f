"""tools/real_data.py: real Fashion-MNIST photos repacked into the dogImages layout."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from dogclf.layout import summarize
from tools import real_data


def _require_fashion_mnist() -> None:
    if not (real_data.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"install Debian's {real_data.FASHION_MNIST_PACKAGE} (`make real-data-deps`)")


def test_fashion_mnist_zip_is_a_valid_balanced_dogimages_layout(tmp_path):
    _require_fashion_mnist()
    out = tmp_path / "fm.zip"
    assert (
        real_data.main(
            [
                "--dataset",
                "fashion-mnist",
                "--out",
                str(out),
                "--train",
                "40",
                "--valid",
                "20",
                "--test",
                "10",
                "--image-size",
                "48",
            ]
        )
        == 0
    )
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        image = Image.open(io.BytesIO(archive.read(names[0])))
    summary = summarize(names)
    assert summary.root == "dogImages"
    assert summary.classes == list(real_data.FASHION_MNIST_CLASSES)
    assert summary.class_dirs[0] == "001.T-shirt_top" and summary.class_dirs[-1] == "010.Ankle_boot"
    images = summary.to_dict()["images"]
    assert images == {"train": 40, "valid": 20, "test": 10}
    assert set(summary.counts["train"].values()) == {4}  # 40 images over 10 classes
    assert image.format == "JPEG" and image.size == (48, 48) and image.mode == "RGB"


def test_no_image_is_in_two_splits_and_the_seed_picks_them(tmp_path):
    _require_fashion_mnist()
    counts = {"train": 30, "valid": 10, "test": 10}
    first = dict(real_data.iter_files("fashion-mnist", counts=counts, seed=0, image_size=28))
    again = dict(real_data.iter_files("fashion-mnist", counts=counts, seed=0, image_size=28))
    other = dict(real_data.iter_files("fashion-mnist", counts=counts, seed=1, image_size=28))
    assert first == again and first != other
    assert len(set(first.values())) == len(first)  # every image once


def test_shuffled_labels_move_training_images_only(tmp_path):
    _require_fashion_mnist()
    counts = {"train": 50, "valid": 20, "test": 20}
    plain = dict(real_data.iter_files("fashion-mnist", counts=counts, seed=0, image_size=28))
    shuffled = dict(
        real_data.iter_files("fashion-mnist", counts=counts, seed=0, image_size=28, shuffle_labels=True)
    )

    def by_content(files: dict[str, bytes], split: str) -> dict[bytes, str]:
        return {data: path.split("/")[1] for path, data in files.items() if path.startswith(f"{split}/")}

    for split in ("valid", "test"):
        assert by_content(plain, split) == by_content(shuffled, split)
    moved = by_content(plain, "train").items() - by_content(shuffled, "train").items()
    assert len(moved) > 25  # a random class is the true one about 1 time in 10


def test_a_missing_package_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(real_data, "FASHION_MNIST_DIR", tmp_path / "absent")
    monkeypatch.setattr(
        real_data,
        "DATASETS",
        {
            **real_data.DATASETS,
            "fashion-mnist": (
                lambda: real_data.fashion_mnist(tmp_path / "absent"),
                real_data.FASHION_MNIST_CLASSES,
            ),
        },
    )
    assert real_data.main(["--dataset", "fashion-mnist", "--out", str(tmp_path / "x.zip")]) == 1
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
    assert not Path(tmp_path / "x.zip").exists()

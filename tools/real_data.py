"""Real photo datasets that registry packages ship, repacked into the dogImages layout.

Two sources, both real images rather than generated ones, and both installed by a package manager (no
download at run time):

- ``fashion-mnist``: Zalando's Fashion-MNIST product photos (28x28 grey, 10 classes), from Debian's
  ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz``;
  ``make real-data-deps`` installs it with apt-get). Read with the standard library (IDX format).
- ``digits``: the UCI handwritten digit scans (8x8, 16 grey levels, 10 classes, 1,797 images) that
  scikit-learn bundles in its wheel (``sklearn.datasets.load_digits``: no network). Needs scikit-learn,
  which ``make .venv-data`` installs into this tool's own environment (requirements-data.txt).

Output: a zip (or a folder with ``--as-folder``) ``<top>/{train,valid,test}/NNN.Class_Name/*.jpg`` with
``--train/--valid/--test`` images per split, balanced over the classes, drawn without replacement by
``--seed``. Images are upscaled to ``--image-size`` (the pipeline resizes anyway; upscaling first keeps
JPEG from smearing 8x8 digits). ``--shuffle-labels`` puts every *training* image under a random class
(valid and test keep their true classes): the calibration bench's "labels carry no signal" run.

CLI (from the repository root, with .venv-data for digits):
``.venv-data/bin/python -m tools.real_data --dataset fashion-mnist --out fmnist.zip``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
import struct
import sys
import zipfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from PIL import Image

from dogclf.layout import SPLITS

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt_top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle_boot",
)
DIGIT_CLASSES = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")
_ZIP_TIMESTAMP = (2020, 1, 1, 0, 0, 0)

# One labelled image: (class index, a function that decodes the greyscale image). Decoding waits until
# an image is picked: Fashion-MNIST has 70,000 and a bench run uses a few hundred.
Example = tuple[int, Callable[[], Image.Image]]


class RealDataUnavailableError(RuntimeError):
    """The package that ships the dataset is not installed (the message says how to install it)."""


def _read_idx(path: Path) -> tuple[tuple[int, ...], bytes]:
    """An IDX file (Fashion-MNIST's format): magic (2 zero bytes, type 0x08, ndim), dims, uint8 data."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not a uint8 IDX file")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return dims, data[4 + 4 * ndim :]


def fashion_mnist(root: Path = FASHION_MNIST_DIR) -> list[Example]:
    """All 70,000 Fashion-MNIST images (train then t10k files), as (class, image)."""
    if not (root / "train-images-idx3-ubyte.gz").is_file():
        raise RealDataUnavailableError(
            f"Fashion-MNIST not found in {root}: install Debian's {FASHION_MNIST_PACKAGE} "
            f"(apt-get install {FASHION_MNIST_PACKAGE}, or `make real-data-deps` as root)"
        )
    examples: list[Example] = []
    for prefix in ("train", "t10k"):
        (count, rows, cols), pixels = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
        (label_count,), labels = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")
        if label_count != count:
            raise ValueError(f"{root}/{prefix}: {count} images but {label_count} labels")
        size = rows * cols
        for index in range(count):
            chunk = pixels[index * size : (index + 1) * size]
            examples.append((labels[index], partial(Image.frombytes, "L", (cols, rows), chunk)))
    return examples


def digits() -> list[Example]:
    """scikit-learn's bundled handwritten digits (8x8, values 0..16), as (class, image)."""
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError as error:
        raise RealDataUnavailableError(
            "the digits dataset needs scikit-learn: run this tool with .venv-data/bin/python "
            "(`make .venv-data` builds it from requirements-data.txt)"
        ) from error
    bunch = load_digits()
    examples: list[Example] = []
    for image, label in zip(bunch.images, bunch.target, strict=True):
        pixels = bytes(round(float(value) * 255 / 16) for value in image.ravel())
        examples.append((int(label), partial(Image.frombytes, "L", (8, 8), pixels)))
    return examples


DATASETS: dict[str, tuple[Callable[[], list[Example]], tuple[str, ...]]] = {
    "fashion-mnist": (fashion_mnist, FASHION_MNIST_CLASSES),
    "digits": (digits, DIGIT_CLASSES),
}


def split_examples(
    examples: list[Example], counts: dict[str, int], num_classes: int, seed: int
) -> dict[str, list[Example]]:
    """``counts[split]`` examples per split, as even over the classes as they divide, no image twice."""
    rng = random.Random(seed)
    by_class: dict[int, list[Callable[[], Image.Image]]] = {}
    for label, image in examples:
        by_class.setdefault(label, []).append(image)
    pools = {label: rng.sample(images, len(images)) for label, images in sorted(by_class.items())}
    chosen: dict[str, list[Example]] = {}
    for split in SPLITS:
        wanted = counts[split]
        picked: list[Example] = []
        for offset in range(wanted):
            label = offset % num_classes
            if not pools.get(label):
                raise ValueError(f"not enough images of class {label} for {wanted} {split} images")
            picked.append((label, pools[label].pop()))
        chosen[split] = picked
    return chosen


def iter_files(
    dataset: str,
    *,
    counts: dict[str, int],
    seed: int = 0,
    image_size: int = 64,
    shuffle_labels: bool = False,
) -> Iterator[tuple[str, bytes]]:
    """(relative path, JPEG bytes) for every image of the repacked dataset. The dataset is read and
    split here, before the first file is asked for: a missing package fails before anything is written."""
    load, classes = DATASETS[dataset]
    splits = split_examples(load(), counts, len(classes), seed)
    return _encode(dataset, splits, classes, seed=seed, image_size=image_size, shuffle_labels=shuffle_labels)


def _encode(
    dataset: str,
    splits: dict[str, list[Example]],
    classes: tuple[str, ...],
    *,
    seed: int,
    image_size: int,
    shuffle_labels: bool,
) -> Iterator[tuple[str, bytes]]:
    label_rng = random.Random(seed + 1)
    for split in SPLITS:
        for index, (label, image) in enumerate(splits[split]):
            if shuffle_labels and split == "train":
                label = label_rng.randrange(len(classes))
            folder = f"{label + 1:03d}.{classes[label]}"
            rgb = image().convert("RGB").resize((image_size, image_size), Image.Resampling.BICUBIC)
            buffer = io.BytesIO()
            rgb.save(buffer, format="JPEG", quality=90)
            yield f"{split}/{folder}/{dataset}_{split}_{index:05d}.jpg", buffer.getvalue()


def write(out: Path, files: Iterator[tuple[str, bytes]], *, top_folder: str, as_folder: bool) -> int:
    prefix = f"{top_folder}/" if top_folder else ""
    written = 0
    if as_folder:
        for relative, data in files:
            path = out / prefix / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written += 1
        return written
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for relative, data in files:
            archive.writestr(zipfile.ZipInfo(prefix + relative, date_time=_ZIP_TIMESTAMP), data)
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--out", type=Path, required=True, help="zip to write (a folder with --as-folder)")
    parser.add_argument("--as-folder", action="store_true")
    parser.add_argument("--top-folder", default="dogImages", help='folder inside the output ("" for none)')
    parser.add_argument("--train", type=int, default=3000, help="training images (all classes)")
    parser.add_argument("--valid", type=int, default=600)
    parser.add_argument("--test", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0, help="which images go to which split")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--shuffle-labels", action="store_true", help="training images under random classes")
    args = parser.parse_args(argv)
    for name in ("train", "valid", "test", "image_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    counts = {"train": args.train, "valid": args.valid, "test": args.test}
    try:
        files = iter_files(
            args.dataset,
            counts=counts,
            seed=args.seed,
            image_size=args.image_size,
            shuffle_labels=args.shuffle_labels,
        )
        written = write(args.out, files, top_folder=args.top_folder, as_folder=args.as_folder)
    except (RealDataUnavailableError, ValueError) as error:
        print(f"real_data: {error}", file=sys.stderr)
        return 1
    print(f"wrote {written} images of {args.dataset} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

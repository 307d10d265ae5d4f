"""Reading a dataset folder in the dogImages layout into datasets and loaders.

Rules (the layout rule itself lives in ``layout.py``):
- Class order is the sorted class-folder names of ``train``; ``classes.json`` holds the names
  without the ``NNN.`` prefix in that order.
- Layout problems (missing split, empty class, class sets differing between splits, no images)
  raise DatasetLayoutError before any training starts.
- Undecodable images are SKIPPED and COUNTED, not fatal: one corrupt JPEG among thousands should
  not kill a tuning job. They are reported by path in the log and in metrics.json. If more than
  ``max_bad_fraction`` of a split is undecodable the run fails (BadImagesError), because then the
  data, not one file, is broken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from dogclf.images import InvalidImageError, decode_image
from dogclf.layout import SPLITS, DatasetLayoutError, LayoutSummary, locate, summarize


class BadImagesError(RuntimeError):
    """Too many undecodable images in one split."""


@dataclass
class DatasetIndex:
    summary: LayoutSummary
    split_dirs: dict[str, Path]
    samples: dict[str, list[tuple[str, int]]]

    @property
    def classes(self) -> list[str]:
        return self.summary.classes

    @property
    def class_dirs(self) -> list[str]:
        return self.summary.class_dirs


def find_split_dirs(
    data_dir: str | None,
    train_dir: str | None = None,
    valid_dir: str | None = None,
    test_dir: str | None = None,
) -> dict[str, Path]:
    """Per-split folders from separate channels (all three) or from one folder holding the splits."""
    given = {"train": train_dir, "valid": valid_dir, "test": test_dir}
    if all(given.values()):
        return {split: Path(str(path)) for split, path in given.items()}
    if any(given.values()) and not data_dir:
        missing = [split for split, path in given.items() if not path]
        raise DatasetLayoutError(
            f"channels for {', '.join(missing)} are missing: give all of train/valid/test channels "
            "(SM_CHANNEL_TRAIN/VALID/TEST) or one channel with the whole dataset (SM_CHANNEL_TRAINING)"
        )
    if not data_dir:
        raise DatasetLayoutError(
            "no data: set SM_CHANNEL_TRAINING (or --data_dir), or the three split channels"
        )
    root = Path(data_dir)
    if not root.is_dir():
        raise DatasetLayoutError(f"data folder {root} does not exist")
    if not (root / "train").is_dir():
        # One top-level folder (e.g. dogImages/) is allowed, as in the zip.
        children = [c for c in root.iterdir() if c.is_dir() and not c.name.startswith((".", "__MACOSX"))]
        nested = [c for c in children if (c / "train").is_dir()]
        if len(nested) != 1:
            raise DatasetLayoutError(
                f"{root} holds no train/valid/test folders (directly or inside one top-level folder); "
                f"found: {', '.join(sorted(c.name for c in children)) or 'nothing'}"
            )
        root = nested[0]
    return {split: root / split for split in SPLITS}


def scan(split_dirs: dict[str, Path]) -> DatasetIndex:
    """List the images of every split and check the layout (raises DatasetLayoutError)."""
    relative_paths: list[str] = []
    for split in SPLITS:
        split_dir = split_dirs[split]
        if not split_dir.is_dir():
            raise DatasetLayoutError(f"missing split {split}: {split_dir} is not a folder")
        for class_path in sorted(split_dir.iterdir()):
            class_dir = class_path.name
            if not class_path.is_dir():
                continue
            relative_paths.append(f"{split}/{class_dir}/")
            relative_paths += [
                f"{split}/{class_dir}/{name}" for name in sorted(p.name for p in class_path.iterdir())
            ]
    summary = summarize(relative_paths)
    index_of = {class_dir: index for index, class_dir in enumerate(summary.class_dirs)}
    samples: dict[str, list[tuple[str, int]]] = {split: [] for split in SPLITS}

    for relative in relative_paths:
        member = locate(relative)
        if member is not None:
            path = split_dirs[member.split] / member.class_dir / member.filename
            samples[member.split].append((str(path), index_of[member.class_dir]))
    return DatasetIndex(summary=summary, split_dirs=split_dirs, samples=samples)


class ImageListDataset(Dataset):
    """(path, target) samples -> (tensor or None, target, path). None marks an undecodable image."""

    def __init__(self, samples: list[tuple[str, int]], transform) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        try:
            image = decode_image(path)
        except InvalidImageError:
            return None, target, path
        return self.transform(image), target, path


def collate_skipping_bad(batch):
    """Stack the decodable images; return the paths of the undecodable ones separately."""
    good = [(image, target) for image, target, _ in batch if image is not None]
    bad = [path for image, _, path in batch if image is None]
    if good:
        images = torch.stack([image for image, _ in good])
        targets = torch.tensor([target for _, target in good], dtype=torch.long)
    else:
        images, targets = torch.empty(0), torch.empty(0, dtype=torch.long)
    return images, targets, bad


@dataclass
class BadImageTracker:
    """Counts skipped images per split and fails the run past ``max_fraction``."""

    max_fraction: float
    bad: dict[str, set[str]] = field(default_factory=dict)

    def add(self, split: str, paths: list[str]) -> None:
        seen = self.bad.setdefault(split, set())
        new = [path for path in paths if path not in seen]
        for path in new:
            print(f"WARNING: skipping undecodable image in {split}: {path}", flush=True)
        seen.update(new)

    def check(self, split: str, total: int) -> None:
        count = len(self.bad.get(split, ()))
        if total and count / total > self.max_fraction:
            raise BadImagesError(
                f"{count} of {total} images in {split} are undecodable (more than "
                f"{self.max_fraction:.0%}); first ones: {', '.join(sorted(self.bad[split])[:5])}"
            )

    def to_dict(self) -> dict[str, object]:
        return {
            "skipped_images": {split: len(paths) for split, paths in self.bad.items()},
            "skipped_paths": {split: sorted(paths)[:100] for split, paths in self.bad.items()},
        }
